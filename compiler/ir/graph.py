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

    Kinds and their contract (checked by `verify`):

    - ``dense``: 1 input of n_in elements (any shape, read row-major), 1 output (n_out,); params ``weight`` (n_in, n_out), optional ``bias`` (n_out,);
      attr ``act`` in ``ACTIVATIONS`` (applied after the bias; set by the fusion pass).
    - ``affine``: 1 input, 1 output of the same shape: ``x * scale + shift`` elementwise; params ``scale`` and
      ``shift`` in per-sample broadcast form (rank of the shape, each axis 1 or full, ONNX axis order, e.g.
      (C, 1, 1) per channel); attr ``nodes``: the ONNX nodes merged into it (BatchNormalization, Add, Sub, Mul,
      Div by constants). Folded into a neighbouring crossbar layer by `passes.affine.FoldAffine`.
    - ``act``: 1 input, 1 output of the same shape; attr ``act`` (the function).
    - ``reshape``: 1 input, 1 output with the same number of elements (row-major relabelling, no data movement;
      canonicalization removes it or codegen rejects it).
    - ``identity``: 1 input, 1 output of the same shape.
    - ``conv``: (C, H, W) -> (Cout, OH, OW); params ``weight`` (kh*kw*C, Cout) with rows in window order
      (kernel row, kernel column, input channel) -- grouped convolutions are block-diagonal -- and ``bias``;
      attrs ``kernel``, ``strides``, ``pads`` (top, left, bottom, right), ``dilations``, ``act``.
    - ``pool``: (C, H, W) -> (C, OH, OW); attrs ``mode`` (max/avg), ``kernel``, ``strides``, ``pads``,
      ``ceil_mode``, ``count_include_pad`` (an average divides each window by its own count:
      `quant.windows.window_counts`), ``act``. GlobalMaxPool is the pool whose one window is the whole input.
    - ``gap``: (C, H, W) -> (C, 1, 1) global average; ``act``.
    - ``eltwise``: 1 or 2 inputs -> the first's shape: attr ``op`` (absent: ``add``; ``sub``, ``mul``) of the
      inputs, then ``act``; the second input may be (C, 1, 1) against a (C, H, W) first (broadcast over the
      pixels, as squeeze-excite gating multiplies).
    - ``concat``: (C_i, H, W) inputs -> (sum C_i, H, W).
    - ``pad``: constant-zero spatial padding (folded into the next conv by a pass).
    - ``recurrent``: one direction of an LSTM/GRU/RNN over a sequence (T, 1, C) (a batch-first (N, T, C) tensor
      lifted); attrs ``cell`` (lstm, gru, rnn), ``hidden`` H, ``steps`` T, ``reverse``, ``acts`` (the gate
      functions), ``clip`` (None or the pre-activation bound), ``input_forget``, ``out``: ``seq`` (output
      (T, 1, H), h_t at time t), ``h`` or ``c`` (the last hidden or cell state, (1, 1, H)); params ``weight``
      (C + H, columns) on [x_t ; h_{t-1}], ``bias`` (columns,), ``init_h`` (H,), LSTM ``init_c`` and optional
      ``peephole`` (3H: i, o, f). A crossbar layer (`frontend.recurrent`, rule RECURRENT).

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
        return self.kind in CROSSBAR_KINDS


ACTIVATIONS = ("none", "relu", "sigmoid", "tanh", "leaky_relu", "clip")
CROSSBAR_KINDS = ("dense", "conv", "recurrent")
OP_KINDS = ("dense", "conv", "pool", "gap", "eltwise", "concat", "pad", "affine", "act", "reshape", "identity",
            "recurrent")
ARITY = {"eltwise": (1, 2), "concat": (1, 64)}


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
    def fail(msg: str) -> None:
        raise ModelError(f"IR verifier: op '{op.name}' ({op.kind}): {msg}")

    if op.kind not in OP_KINDS:
        fail(f"unknown kind; known: {', '.join(OP_KINDS)}")
    lo, hi = ARITY.get(op.kind, (1, 1))
    if not lo <= len(op.inputs) <= hi or len(op.outputs) != 1:
        fail(f"expects {lo}..{hi} inputs and 1 output, has {len(op.inputs)} and {len(op.outputs)}")
    for name in op.inputs:
        if name not in defined:
            fail(f"input '{name}' used before it is defined")
    ins = [_check_value(g, i, op).shape for i in op.inputs]
    out = _check_value(g, op.outputs[0], op).shape
    if op.attrs.get("act", "none") not in ACTIVATIONS:
        fail(f"activation {op.attrs.get('act')!r} not in {ACTIVATIONS}")
    problem = _CHECKS.get(op.kind, _same_shape)(op, ins, out)
    if problem:
        fail(problem)


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


