"""The graph IR: typed ops over named per-sample tensors, with a verifier and a text dump.

Shapes exclude the batch dimension: a Dense input of shape (64,) is one sample of 64 features. Ops are kept in
topological order. Parameters (weights, biases) are float64 numpy arrays owned by the op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from isa.errors import ModelError


@dataclass
class Value:
    """A named tensor of one sample: its shape without the batch dimension."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class Op:
    """One IR operation.

    ``kind`` names an op kind of the registry (`compiler.ops`): each kind's module documents its inputs,
    outputs, params and attrs, and carries its verifier (`verify` calls it), float and integer semantics, format
    rule and lowering.

    Activations (``act`` attr): none, relu, sigmoid, tanh, leaky_relu (``alpha``), clip (``lo``, ``hi``).
    Tensors of shape (C, H, W) are stored and flattened channel-minor (HWC order); a dense layer reading one has
    its weight rows in that order. A rank-3 ONNX tensor (N, C, L) is the IR shape (C, 1, L) (`frontend.lift`),
    so 1-D convolution and pooling are the 2-D ops with H = 1.
    """

    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def is_crossbar(self) -> bool:
        """Whether the op's weights live on crossbars (it gets a `LayerPrecision`)."""
        from ..ops import kind_of

        return kind_of(self).crossbar


ACTIVATIONS = ("none", "relu", "sigmoid", "tanh", "leaky_relu", "clip")
CROSSBAR_KINDS = ("dense", "conv", "recurrent")  # the registry's kinds with ``crossbar`` (kept for callers; checked by a test)


def conv_out_size(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1,
                  ceil_mode: bool = False) -> int:
    """Output length of a convolution/pooling window sweep along one axis."""
    span = size + pad_lo + pad_hi - dilation * (k - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_lo:
        out -= 1  # the last window must start inside the input or its left padding (ONNX/PyTorch rule)
    return out


@dataclass
class Graph:
    """A model: graph inputs, ops in topological order, the device outputs, and what runs on the host after."""

    name: str
    inputs: list[Value]
    ops: list[Op]
    outputs: list[str]
    values: dict[str, Value]
    host_outputs: list[str] = field(default_factory=list)
    host_ops: list[str] = field(default_factory=list)
    output_names: dict[str, str] = field(default_factory=dict)
    qdq: Any = None  # the model's own quantizers (`compiler.frontend.qdq.QdqInfo`), empty without Q/DQ nodes

    def external_name(self, value: str) -> str:
        """The ONNX name of device output ``value`` (passes may rename outputs away from relabelling ops)."""
        return self.output_names.get(value, value)

    def producer(self, value: str) -> Op | None:
        """The op producing ``value`` (None for graph inputs)."""
        for op in self.ops:
            if value in op.outputs:
                return op
        return None

    def consumers(self, value: str) -> list[Op]:
        """Ops reading ``value``."""
        return [op for op in self.ops if value in op.inputs]

    def crossbar_ops(self) -> list[Op]:
        """The ops that get a precision annotation, in order."""
        return [op for op in self.ops if op.is_crossbar]

    def op(self, name: str) -> Op:
        """The op called ``name``."""
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)


def verify(g: Graph) -> None:
    """Check the IR's invariants; raise ModelError naming the op that breaks one."""
    defined = {v.name for v in g.inputs}
    for v in g.inputs:
        _check_value(g, v.name, None)
    for op in g.ops:
        _verify_op(g, op, defined)
        defined.update(op.outputs)
    for out in g.outputs:
        if out not in defined:
            raise ModelError(f"graph output '{out}' is never produced")


def _check_value(g: Graph, name: str, op: Op | None) -> Value:
    if name not in g.values:
        where = f"op '{op.name}' ({op.kind})" if op else "graph input"
        raise ModelError(f"{where}: value '{name}' has no shape")
    return g.values[name]


def _verify_op(g: Graph, op: Op, defined: set[str]) -> None:
    from ..ops import kind_of

    def fail(msg: str) -> None:
        raise ModelError(f"IR verifier: op '{op.name}' ({op.kind}): {msg}")

    try:
        kind = kind_of(op.kind)
    except ModelError as e:
        fail(str(e))
    lo, hi = kind.arity
    if not lo <= len(op.inputs) <= hi or len(op.outputs) != 1:
        fail(f"expects {lo}..{hi} inputs and 1 output, has {len(op.inputs)} and {len(op.outputs)}")
    for name in op.inputs:
        if name not in defined:
            fail(f"input '{name}' used before it is defined")
    ins = [_check_value(g, i, op).shape for i in op.inputs]
    out = _check_value(g, op.outputs[0], op).shape
    if op.attrs.get("act", "none") not in ACTIVATIONS:
        fail(f"activation {op.attrs.get('act')!r} not in {ACTIVATIONS}")
    problem = kind.check(op, ins, out)
    if problem:
        fail(problem)


def broadcast_param(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An affine op's ``scale`` or ``shift`` (per-sample broadcast form) expanded to the full per-sample shape."""
    return np.broadcast_to(p, shape)


def dump(g: Graph) -> str:
    """A stable, readable text form of the graph (golden-testable)."""
    lines = [f"graph {g.name}("
             + ", ".join(f"%{v.name}: {_shape(v.shape)}" for v in g.inputs) + ") {"]
    for op in g.ops:
        attrs = "".join(f" {k}={v}" for k, v in sorted(op.attrs.items()))
        params = "".join(f" {k}:{_shape(v.shape)}" for k, v in sorted(op.params.items()))
        outs = ", ".join(f"%{o}: {_shape(g.values[o].shape)}" for o in op.outputs)
        ins = ", ".join(f"%{i}" for i in op.inputs)
        lines.append(f"  {outs} = {op.kind}({ins}){attrs}{params}  # {op.name}")
    lines.append("  return " + ", ".join(f"%{o}" for o in g.outputs))
    if g.host_ops:
        lines.append("  host: " + ", ".join(g.host_ops) + " -> " + ", ".join(g.host_outputs))
    lines.append("}")
    return "\n".join(lines)


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + "x".join(str(d) for d in shape) + "]"
