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
from ..ops.move import segments

Converter = Callable[[onnx.NodeProto, "Context"], None]
CONVERTERS: dict[str, Converter] = {}


class Context:
    """State shared by converters: known per-sample shapes, constants, the ops emitted so far."""

    def __init__(self, opset: int, skipped: dict[str, str] | None = None) -> None:
        self.opset = opset
        self.skipped = skipped or {}
        self.values: dict[str, Value] = {}
        self.onnx_shapes: dict[str, tuple[int, ...]] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.ops: list[Op] = []
        self.uses: dict[str, int] = {}  # readers of each tensor in the ONNX graph (graph outputs count)

    def shape(self, name: str, node: onnx.NodeProto) -> tuple[int, ...]:
        """ONNX per-sample shape of an activation input of ``node`` (its IR shape is `lift` of it)."""
        if name not in self.values:
            if name in self.skipped:
                raise _err(node, f"input '{name}' is a constant the frontend did not fold: {self.skipped[name]}")
            raise _err(node, f"input '{name}' is not an activation with a known shape")
        return self.onnx_shapes.get(name, self.values[name].shape)

    def define(self, name: str, onnx_shape: tuple[int, ...]) -> Value:
        """Record activation ``name`` of ONNX per-sample shape ``onnx_shape``; its IR value has shape
        ``lift(onnx_shape)``."""
        v = Value(name, lift(onnx_shape))
        self.values[name] = v
        self.onnx_shapes[name] = tuple(onnx_shape)
        return v

    def const(self, name: str, node: onnx.NodeProto) -> np.ndarray:
        """A constant (initializer or Constant output) input of ``node``."""
        if name not in self.consts:
            why = f"; it was not folded at compile time: {self.skipped[name]}" if name in self.skipped else ""
            raise _err(node, f"input '{name}' must be a constant (an initializer){why}")
        return self.consts[name]

    def emit(self, kind: str, node: onnx.NodeProto, inp: str, out_shape: tuple[int, ...], *, out: str = "",
             name: str = "", **kw: object) -> None:
        """Append an op reading ``inp`` and writing ``out`` (default ``node.output[0]``; a node lowered to several
        ops names its intermediate values and ops) with ONNX per-sample shape ``out_shape`` (an affine op's
        rank-2 broadcast params are lifted with the shape)."""
        out = out or node.output[0]
        self.define(out, out_shape)
        params = kw.pop("params", {})
        if kind == "affine":
            params = {k: lift_param(np.asarray(v)) for k, v in dict(params).items()}  # type: ignore[call-overload]
        for key, value in dict(params).items():  # what an attribute made of finite constants (alpha = inf, ...)
            arr = np.asarray(value)
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
                raise _err(node, f"its {key} is not finite (first at index {list(bad)}: {arr[bad]}); check the "
                                 f"node's attributes (alpha, beta, epsilon, ...) and constants")
        for key, value in kw.items():
            if isinstance(value, float) and not np.isfinite(value) and node.op_type != "Clip":
                raise _err(node, f"attribute-derived value {key}={value} is not finite")
        self.ops.append(Op(kind, name or node.name or out, [inp], [out], dict(kw), dict(params)))  # type: ignore[arg-type]


