"""Activation-range calibration on data: the float reference (`compiler.reference`) over the calibration batch."""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace
from typing import Any

import numpy as np

from isa.memory import chunk_size, memory_budget

from ..ir import Graph, Op
from ..ops import crossbar_kind
from ..reference import FloatEnv, apply_act, float_forward, layer_inputs, out_hw, run_op
from .windows import internal, to_hwc

__all__ = ["CALIB_DTYPE", "EXP_LO", "EXP_HI", "FloatEnv", "LayerRange", "Ranges", "UniformInputs", "apply_act", "calibrate",
           "exponent_histogram", "float_forward", "item_bytes", "last_uses", "layer_inputs", "out_hw", "run_op"]


@dataclass(frozen=True)
class LayerRange:
    """Largest magnitudes seen for one crossbar layer: its weights, its input, its accumulator (partial sums
    over crossbar row blocks, bias included, and the pre-activation value) and its output."""

    weight: float
    input: float
    acc: float
    output: float


EXP_LO, EXP_HI = -200, 200  # binary exponents kept in `Ranges.exponents` (frexp; beyond them: the end bins)


class Ranges(dict):  # type: ignore[type-arg]
    """Crossbar-layer ranges by layer name, plus ``values``: the largest magnitude of every tensor, and
    ``exponents``: per tensor, how many non-zero values have each binary exponent e (|v| = m 2^e, 0.5 <= m < 1;
    index e - EXP_LO), which says how many would round to 0 in a given format (`quant.health`)."""

    values: dict[str, float]
    exponents: dict[str, np.ndarray]

    def __init__(self, *a: Any, values: dict[str, float] | None = None,
                 exponents: dict[str, np.ndarray] | None = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.values = values or {}
        self.exponents = exponents or {}


SCAN = 1 << 20  # elements per slice when scanning a tensor for its range and exponents (bounds the temporaries)


def exponent_histogram(v: np.ndarray) -> np.ndarray:
    """Counts of the binary exponents of the non-zero finite entries of ``v`` (see `Ranges.exponents`)."""
    return _scan(v)[1]


def _scan(v: np.ndarray) -> tuple[float, np.ndarray]:
    """(largest |v|, `exponent_histogram` of v), in slices of `SCAN` elements so that the temporaries stay
    small whatever the tensor's size; exact in v's own dtype (frexp of a float32 value equals that of the same
    value in float64)."""
    flat = np.asarray(v).reshape(-1)
    top, hist = 0.0, np.zeros(EXP_HI - EXP_LO + 1, dtype=np.int64)
    for lo in range(0, len(flat), SCAN):
        a = np.abs(flat[lo:lo + SCAN])
        top = max(top, float(a.max(initial=0.0)))
        a = a[(a > 0) & np.isfinite(a)]
        e = np.clip(np.frexp(a)[1], EXP_LO, EXP_HI) - EXP_LO
        hist += np.bincount(e, minlength=EXP_HI - EXP_LO + 1)
    return top, hist


class UniformInputs:
    """Synthetic calibration inputs: ``n`` samples of each input uniform in [0, 1), drawn in chunks on demand;
    the values equal ``rng.random((n,) + shape)`` for each input in turn from ``np.random.default_rng(seed)``
    (one 64-bit draw per value, so a chunk starts ``offset`` draws into the stream)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], n: int, seed: int = 0) -> None:
        self.shapes, self.n, self.seed = shapes, n, seed

    def __len__(self) -> int:
        return self.n

    def chunk(self, lo: int, hi: int) -> FloatEnv:
        """Samples [lo, hi) of every input."""
        out, start = {}, 0
        for name, shape in self.shapes.items():
            size = int(np.prod(shape))
            bits = np.random.PCG64(self.seed)
            bits.advance(start + lo * size)
            out[name] = np.random.Generator(bits).random((hi - lo,) + tuple(shape))
            start += self.n * size
        return out


CALIB_DTYPE = np.float32  # calibration's float type (docs/semantics.md, "Calibration")


def last_uses(g: Graph) -> dict[str, int]:
    """For every value read by an op, the index of the last op reading it (graph outputs: past the end)."""
    last = {i: k for k, op in enumerate(g.ops) for i in op.inputs}
    last.update({o: len(g.ops) for o in g.outputs})
    return last


def item_bytes(g: Graph, dtype: type = CALIB_DTYPE) -> tuple[int, str]:
    """Bytes `calibrate` holds per sample at its peak, and a description for messages: at each op, the tensors
    still to be read (inputs, live values, its output and one temporary of the output's size) and, for a crossbar
    layer, its input rows (im2col, twice: windows and their copy) and partial sums (three of them), all in
    ``dtype`` (`_crossbar_range`)."""
    size = {k: int(np.prod(v.shape)) for k, v in g.values.items()}
    last = last_uses(g)
    live = {v.name for v in g.inputs}
    item, worst, name = np.dtype(dtype).itemsize, 0, ""
    for k, op in enumerate(g.ops):
        live.add(op.outputs[0])
        need = (sum(size[v] for v in live) + size[op.outputs[0]]) * item
        what = f"{len(live)} tensors in {np.dtype(dtype).name} at op '{op.name}'"
        if op.is_crossbar:
            n_in, n_out = op.params["weight"].shape
            pixels = crossbar_kind(op).pixels(g, op)
            need += pixels * (2 * n_in + 3 * n_out) * item
            what += f"; layer '{op.name}': {pixels} windows of {n_in} inputs"
        if need > worst:
            worst, name = need, what
        live = {v for v in live if last.get(v, -1) > k}
    return worst, name


def calibrate(g: Graph, inputs: FloatEnv | UniformInputs, row_block: int, budget: int | None = None,
              dtype: type = CALIB_DTYPE) -> Ranges:
    """Ranges of every crossbar layer and tensor on calibration data (accumulators include row-block partials),
    computed by the float reference in ``dtype`` (float32 by default).

    The samples are processed in chunks that fit the memory budget (`isa.memory`; the ranges are maxima, so the
    chunks' ranges combine into those of one pass); a sample that alone exceeds the budget is an error. Within a
    chunk, each tensor is dropped after its last reader, so the peak is that of the widest point of the graph
    (`item_bytes`), not the sum of all tensors."""
    n = len(inputs) if isinstance(inputs, UniformInputs) else len(next(iter(inputs.values()), ()))
    per, detail = item_bytes(g, dtype)
    size = chunk_size("calibration", per, max(n, 1), memory_budget() if budget is None else budget, detail)
    out: Ranges | None = None
    for lo in range(0, max(n, 1), size):
        part = inputs.chunk(lo, min(n, lo + size)) if isinstance(inputs, UniformInputs) else \
            {k: v[lo:lo + size] for k, v in inputs.items()}
        r = _calibrate(g, part, row_block, dtype)
        out = r if out is None else _merge(out, r)
    assert out is not None
    return out


def _merge(a: Ranges, b: Ranges) -> Ranges:
    out = Ranges(values={k: max(a.values[k], b.values[k]) for k in a.values},
                 exponents={k: a.exponents[k] + b.exponents[k] for k in a.exponents})
    for k in a:
        out[k] = LayerRange(*(max(x, y) for x, y in zip(astuple(a[k]), astuple(b[k]))))
    return out


def _calibrate(g: Graph, inputs: FloatEnv, row_block: int, dtype: type) -> Ranges:
    env = {k: to_hwc(np.asarray(v, dtype=dtype), g.values[k].shape) for k, v in inputs.items()}
    out = Ranges()
    for k, v in env.items():
        out.values[k], out.exponents[k] = _scan(v)
    last = last_uses(g)
    for k, op in enumerate(g.ops):
        xs = [env[i] for i in op.inputs]
        name = op.outputs[0]
        if op.is_crossbar:  # the pre-activation is the sum of the row blocks' partial sums (and the bias)
            pre, layer = _crossbar_range(g, op, xs[0], row_block)
            y = apply_act(op.attrs, pre)
        else:
            y = run_op(g, op, xs)
        y = internal(y.astype(dtype, copy=False), g.values[name].shape)
        out.values[name], out.exponents[name] = _scan(y)
        if op.is_crossbar:
            out[op.name] = replace(layer, output=out.values[name])
        env[name] = y
        del xs, y
        for i in set(op.inputs):
            if last.get(i, -1) <= k:
                del env[i]
    return out


def _crossbar_range(g: Graph, op: Op, x: np.ndarray, row_block: int) -> tuple[np.ndarray, LayerRange]:
    """A crossbar layer's pre-activation output (its float semantics, accumulated row block by row block as the
    crossbars do) and its `LayerRange` (output left 0) from its input ``x``, in x's dtype. Each sample's rows
    are multiplied on their own: a float32 product's rounding depends on how many rows BLAS gets at once, so
    this keeps a chunked calibration equal to one pass."""
    if op.kind == "recurrent":  # the MVM input holds x and h; the accumulator format holds the cell state
        from .recurrent import float_recurrent
        y, r = float_recurrent(op, x)
        return y.astype(x.dtype, copy=False), LayerRange(r["weight"], r["input"], r["acc"], 0.0)
    rows = layer_inputs(g, op, x)
    w = op.params["weight"].astype(rows.dtype, copy=False)
    partial = np.zeros((rows.shape[0], w.shape[1]), dtype=rows.dtype)
    per = rows.shape[0] // max(1, len(x))
    acc = 0.0
    for b0 in range(0, rows.shape[0], per):
        part = partial[b0:b0 + per]
        for r0 in range(0, w.shape[0], row_block):
            part += rows[b0:b0 + per, r0:r0 + row_block] @ w[r0:r0 + row_block]
            acc = max(acc, float(np.abs(part).max(initial=0.0)))
    if "bias" in op.params:
        partial += op.params["bias"].astype(rows.dtype, copy=False)
        acc = max(acc, float(np.abs(partial).max(initial=0.0)))
    ohw = crossbar_kind(op).windows(g, op)
    pre = partial if ohw is None else partial.reshape(len(x), ohw[0], ohw[1], -1)
    return pre, LayerRange(float(np.abs(w).max(initial=0.0)), float(np.abs(rows).max(initial=0.0)), acc, 0.0)
