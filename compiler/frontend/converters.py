"""One converter per ONNX op, in a registry keyed by op type.

A converter receives the ONNX node and the conversion context and appends IR ops. Converters that depend on the
opset receive it through ``ctx.opset``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from isa.errors import ModelError

from ..ir import Op, Value

Converter = Callable[[onnx.NodeProto, "Context"], None]
CONVERTERS: dict[str, Converter] = {}


class Context:
    """State shared by converters: known per-sample shapes, constants, the ops emitted so far."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.values: dict[str, Value] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.ops: list[Op] = []

    def shape(self, name: str, node: onnx.NodeProto) -> tuple[int, ...]:
        """Per-sample shape of an activation input of ``node``."""
        if name not in self.values:
            raise _err(node, f"input '{name}' is not an activation with a known shape")
        return self.values[name].shape

    def const(self, name: str, node: onnx.NodeProto) -> np.ndarray:
        """A constant (initializer or Constant output) input of ``node``."""
        if name not in self.consts:
            raise _err(node, f"input '{name}' must be a constant (an initializer)")
        return self.consts[name]

    def emit(self, kind: str, node: onnx.NodeProto, inp: str, out_shape: tuple[int, ...], **kw: object) -> None:
        """Append an op reading ``inp`` and writing ``node.output[0]`` with ``out_shape``."""
        out = node.output[0]
        self.values[out] = Value(out, out_shape)
        params = kw.pop("params", {})
        self.ops.append(Op(kind, node.name or out, [inp], [out], dict(kw), dict(params)))  # type: ignore[arg-type]