def lift(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The IR shape of an ONNX per-sample shape: a rank-3 ONNX tensor (N, C, L), as audio and sequence models
    and 1-D Conv/pooling use it, is the image (C, 1, L) (H = 1), stored channel-minor like every (C, H, W)
    tensor; every other shape is itself. Row-major order of (C, L) and (C, 1, L) is the same, so graph inputs
    and outputs keep ONNX's element order."""
    return (shape[0], 1, shape[1]) if len(shape) == 2 else tuple(shape)


def lift_param(p: np.ndarray) -> np.ndarray:
    """A per-sample broadcast parameter of a rank-2 ONNX shape, in the lifted form (`lift`)."""
    return p.reshape(p.shape[0], 1, p.shape[1]) if p.ndim == 2 else p


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
    if w.ndim != 2:
        raise _err(node, f"weight '{node.input[1]}' has shape {w.shape}; Gemm's B must be a 2-D matrix")
    w = w.T if a.get("transB", 0) else w
    if w.shape[0] != n_in:
        raise _err(node, f"weight {w.shape} does not match input of {n_in} features")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    with np.errstate(all="ignore"):  # a non-finite product is named by `Context.emit`
        params = {"weight": w if alpha == 1.0 else alpha * w}  # 1.0 * w is w: VGG-16's fc1 took 2.5 s
    if len(node.input) > 2 and node.input[2]:
        c = ctx.const(node.input[2], node).astype(np.float64)
        if c.size not in (1, w.shape[1]) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
            raise _err(node, f"bias '{node.input[2]}' of shape {c.shape} is not one value per output "
                             f"({w.shape[1]},)")
        with np.errstate(all="ignore"):
            bias = np.broadcast_to(c.reshape(-1), (w.shape[1],)).copy()
            params["bias"] = bias if beta == 1.0 else beta * bias
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


@converter("Add", "Sub", "Mul", "Div")
def convert_arithmetic(node: onnx.NodeProto, ctx: Context) -> None:
    """Two activations -> eltwise add/sub/mul (`_two_activations`: residual connections, gating). An activation
    and a constant -> affine (x * scale + shift, the constant broadcast per sample): Add c -> shift c; Sub c ->
    shift -c; c - x -> scale -1, shift c; Mul c -> scale c; Div c -> scale 1/c (see `passes.affine` for when it
    folds; otherwise it runs on the vector unit, rule AFFINE)."""
    x, c = node.input
    op = node.op_type
    swapped = x in ctx.consts and c not in ctx.consts
    if swapped:
        x, c = c, x
    if c not in ctx.consts:
        _two_activations(node, ctx, x, c)
        return
    shape = ctx.shape(x, node)
    k = _per_sample(ctx.const(c, node).astype(np.float64), shape, node, c)
    one, zero = np.ones((1,) * len(shape)), np.zeros((1,) * len(shape))
    if op == "Div" and swapped:
        raise _err(node, "division of a constant by an activation is not supported")
    if op == "Div" and not np.all(k != 0):
        raise _err(node, f"division by zero: constant '{c}' has a 0 at index "
                         f"{tuple(int(i) for i in np.argwhere(k == 0)[0])}")
    scale, shift = {"Add": (one, k), "Sub": ((-one, k) if swapped else (one, -k)), "Mul": (k, zero),
                    "Div": (1.0 / k, zero)}[op]
    ctx.emit("affine", node, x, shape, nodes=(f"{op} '{node.name or node.output[0]}'",),
             params={"scale": scale, "shift": shift})


def _two_activations(node: onnx.NodeProto, ctx: Context, x: str, c: str) -> None:
    """Add, Sub or Mul of two activations -> eltwise (``op`` add/sub/mul): of one shape, or a second operand of
    the same channels broadcast over the rows, the columns or both of a (C, H, W) first (`spatial_broadcast`:
    squeeze-excite gating multiplies by a (C, 1, 1) one; the broadcast operand may come first for Add and Mul)."""
    op = node.op_type
    if op == "Div":
        raise _err(node, "Div of two activations is not supported (the vector unit has no reciprocal or divide "
                         "instruction, so no exact rule exists; a Div by a constant is a scale)")
    sx, sc = ctx.shape(x, node), ctx.shape(c, node)
    if sx != sc and spatial_broadcast(sc, sx) and op != "Sub":
        x, c, sx, sc = c, x, sc, sx
    if sx != sc and not spatial_broadcast(sx, sc):
        raise _err(node, f"{op} of activations with shapes {sx} and {sc}: only equal shapes, or a second operand "
                         f"(C, 1, 1), (C, H, 1) or (C, 1, W) broadcast over a (C, H, W) first (a broadcast over "
                         f"channels would need a copy per channel)"
                         + (" (Sub's broadcast operand must be the second)" if op == "Sub" else ""))
    ctx.define(node.output[0], sx)
    attrs: dict[str, object] = {"act": "none"}
    if op != "Add":
        attrs["op"] = op.lower()
    ctx.ops.append(Op("eltwise", node.name or node.output[0], [x, c], [node.output[0]], attrs, {}))


def spatial_broadcast(big: tuple[int, ...], small: tuple[int, ...]) -> bool:
    """Whether ONNX per-sample shape ``small`` broadcasts over the pixels of ``big`` (both (C, H, W) or (C, L)
    after `lift`): the same channels, each spatial axis 1 or equal, and not equal shapes."""
    b, s = lift(tuple(big)), lift(tuple(small))
    return len(b) == 3 and len(s) == 3 and b != s and s[0] == b[0] and all(v in (1, w) for v, w in zip(s[1:], b[1:]))


def _per_sample(k: np.ndarray, shape: tuple[int, ...], node: onnx.NodeProto, name: str) -> np.ndarray:
    """A constant operand of an elementwise op, in per-sample broadcast form: rank len(shape), broadcastable to
    shape (ONNX aligns trailing axes; a leading batch axis must be 1)."""
    rank = len(shape)
    if k.ndim == rank + 1:
        if k.shape[0] != 1:
            raise _err(node, f"constant '{name}' of shape {k.shape} differs per sample (batch axis {k.shape[0]})")
        k = k[0]
    if k.ndim > rank:
        raise _err(node, f"constant '{name}' of shape {k.shape} has a higher rank than the activation (1, *{shape})")
    k = k.reshape((1,) * (rank - k.ndim) + k.shape)
    if any(a not in (1, b) for a, b in zip(k.shape, shape)):
        raise _err(node, f"constant '{name}' of shape {k.shape} does not broadcast to the per-sample shape {shape}")
    return k


@converter("Relu", "Sigmoid", "Tanh")
def convert_activation(node: onnx.NodeProto, ctx: Context) -> None:
    """Elementwise activation."""
    shape = ctx.shape(node.input[0], node)
    ctx.emit("act", node, node.input[0], shape, act=node.op_type.lower())


@converter("LeakyRelu")
def convert_leaky_relu(node: onnx.NodeProto, ctx: Context) -> None:
    """max(x, alpha x) for 0 <= alpha <= 1."""
    alpha = float(_attrs(node).get("alpha", 0.01))  # type: ignore[arg-type]
    if not 0.0 <= alpha <= 1.0:
        raise _err(node, f"alpha={alpha} outside [0, 1]")
    ctx.emit("act", node, node.input[0], ctx.shape(node.input[0], node), act="leaky_relu", alpha=alpha)


@converter("Clip")
def convert_clip(node: onnx.NodeProto, ctx: Context) -> None:
    """Clip to [lo, hi]: attributes before opset 11, constant inputs from 11 (Relu6 is Clip(0, 6))."""
    a = _attrs(node)
    if ctx.opset < 11:
        lo, hi = float(a.get("min", -np.inf)), float(a.get("max", np.inf))  # type: ignore[arg-type]
    else:
        lo = float(ctx.const(node.input[1], node)) if len(node.input) > 1 and node.input[1] else -np.inf
        hi = float(ctx.const(node.input[2], node)) if len(node.input) > 2 and node.input[2] else np.inf
    ctx.emit("act", node, node.input[0], ctx.shape(node.input[0], node), act="clip", lo=lo, hi=hi)


@converter("HardSigmoid", "HardSwish")
def convert_hard(node: onnx.NodeProto, ctx: Context) -> None:
    """HardSigmoid = clip(alpha x + beta, 0, 1) (alpha 0.2, beta 0.5 by default) -> affine + act clip (which
    canonicalization fuses into the affine, and folds into a Conv/Gemm before it when it can); HardSwish =
    x * HardSigmoid(x) with alpha 1/6, beta 1/2 -> those two and an eltwise mul of x with them."""
    a = _attrs(node)
    swish = node.op_type == "HardSwish"
    if swish and a:
        raise _err(node, f"unexpected attributes {sorted(a)} (HardSwish has none)")
    unknown = sorted(set(a) - {"alpha", "beta"})
    if unknown:
        raise _err(node, f"unsupported attributes {unknown}")
    alpha = 1.0 / 6.0 if swish else float(a.get("alpha", 0.2))  # type: ignore[arg-type]
    beta = 0.5 if swish else float(a.get("beta", 0.5))  # type: ignore[arg-type]
    x, y = node.input[0], node.output[0]
    shape = ctx.shape(x, node)
    base = node.name or y
    one = np.ones((1,) * len(shape))
    lin, hsig = f"{y}__linear", (f"{y}__hardsigmoid" if swish else y)
    ctx.emit("affine", node, x, shape, out=lin, name=f"{base}__linear",
             nodes=(f"{node.op_type} '{base}' (alpha x + beta)",), params={"scale": alpha * one, "shift": beta * one})
    ctx.emit("act", node, lin, shape, out=hsig, name=f"{base}__clip" if swish else base, act="clip", lo=0.0, hi=1.0)
    if swish:
        ctx.define(y, shape)
        ctx.ops.append(Op("eltwise", base, [x, hsig], [y], {"act": "none", "op": "mul"}, {}))


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
    """Flatten to 2-D (N, features) -> reshape (a relabel: see `passes.canonicalize.EliminateRelabel`). Axis 1
    is the usual case; a larger axis keeps the batch as dim 0 only when every per-sample dim before it is 1."""
    shape = ctx.shape(node.input[0], node)
    rank = len(shape) + 1
    axis = int(_attrs(node).get("axis", 1))  # type: ignore[arg-type]
    if not -rank <= axis <= rank:
        raise _err(node, f"axis={axis} outside [-{rank}, {rank}] for a rank-{rank} input")
    axis = axis + rank if axis < 0 else axis
    if axis == 0 or int(np.prod(shape[:axis - 1])) != 1:
        raise _err(node, f"axis={axis} gives ({'1' if axis == 0 else 'N x ' + ' x '.join(map(str, shape[:axis - 1]))}"
                         f", ...): it merges the batch dimension with others (only a flatten whose dim 0 stays the "
                         f"batch is supported)")
    ctx.emit("reshape", node, node.input[0], (int(np.prod(shape[axis - 1:])),))


def _axes(node: onnx.NodeProto, ctx: Context, required: bool) -> list[int] | None:
    """Squeeze/Unsqueeze axes: the ``axes`` attribute before opset 13, the optional constant second input from
    13."""
    if ctx.opset < 13:
        axes = _attrs(node).get("axes")
        if axes is None and required:
            raise _err(node, "attribute axes is missing")
        return None if axes is None else [int(v) for v in axes]  # type: ignore[attr-defined]
    if len(node.input) > 1 and node.input[1]:
        return [int(v) for v in ctx.const(node.input[1], node).reshape(-1)]
    if required:
        raise _err(node, "input axes is missing")
    return None


@converter("Squeeze")
def convert_squeeze(node: onnx.NodeProto, ctx: Context) -> None:
    """Remove size-1 axes -> reshape (a relabel). Without axes, every size-1 per-sample axis (dim 0 is the batch
    whatever its size, so it stays)."""
    if moved_batch(node, ctx):  # a time-major recurrent output
        return
    shape = ctx.shape(node.input[0], node)
    rank = len(shape) + 1
    axes = _axes(node, ctx, required=False)
    if axes is None:
        ctx.emit("reshape", node, node.input[0], tuple(d for d in shape if d != 1))
        return
    norm = sorted({a + rank if a < 0 else a for a in axes})
    if len(norm) != len(axes) or any(not 0 <= a < rank for a in norm):
        raise _err(node, f"axes={axes} must be distinct axes of the rank-{rank} input")
    if 0 in norm:
        raise _err(node, f"axes={axes} squeezes axis 0, the batch dimension")
    bad = [a for a in norm if shape[a - 1] != 1]
    if bad:
        raise _err(node, f"axes={axes}: axis {bad[0]} has size {shape[bad[0] - 1]}, not 1")
    ctx.emit("reshape", node, node.input[0], tuple(d for i, d in enumerate(shape, 1) if i not in norm))


@converter("Unsqueeze")
def convert_unsqueeze(node: onnx.NodeProto, ctx: Context) -> None:
    """Insert size-1 axes -> reshape (a relabel); axes index the output (rank + len(axes))."""
    shape = ctx.shape(node.input[0], node)
    axes = _axes(node, ctx, required=True)
    assert axes is not None
    rank = len(shape) + 1 + len(axes)
    norm = sorted({a + rank if a < 0 else a for a in axes})
    if len(norm) != len(axes) or any(not 0 <= a < rank for a in norm):
        raise _err(node, f"axes={axes} must be distinct axes of the rank-{rank} output")
    if 0 in norm:
        raise _err(node, f"axes={axes} inserts axis 0 in front of the batch dimension")
    dims = iter(shape)
    ctx.emit("reshape", node, node.input[0], tuple(1 if i in norm else next(dims) for i in range(1, rank)))


@converter("Reshape")
def convert_reshape(node: onnx.NodeProto, ctx: Context) -> None:
    """Reshape to a constant shape whose first dimension is the batch (-1, 0 or the batch size)."""
    if moved_batch(node, ctx):  # of a time-major recurrent output
        return
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


def _spatial(shape: tuple[int, ...], node: onnx.NodeProto, one_d: bool = False) -> tuple[int, int, int]:
    """The (C, H, W) of a spatial op's ONNX per-sample input shape: (C, H, W) itself, or with ``one_d`` a
    (C, L) sequence as (C, 1, L) (`lift`)."""
    if one_d and len(shape) == 2:
        return shape[0], 1, shape[1]
    if len(shape) != 3:
        what = "(N, C, H, W) or (N, C, L)" if one_d else "(N, C, H, W)"
        raise _err(node, f"expects a {what} tensor, got per-sample shape {shape} (only 1-D and 2-D spatial ops)")
    return shape[0], shape[1], shape[2]


def _spatial_out(in_shape: tuple[int, ...], c: int, hw: tuple[int, int]) -> tuple[int, ...]:
    """ONNX per-sample output shape of a spatial op with ``c`` channels and (OH, OW) ``hw``: (C, OL) for a 1-D
    (C, L) input (OH = 1)."""
    return (c, hw[1]) if len(in_shape) == 2 else (c,) + hw


def _pads(node: onnx.NodeProto, size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
          dilations: tuple[int, int], a: dict[str, object]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from ``pads`` or ``auto_pad`` of the (2-D) attributes ``a``."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        p = [int(v) for v in a.get("pads", [0, 0, 0, 0])]  # type: ignore[union-attr]
        return p[0], p[1], p[2], p[3]
    if auto == "VALID":
        return 0, 0, 0, 0
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise _err(node, f"auto_pad={auto} not supported")
    lo_hi = []
    for n, k, st, d in zip(size, kernel, strides, dilations):
        out = -(-n // st)
        total = max(0, (out - 1) * st + (k - 1) * d + 1 - n)
        small, big = total // 2, total - total // 2
        lo_hi.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return lo_hi[0][0], lo_hi[1][0], lo_hi[0][1], lo_hi[1][1]


def _window_attrs(node: onnx.NodeProto, one_d: bool) -> dict[str, object]:
    """The node's attributes in 2-D form: a 1-D window (kernel k, stride s, dilation d, pads [b, e]) over a
    lifted (C, 1, L) tensor is the 2-D window 1 x k, strides (1, s), dilations (1, d), pads (0, b, 0, e)."""
    a = _attrs(node)
    if not one_d:
        return a
    for key, want in (("kernel_shape", 1), ("strides", 1), ("dilations", 1), ("pads", 2)):
        if key in a and len(a[key]) != want:  # type: ignore[arg-type]
            raise _err(node, f"attribute {key}={list(a[key])} on a rank-3 (N, C, L) input: a 1-D window needs "  # type: ignore[call-overload]
                             f"{want} entr{'y' if want == 1 else 'ies'}")
    out = dict(a)
    for key in ("kernel_shape", "strides", "dilations"):
        if key in a:
            out[key] = [1] + [int(v) for v in a[key]]  # type: ignore[attr-defined]
    if "pads" in a:
        b, e = (int(v) for v in a["pads"])  # type: ignore[attr-defined]
        out["pads"] = [0, b, 0, e]
    return out


def _window(node: onnx.NodeProto, shape: tuple[int, int, int], kernel: tuple[int, int],
            a: dict[str, object] | None = None) -> dict[str, object]:
    a = _attrs(node) if a is None else a
    strides = tuple(int(v) for v in a.get("strides", [1, 1]))  # type: ignore[union-attr]
    dil = tuple(int(v) for v in a.get("dilations", [1, 1]))  # type: ignore[union-attr]
    if len(strides) != 2 or len(dil) != 2 or len(kernel) != 2:
        raise _err(node, "only 2-D windows are supported")
    for what, values, lo in (("kernel_shape", kernel, 1), ("strides", strides, 1), ("dilations", dil, 1)):
        if any(v < lo for v in values):
            raise _err(node, f"attribute {what}={list(values)}: every entry must be >= {lo}")
    pads = _pads(node, (shape[1], shape[2]), kernel, strides, dil, a)  # type: ignore[arg-type]
    if any(v < 0 for v in pads):
        raise _err(node, f"attribute pads={list(pads)}: negative pads (cropping) are not supported")
    out = _out_hw(shape, {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dil})
    if min(out) < 1:
        raise _err(node, f"the {kernel[0]}x{kernel[1]} window (dilations {list(dil)}) does not fit the padded "
                         f"{shape[1]}x{shape[2]} input: output would be {out[0]}x{out[1]}")
    return {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dil}


def _out_hw(shape: tuple[int, int, int], win: dict[str, object], ceil: bool = False) -> tuple[int, int]:
    from ..ir.graph import conv_out_size

    (kh, kw), (sh, sw) = win["kernel"], win["strides"]  # type: ignore[misc]
    pt, pl, pb, pr = win["pads"]  # type: ignore[misc]
    dh, dw = win["dilations"]  # type: ignore[misc]
    return (conv_out_size(shape[1], kh, sh, pt, pb, dh, ceil), conv_out_size(shape[2], kw, sw, pl, pr, dw, ceil))


@converter("Conv")
def convert_conv(node: onnx.NodeProto, ctx: Context) -> None:
    """2-D convolution (strides, pads, auto_pad, dilations, groups) -> conv with a window-ordered weight matrix;
    grouped (incl. depthwise) convolutions become block-diagonal. A 1-D convolution (input (N, C, L), weight
    (Cout, C/groups, k)) is the 2-D one over (C, 1, L) with a 1 x k kernel (`_window_attrs`)."""
    in_shape = ctx.shape(node.input[0], node)
    shape = _spatial(in_shape, node, one_d=True)
    w = ctx.const(node.input[1], node).astype(np.float64)
    one_d = len(in_shape) == 2
    if w.ndim != (3 if one_d else 4):
        raise _err(node, f"weight rank {w.ndim} does not match a {'1' if one_d else '2'}-D convolution of a "
                         f"rank-{len(in_shape) + 1} input (only 1-D and 2-D convolutions are supported)")
    if one_d:
        w = w[:, :, None, :]
    groups = int(_attrs(node).get("group", 1))  # type: ignore[arg-type]
    cout, cin_g, kh, kw = w.shape
    if groups < 1 or cin_g * groups != shape[0] or cout % groups:
        raise _err(node, f"weight {w.shape} with group={groups} does not match {shape[0]} input channels")
    full = np.zeros((kh, kw, shape[0], cout))
    og = cout // groups
    for g in range(groups):
        full[:, :, g * cin_g:(g + 1) * cin_g, g * og:(g + 1) * og] = w[g * og:(g + 1) * og].transpose(2, 3, 1, 0)
    a = _window_attrs(node, one_d)
    if "kernel_shape" in a and tuple(int(v) for v in a["kernel_shape"]) != (kh, kw):  # type: ignore[attr-defined]
        raise _err(node, f"kernel_shape={list(_attrs(node)['kernel_shape'])} differs from the weight's "  # type: ignore[call-overload]
                         f"{w.shape[2 + one_d:]}")
    win = _window(node, shape, (kh, kw), a)
    params = {"weight": full.reshape(kh * kw * shape[0], cout)}
    if len(node.input) > 2 and node.input[2]:
        params["bias"] = ctx.const(node.input[2], node).astype(np.float64).reshape(cout)
    ctx.emit("conv", node, node.input[0], _spatial_out(in_shape, cout, _out_hw(shape, win)), act="none",
             groups=groups, params=params, **win)


@converter("MaxPool", "AveragePool")
def convert_pool(node: onnx.NodeProto, ctx: Context) -> None:
    """1-D and 2-D max/average pooling with pads, strides, dilations and ceil mode (1-D over (C, 1, L)); an
    average divides each window by its own count (``count_include_pad``, ceil-mode overhang: rule POOL)."""
    in_shape = ctx.shape(node.input[0], node)
    shape = _spatial(in_shape, node, one_d=True)
    a = _window_attrs(node, len(in_shape) == 2)
    if len(node.output) > 1 and node.output[1]:
        raise _err(node, "MaxPool's Indices output is not supported")
    if int(a.get("storage_order", 0)):  # type: ignore[arg-type]
        raise _err(node, "storage_order=1 is not supported")
    if "kernel_shape" not in a:
        raise _err(node, "attribute kernel_shape is missing")
    kernel = tuple(int(v) for v in a["kernel_shape"])  # type: ignore[attr-defined]
    win = _window(node, shape, kernel, a)  # type: ignore[arg-type]
    ceil = bool(a.get("ceil_mode", 0))
    mode = "max" if node.op_type == "MaxPool" else "avg"
    include = bool(a.get("count_include_pad", 0))
    ctx.emit("pool", node, node.input[0], _spatial_out(in_shape, shape[0], _out_hw(shape, win, ceil)), act="none",
             mode=mode, ceil_mode=ceil, count_include_pad=include, **win)


@converter("GlobalAveragePool")
def convert_gap(node: onnx.NodeProto, ctx: Context) -> None:
    """Mean over all pixels (or sequence positions) of each channel."""
    in_shape = ctx.shape(node.input[0], node)
    shape = _spatial(in_shape, node, one_d=True)
    ctx.emit("gap", node, node.input[0], _spatial_out(in_shape, shape[0], (1, 1)), act="none")


@converter("GlobalMaxPool")
def convert_global_max(node: onnx.NodeProto, ctx: Context) -> None:
    """Max over all pixels (or sequence positions) of each channel -> a max pool whose one window is the whole
    H x W input (stride 1, no padding)."""
    in_shape = ctx.shape(node.input[0], node)
    c, h, w = _spatial(in_shape, node, one_d=True)
    ctx.emit("pool", node, node.input[0], _spatial_out(in_shape, c, (1, 1)), act="none", mode="max",
             ceil_mode=False, count_include_pad=False, kernel=(h, w), strides=(1, 1), pads=(0, 0, 0, 0),
             dilations=(1, 1))


@converter("LRN")
def convert_lrn(node: onnx.NodeProto, ctx: Context) -> None:
    """Local response normalization across channels -> lrn (rule LRN: a fixed-point approximation on the vector
    unit); attributes size (required), alpha (1e-4), beta (0.75), bias (1.0), checked by `ops.lrn.check_attrs`."""
    from ..ops.lrn import check_attrs

    a = _attrs(node)
    if "size" not in a:
        raise _err(node, "attribute 'size' is required")
    size, alpha, beta, bias = (int(a["size"]), float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)),  # type: ignore[arg-type]
                               float(a.get("bias", 1.0)))  # type: ignore[arg-type]
    problem = check_attrs(size, alpha, beta, bias)
    if problem:
        raise _err(node, problem)
    in_shape = ctx.shape(node.input[0], node)
    _spatial(in_shape, node)  # (N, C, H, W), the only rank onnxruntime (the reference) runs
    ctx.emit("lrn", node, node.input[0], in_shape, size=size, alpha=alpha, beta=beta, bias=bias)


@converter("BatchNormalization")
def convert_batchnorm(node: onnx.NodeProto, ctx: Context) -> None:
    """Inference batch normalization -> affine with a per-channel scale and shift (axis 1 of the ONNX tensor)."""
    a = _attrs(node)
    if int(a.get("training_mode", 0)):  # type: ignore[arg-type]
        raise _err(node, "training_mode=1 is not supported")
    shape = ctx.shape(node.input[0], node)
    gamma, beta, mean, var = (ctx.const(i, node).astype(np.float64).reshape(-1) for i in node.input[1:5])
    if not shape or any(p.size != shape[0] for p in (gamma, beta, mean, var)):
        raise _err(node, f"scale, bias, mean and variance must have one value per channel of {shape}")
    eps = float(a.get("epsilon", 1e-5))  # type: ignore[arg-type]
    with np.errstate(all="ignore"):
        scale = gamma / np.sqrt(var + eps)
    if not np.isfinite(scale).all():
        bad = int(np.argwhere(~np.isfinite(scale))[0][0])
        raise _err(node, f"variance + epsilon of channel {bad} is {var[bad] + eps}: gamma / sqrt(variance + "
                         f"epsilon) is not finite")
    per_channel = (shape[0],) + (1,) * (len(shape) - 1)
    ctx.emit("affine", node, node.input[0], shape, nodes=(f"BatchNormalization '{node.name or node.output[0]}'",),
             params={"scale": scale.reshape(per_channel), "shift": (beta - mean * scale).reshape(per_channel)})


@converter("Concat")
def convert_concat(node: onnx.NodeProto, ctx: Context) -> None:
    """Concatenation on the channel axis of (N, C, H, W) tensors, or of (N, C, L) ones (as (C, 1, L): `lift`)."""
    shapes = [ctx.shape(i, node) for i in node.input]
    axis = int(_attrs(node)["axis"])  # type: ignore[arg-type]
    rank = len(shapes[0]) + 1
    if axis % rank != 1 or any(len(s) != len(shapes[0]) or len(s) not in (2, 3) for s in shapes):
        raise _err(node, f"only channel concatenation of (N, C, H, W) or (N, C, L) tensors is supported "
                         f"(axis={axis})")
    if any(s[1:] != shapes[0][1:] for s in shapes):
        raise _err(node, f"spatial shapes differ: {shapes}")
    out = (sum(s[0] for s in shapes),) + shapes[0][1:]
    ctx.define(node.output[0], out)
    ctx.ops.append(Op("concat", node.name or node.output[0], list(node.input), [node.output[0]], {}, {}))


@converter("Pad")
def convert_pad(node: onnx.NodeProto, ctx: Context) -> None:
    """Constant zero padding of the spatial axes (attributes before opset 11, inputs from 11)."""
    a = _attrs(node)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if ctx.opset < 11:
        pads, value = [int(v) for v in a.get("pads", [])], float(a.get("value", 0.0))  # type: ignore[union-attr]
    else:
        pads = [int(v) for v in ctx.const(node.input[1], node).reshape(-1)]
        value = float(ctx.const(node.input[2], node)) if len(node.input) > 2 and node.input[2] else 0.0
    shape = _spatial(ctx.shape(node.input[0], node), node)
    if mode != "constant" or value != 0.0 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
        raise _err(node, "only constant zero padding of the H and W axes is supported")
    pt, pl, pb, pr = pads[2], pads[3], pads[6], pads[7]
    if min(pads) < 0:
        raise _err(node, "negative pads (cropping) are not supported")
    ctx.emit("pad", node, node.input[0], (shape[0], shape[1] + pt + pb, shape[2] + pl + pr), pads=(pt, pl, pb, pr))


@converter("Gather")
def convert_gather(node: onnx.NodeProto, ctx: Context) -> None:
    """A permutation of channels (axis 1, constant indices; ShuffleNet's shuffle, see
    `onnx_frontend._shuffles_as_gathers`) folded into the crossbar layer that produces the input: its output
    columns and bias are permuted, and so are the per-channel constants of the elementwise ops between (each read
    only on this path). Exact; nothing runs for it. Other constant channel indices are a data move
    (`_select_channels`); other gathers are errors naming the node."""
    shape = ctx.shape(node.input[0], node)
    axis = int(_attrs(node).get("axis", 0))  # type: ignore[arg-type]
    axis = axis + len(shape) + 1 if axis < 0 else axis
    if node.input[1] not in ctx.consts or axis != 1:
        raise _err(node, "only a permutation of the channels (axis=1, constant indices) is supported")
    idx = np.asarray(ctx.consts[node.input[1]]).astype(np.int64).reshape(-1)
    c = shape[0]
    if sorted(idx.tolist()) != list(range(c)):
        _select_channels(node, ctx, shape, np.asarray(ctx.consts[node.input[1]]).astype(np.int64))
        return
    value, path = node.input[0], []
    while True:
        op = next((o for o in reversed(ctx.ops) if value in o.outputs), None)
        if op is None or ctx.uses.get(value, 0) != 1:
            raise _err(node, f"{node.doc_string or 'the channel permutation'} cannot fold: '{value}' is "
                             f"{'read elsewhere too' if op is not None else 'not produced by a device op'}")
        path.append(op)
        if op.is_crossbar:
            break
        if op.kind not in ("act", "affine"):
            raise _err(node, f"{node.doc_string or 'the channel permutation'} cannot fold through {op.kind} "
                             f"'{op.name}' (only "
                             f"activations and per-channel affines may sit between it and a Conv/Gemm)")
        value = op.inputs[0]
    for op in path:
        for k, v in list(op.params.items()):
            arr = np.asarray(v)
            if op.is_crossbar and k == "weight":
                op.params[k] = arr[:, idx]
            elif arr.ndim and arr.shape[0] == c and arr.size > 1:
                op.params[k] = arr[idx]
    ctx.emit("identity", node, node.input[0], shape)


def _select_channels(node: onnx.NodeProto, ctx: Context, shape: tuple[int, ...], idx: np.ndarray) -> None:
    """A Gather of constant channels (axis 1) that is not a permutation -- a subset, repeats, or one index (PyTorch's
    ``y[:, -1]``, the last step of a batch-first sequence): a data move (`ops.move`) copying those channels."""
    c = shape[0]
    if len(shape) not in (2, 3) or idx.ndim > 1 or not np.all((-c <= idx) & (idx < c)):
        raise _err(node, f"indices {idx.tolist()} are not a permutation of the {c} channels, nor a selection of "
                         f"channels of a (C, L) or (C, H, W) sample")
    picked = tuple(int(i) % c for i in idx.reshape(-1))
    lifted = lift(shape)
    moved = (len(picked), *shape[1:])
    out = node.output[0] if idx.ndim else f"{node.output[0]}__picked"
    ctx.emit("move", node, node.input[0], moved, out=out, name=out,
             grid=(((1, 0, 1, lifted[1]),), ((1, 0, 1, lifted[2]),)), channels=(picked,),
             nodes=(f"Gather '{node.name or node.output[0]}'",))
    if not idx.ndim:  # a scalar index drops the axis
        ctx.emit("reshape", node, out, tuple(shape[1:]))


@converter("Transpose")
def convert_transpose(node: onnx.NodeProto, ctx: Context) -> None:
    """A transpose that keeps the batch axis and the order of every axis longer than 1 is a relabelling."""
    if moved_batch(node, ctx):  # into or out of a time-major recurrent node
        return
    shape = ctx.shape(node.input[0], node)
    full = (1,) + shape
    perm = [int(p) for p in _attrs(node).get("perm", list(range(len(full)))[::-1])]  # type: ignore[union-attr]
    kept = [p for p in perm if full[p] > 1 and p != 0]
    if perm[0] != 0 or kept != sorted(kept):
        raise _err(node, f"perm={perm} moves data (only relabelling transposes are supported)")
    ctx.emit("reshape", node, node.input[0], tuple(full[p] for p in perm[1:]))


@converter("DepthToSpace")
def convert_depth_to_space(node: onnx.NodeProto, ctx: Context) -> None:
    """(C b^2, H, W) -> (C, H b, W b) as a data move (`ops.move`): DCR (default) output channel c at
    sub-position (i, j) is input channel (i b + j) C + c; CRD: c b^2 + i b + j."""
    a = _attrs(node)
    b = int(a.get("blocksize", 0))  # type: ignore[call-overload]
    mode = a.get("mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if b < 1:
        raise _err(node, f"blocksize={b} must be a positive integer")
    if mode not in ("DCR", "CRD"):
        raise _err(node, f"mode={mode!r} is not DCR or CRD")
    c, h, w = _spatial(ctx.shape(node.input[0], node), node)
    if c % (b * b):
        raise _err(node, f"{c} channels are not a multiple of blocksize^2 = {b * b}")
    co = c // (b * b)
    chans = tuple(tuple((i * b + j) * co + k if mode == "DCR" else k * b * b + i * b + j for k in range(co))
                  for i in range(b) for j in range(b))
    ctx.emit("move", node, node.input[0], (co, h * b, w * b), grid=(((1, 0, b, h),), ((1, 0, b, w),)), channels=chans,
             nodes=(f"DepthToSpace '{node.name or node.output[0]}'",))


def nearest_source(n_in: int, n_out: int, scale: float, transform: str, rounding: str) -> np.ndarray:
    """The input index ONNX's nearest Resize reads for every output index of one axis (its coordinate
    transformation and nearest_mode, clamped to the input)."""
    x = np.arange(n_out, dtype=np.float64)
    if transform in ("half_pixel", "pytorch_half_pixel"):
        orig = (x + 0.5) / scale - 0.5 if n_out > 1 or transform == "half_pixel" else np.zeros(n_out)
    elif transform == "align_corners":
        orig = x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    elif transform == "asymmetric":
        orig = x / scale
    elif transform == "tf_half_pixel_for_nn":
        orig = (x + 0.5) / scale
    elif transform == "half_pixel_symmetric":
        adjust = n_out / (scale * n_in)
        orig = n_in / 2 * (1 - adjust) + (x + 0.5) / scale - 0.5
    else:
        raise ValueError(transform)
    frac = orig - np.floor(orig)
    if rounding == "floor":
        idx = np.floor(orig)
    elif rounding == "ceil":
        idx = np.ceil(orig)
    elif rounding == "round_prefer_ceil":
        idx = np.where(frac == 0.5, np.ceil(orig), np.round(orig))
    else:  # round_prefer_floor
        idx = np.where(frac == 0.5, np.floor(orig), np.round(orig))
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


_TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
               "half_pixel_symmetric")
_ROUNDINGS = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _text(a: dict[str, object], key: str, default: str) -> str:
    v = a.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


@converter("Resize", "Upsample")
def convert_resize(node: onnx.NodeProto, ctx: Context) -> None:
    """Nearest Resize (and the older Upsample) of the spatial axes -> a data move (`ops.move`): the input index
    each output row and column reads follows ONNX's coordinate transformation and nearest_mode
    (`nearest_source`), cut into segments of integer up- or downsampling (`ops.move.segments`)."""
    a = _attrs(node)
    mode = _text(a, "mode", "nearest")
    if mode != "nearest":
        raise _err(node, f"mode={mode!r}: only nearest resizing is supported (a data move; {mode} interpolates)")
    upsample = node.op_type == "Upsample"
    transform = "asymmetric" if upsample else _text(a, "coordinate_transformation_mode", "half_pixel")
    rounding = "floor" if upsample else _text(a, "nearest_mode", "round_prefer_floor")
    if transform not in _TRANSFORMS:
        raise _err(node, f"coordinate_transformation_mode={transform!r} is not supported (one of "
                         f"{', '.join(_TRANSFORMS)}; tf_crop_and_resize needs a region of interest)")
    if rounding not in _ROUNDINGS:
        raise _err(node, f"nearest_mode={rounding!r} is not one of {', '.join(_ROUNDINGS)}")
    policy = _text(a, "keep_aspect_ratio_policy", "stretch")
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise _err(node, f"keep_aspect_ratio_policy={policy!r} is not stretch, not_larger or not_smaller")
    in_shape = ctx.shape(node.input[0], node)
    c, h, w = _spatial(in_shape, node, one_d=True)
    full = (1,) + tuple(in_shape)
    rank = len(full)
    axes = [int(v) % rank for v in a.get("axes", range(rank))]  # type: ignore[call-overload]
    if upsample:
        scales_in = node.input[1] if len(node.input) > 1 else ""
    else:
        scales_in = node.input[1] if ctx.opset < 11 else (node.input[2] if len(node.input) > 2 else "")
    sizes_in = node.input[3] if not upsample and ctx.opset >= 11 and len(node.input) > 3 else ""
    given = [float(v) for v in a["scales"]] if upsample and "scales" in a else None  # type: ignore[union-attr]
    if given is None and scales_in and ctx.const(scales_in, node).size:
        given = [float(v) for v in ctx.const(scales_in, node).reshape(-1)]
    scales = [1.0] * rank
    sizes = list(full)
    if given is not None:
        if len(given) != len(axes):
            raise _err(node, f"{len(given)} scales for {len(axes)} axes")
        for ax, s in zip(axes, given):
            scales[ax] = s
            sizes[ax] = int(np.floor(full[ax] * s))
    elif sizes_in:
        got = [int(v) for v in ctx.const(sizes_in, node).reshape(-1)]
        if len(got) != len(axes):
            raise _err(node, f"{len(got)} sizes for {len(axes)} axes")
        ratios = [n / full[ax] for ax, n in zip(axes, got)]
        keep = {"not_larger": min(ratios), "not_smaller": max(ratios)}.get(policy)
        for ax, n in zip(axes, got):  # with a policy, one scale for the axes and sizes rounded half up
            scales[ax] = n / full[ax] if keep is None else keep
            sizes[ax] = n if keep is None else int(keep * full[ax] + 0.5)
    else:
        raise _err(node, "needs constant scales or sizes")
    if sizes[1] != full[1] or scales[1] != 1.0:
        raise _err(node, f"resizes the channel axis (scales {scales}, sizes {sizes}); only spatial axes move")
    spatial = list(range(2, rank))
    if any(n < 1 for n in sizes):
        raise _err(node, f"output sizes {sizes} must be positive")
    maps = [nearest_source(full[ax], sizes[ax], scales[ax], transform, rounding) for ax in spatial]
    if len(maps) == 1:  # a (C, L) sequence is (C, 1, L)
        maps = [np.zeros(1, dtype=np.int64)] + maps
    out = (c,) + tuple(sizes[2:])
    ctx.emit("move", node, node.input[0], out, grid=tuple(segments([int(v) for v in m]) for m in maps), channels=(),
             nodes=(f"{node.op_type} '{node.name or node.output[0]}'",))


from .recurrent import moved_batch  # noqa: E402  (registers LSTM, GRU, RNN; imports this module)