def _same_shape(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    if any(s != out for s in ins):
        return f"shapes change {ins} -> {out}"
    if op.kind == "act" and op.attrs.get("act") in (None, "none"):
        return "standalone activation without a function"
    return None


ELTWISE_OPS = ("add", "sub", "mul")


def _check_eltwise(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    if op.attrs.get("op", "add") not in ELTWISE_OPS:
        return f"op {op.attrs.get('op')!r} not in {ELTWISE_OPS}"
    if len(ins) == 2 and len(out) == 3 and ins[0] == out and ins[1] == (out[0], 1, 1):
        return None
    return _same_shape(op, ins, out)


RECURRENT_COLUMNS = {"lstm": 4, "gru": 4, "rnn": 1}  # weight columns per hidden unit (GRU: z, r, n_x, n_h)


def _check_recurrent(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    a, w = op.attrs, op.params["weight"]
    if len(ins[0]) != 3 or ins[0][1] != 1 or ins[0][0] != a["steps"]:
        return f"input shape {ins[0]} is not a sequence of {a['steps']} steps (T, 1, C)"
    h = a["hidden"]
    want = (a["steps"], 1, h) if a["out"] == "seq" else (1, 1, h)
    if out != want:
        return f"output shape {out}, expected {want}"
    if w.shape != (ins[0][2] + h, RECURRENT_COLUMNS[a["cell"]] * h):
        return f"weight {w.shape} is not (C + H, {RECURRENT_COLUMNS[a['cell']]} H)"
    return None


def broadcast_param(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An affine op's ``scale`` or ``shift`` (per-sample broadcast form) expanded to the full per-sample shape."""
    return np.broadcast_to(p, shape)


def _check_affine(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    problem = _same_shape(op, ins, out)
    for key in ("scale", "shift"):
        p = op.params.get(key)
        if problem is None and (p is None or p.ndim != len(out) or any(a not in (1, b) for a, b in zip(p.shape, out))):
            problem = f"param {key} {None if p is None else p.shape} is not a per-sample broadcast of {out}"
    return problem


def _check_dense(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    w, b = op.params.get("weight"), op.params.get("bias")
    if w is None or w.ndim != 2 or w.shape != (_size(ins[0]), _size(out)):
        return f"weight {None if w is None else w.shape} does not map {ins[0]} to {out}"
    if b is not None and b.shape != (_size(out),):
        return f"bias shape {b.shape} != ({_size(out)},)"
    return None


def _window_out(op: Op, shape: tuple[int, ...]) -> tuple[int, int]:
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
    pt, pl, pb, pr = op.attrs["pads"]
    dh, dw = op.attrs.get("dilations", (1, 1))
    ceil = bool(op.attrs.get("ceil_mode", False))
    return (conv_out_size(shape[1], kh, sh, pt, pb, dh, ceil), conv_out_size(shape[2], kw, sw, pl, pr, dw, ceil))


def _check_conv(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    if len(ins[0]) != 3 or len(out) != 3:
        return f"expects (C, H, W) tensors, got {ins[0]} -> {out}"
    kh, kw = op.attrs["kernel"]
    w = op.params.get("weight")
    if w is None or w.shape != (kh * kw * ins[0][0], out[0]):
        return f"weight {None if w is None else w.shape} != ({kh * kw * ins[0][0]}, {out[0]})"
    if _window_out(op, ins[0]) != out[1:]:
        return f"output {out} does not match the window geometry {_window_out(op, ins[0])}"
    return None


def _check_pool(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    if len(ins[0]) != 3 or out[0] != ins[0][0] or _window_out(op, ins[0]) != out[1:]:
        return f"pooling {ins[0]} -> {out} does not match the window geometry"
    if op.attrs.get("mode") not in ("max", "avg"):
        return f"mode {op.attrs.get('mode')!r} not in (max, avg)"
    return None


def _check_gap(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    if len(ins[0]) != 3 or out != (ins[0][0], 1, 1):
        return f"global pooling {ins[0]} -> {out}"
    return None


def _check_concat(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    if any(len(s) != 3 or s[1:] != out[1:] for s in ins) or sum(s[0] for s in ins) != out[0]:
        return f"channel concat {ins} -> {out}"
    return None


def _check_reshape(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    return None if _size(ins[0]) == _size(out) else f"reshape changes the element count {ins[0]} -> {out}"


def _check_pad(op: Op, ins: list[tuple[int, ...]], out: tuple[int, ...]) -> str | None:
    pt, pl, pb, pr = op.attrs["pads"]
    c, h, w = ins[0]
    return None if out == (c, h + pt + pb, w + pl + pr) else f"pad {ins[0]} -> {out}"


_CHECKS = {"dense": _check_dense, "conv": _check_conv, "pool": _check_pool, "gap": _check_gap,
           "concat": _check_concat, "reshape": _check_reshape, "pad": _check_pad, "affine": _check_affine,
           "eltwise": _check_eltwise, "recurrent": _check_recurrent}


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