def _err(node: onnx.NodeProto, msg: str) -> ModelError:
    return ModelError(f"node '{node.name}' ({node.op_type}): {msg}")


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Register a converter for the given ONNX op types."""
    def wrap(fn: Converter) -> Converter:
        for t in op_types:
            CONVERTERS[t] = fn
        return fn
    return wrap


@converter("Gemm")
def convert_gemm(node: onnx.NodeProto, ctx: Context) -> None:
    """Y = alpha * A' B' + beta * C with A an activation and B, C constants -> dense."""
    a = _attrs(node)
    if a.get("transA", 0):
        raise _err(node, "transA=1 is not supported (the activation must be the left operand)")
    (n_in,) = _flat(ctx.shape(node.input[0], node), node)
    w = ctx.const(node.input[1], node).astype(np.float64)
    w = w.T if a.get("transB", 0) else w
    if w.shape[0] != n_in:
        raise _err(node, f"weight {w.shape} does not match input of {n_in} features")
    params = {"weight": float(a.get("alpha", 1.0)) * w}
    if len(node.input) > 2 and node.input[2]:
        c = ctx.const(node.input[2], node).astype(np.float64)
        params["bias"] = float(a.get("beta", 1.0)) * np.broadcast_to(c.reshape(-1), (w.shape[1],)).copy()
    ctx.emit("dense", node, node.input[0], (w.shape[1],), act="none", params=params)


@converter("MatMul")
def convert_matmul(node: onnx.NodeProto, ctx: Context) -> None:
    """Y = A B with A an activation (n,) and B a constant (n, m) -> dense."""
    if node.input[1] not in ctx.consts:
        raise _err(node, "MatMul of two activations is not supported (the right operand must be a constant)")
    (n_in,) = _flat(ctx.shape(node.input[0], node), node)
    w = ctx.const(node.input[1], node).astype(np.float64)
    if w.ndim != 2 or w.shape[0] != n_in:
        raise _err(node, f"weight {w.shape} does not match input of {n_in} features")
    ctx.emit("dense", node, node.input[0], (w.shape[1],), act="none", params={"weight": w})


@converter("Add")
def convert_add(node: onnx.NodeProto, ctx: Context) -> None:
    """Activation + constant -> bias_add (the constant broadcast to the activation's shape)."""
    x, c = node.input
    if x in ctx.consts and c not in ctx.consts:
        x, c = c, x
    if c not in ctx.consts:
        raise _err(node, "Add of two activations is not supported yet")
    shape = ctx.shape(x, node)
    bias = ctx.const(c, node).astype(np.float64)
    if bias.ndim > len(shape):
        bias = bias.reshape(bias.shape[bias.ndim - len(shape):]) if bias.shape[0] == 1 else bias
    try:
        bias = np.broadcast_to(bias, shape).copy()
    except ValueError:
        raise _err(node, f"constant of shape {bias.shape} does not broadcast to {shape}") from None
    ctx.emit("bias_add", node, x, shape, params={"bias": bias})


@converter("Relu", "Sigmoid", "Tanh")
def convert_activation(node: onnx.NodeProto, ctx: Context) -> None:
    """Elementwise activation."""
    shape = ctx.shape(node.input[0], node)
    ctx.emit("act", node, node.input[0], shape, fn=node.op_type.lower())


@converter("Identity", "Dropout")
def convert_identity(node: onnx.NodeProto, ctx: Context) -> None:
    """No-ops at inference (Dropout's mask output, if any, must be unused)."""
    ctx.emit("identity", node, node.input[0], ctx.shape(node.input[0], node))


@converter("Cast")
def convert_cast(node: onnx.NodeProto, ctx: Context) -> None:
    """Cast to a floating type is a no-op on fixed-point data; other casts are not."""
    to = _attrs(node).get("to")
    if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        raise _err(node, f"Cast to {onnx.TensorProto.DataType.Name(int(to))} inside the device graph")  # type: ignore[arg-type]
    ctx.emit("identity", node, node.input[0], ctx.shape(node.input[0], node))


@converter("Flatten")
def convert_flatten(node: onnx.NodeProto, ctx: Context) -> None:
    """Flatten keeping the batch dimension (axis 1) -> reshape."""
    axis = int(_attrs(node).get("axis", 1))  # type: ignore[arg-type]
    shape = ctx.shape(node.input[0], node)
    if axis != 1:
        raise _err(node, f"Flatten with axis={axis} mixes the batch dimension; only axis=1 is supported")
    ctx.emit("reshape", node, node.input[0], (int(np.prod(shape)),))


@converter("Reshape")
def convert_reshape(node: onnx.NodeProto, ctx: Context) -> None:
    """Reshape to a constant shape whose first dimension is the batch (-1, 0 or the batch size)."""
    shape = ctx.shape(node.input[0], node)
    target = [int(d) for d in ctx.const(node.input[1], node).reshape(-1)]
    size = int(np.prod(shape))
    per_sample = target[1:]
    if 0 in per_sample:
        per_sample = [shape[i] if d == 0 else d for i, d in enumerate(per_sample)]
    if -1 in per_sample:
        known = int(np.prod([d for d in per_sample if d != -1]))
        per_sample = [size // known if d == -1 else d for d in per_sample]
    if target[0] not in (-1, 0, 1) or int(np.prod(per_sample)) != size:
        if target and int(np.prod(target)) == size and target[0] != -1:
            per_sample = [size]  # a reshape that folds the batch of one into the features
        else:
            raise _err(node, f"target shape {target} changes the batch dimension of a {shape} sample")
    ctx.emit("reshape", node, node.input[0], tuple(per_sample))


def _flat(shape: tuple[int, ...], node: onnx.NodeProto) -> tuple[int]:
    if len(shape) != 1:
        raise _err(node, f"expects a (batch, features) input, got per-sample shape {shape}; flatten it first")
    return (shape[0],)


def constant_value(node: onnx.NodeProto) -> np.ndarray:
    """The tensor of a Constant node."""
    a = _attrs(node)
    if "value" in a:
        return numpy_helper.to_array(a["value"])  # type: ignore[arg-type]
    for key in ("value_float", "value_int"):
        if key in a:
            return np.array(a[key])
    for key in ("value_floats", "value_ints"):
        if key in a:
            return np.array(list(a[key]))  # type: ignore[arg-type]
    raise _err(node, "unsupported Constant attribute")
