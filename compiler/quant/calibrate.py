"""Float execution of the IR (internal HWC layout) and activation-range calibration on data."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

from isa.memory import chunk_size, memory_budget

from ..ir import Graph, Op, broadcast_param
from .windows import from_hwc, im2col, internal, pad_hwc, to_hwc, window_counts, windows

FloatEnv = dict[str, np.ndarray]


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


def exponent_histogram(v: np.ndarray) -> np.ndarray:
    """Counts of the binary exponents of the non-zero finite entries of ``v`` (see `Ranges.exponents`)."""
    a = np.abs(np.asarray(v, dtype=np.float64)).reshape(-1)
    a = a[(a > 0) & np.isfinite(a)]
    e = np.clip(np.frexp(a)[1], EXP_LO, EXP_HI) - EXP_LO
    return np.bincount(e, minlength=EXP_HI - EXP_LO + 1).astype(np.int64)


def apply_act(attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Float activation named by ``attrs['act']``."""
    fn = attrs.get("act", "none")
    if fn == "relu":
        return np.maximum(x, 0.0)
    if fn == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    if fn == "tanh":
        return np.tanh(x)
    if fn == "leaky_relu":
        return np.maximum(x, attrs["alpha"] * x)
    if fn == "clip":
        return np.clip(x, attrs["lo"], attrs["hi"])
    return x


def out_hw(g: Graph, op: Op) -> tuple[int, int]:
    """Spatial output size of a windowed op."""
    shape = g.values[op.outputs[0]].shape
    return shape[1], shape[2]


def _pre_activation(g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
    x, b = xs[0], len(xs[0])
    k = op.kind
    if k == "dense":
        return x.reshape(b, -1) @ op.params["weight"] + op.params.get("bias", 0.0)
    if k == "conv":
        oh, ow = out_hw(g, op)
        y = im2col(x, op, (oh, ow)) @ op.params["weight"] + op.params.get("bias", 0.0)
        return y.reshape(b, oh, ow, -1)
    if k == "pool" and op.attrs["mode"] == "max":
        return windows(x, op, out_hw(g, op), -np.inf).max(axis=(3, 4))
    if k == "pool":
        ch, cw = window_counts(op, x.shape[1:3], out_hw(g, op))
        return windows(x, op, out_hw(g, op), 0.0).sum(axis=(3, 4)) / (ch[:, None] * cw[None, :])[None, :, :, None]
    if k == "gap":
        return x.mean(axis=(1, 2), keepdims=True)
    if k == "eltwise" and len(xs) == 2 and op.attrs.get("op", "add") != "add":
        return xs[0] * xs[1] if op.attrs["op"] == "mul" else xs[0] - xs[1]
    if k == "eltwise":
        return sum(xs[1:], xs[0])
    if k == "concat":
        return np.concatenate(xs, axis=-1)
    if k == "pad":
        return pad_hwc(x, op.attrs["pads"], 0.0)
    if k == "affine":
        shape = g.values[op.inputs[0]].shape
        scale, shift = (to_hwc(broadcast_param(op.params[p], shape)[None], shape)[0] for p in ("scale", "shift"))
        return x * scale + shift
    if k == "reshape":
        return to_hwc(from_hwc(x, g.values[op.inputs[0]].shape), g.values[op.outputs[0]].shape)
    return x


def run_op(g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
    """One op in float64 on internal-layout inputs."""
    if op.kind == "recurrent":
        from .recurrent import float_recurrent
        return float_recurrent(op, xs[0])[0]
    return apply_act(op.attrs, _pre_activation(g, op, xs))


def float_forward(g: Graph, inputs: FloatEnv) -> FloatEnv:
    """Every value of the graph in float64, internal layout (B, H, W, C) or (B, F), from ONNX-layout inputs."""
    env = {k: to_hwc(np.asarray(v, dtype=np.float64), g.values[k].shape) for k, v in inputs.items()}
    for op in g.ops:
        env[op.outputs[0]] = internal(run_op(g, op, [env[i] for i in op.inputs]), g.values[op.outputs[0]].shape)
    return env


def layer_inputs(g: Graph, op: Op, x: np.ndarray) -> np.ndarray:
    """The (rows, K) matrix a crossbar layer multiplies: flat inputs (dense) or im2col windows (conv)."""
    return im2col(x, op, out_hw(g, op)) if op.kind == "conv" else x.reshape(len(x), -1)


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


def item_bytes(g: Graph) -> tuple[int, str]:
    """Float64 bytes `calibrate` holds per sample: every value of the graph, and the largest crossbar layer's
    input rows (im2col, twice: windows and their copy) and partial sums; and a description for messages."""
    values = sum(int(np.prod(v.shape)) for v in g.values.values()) * 8
    worst, name = 0, ""
    for op in g.crossbar_ops():
        n_in, n_out = op.params["weight"].shape
        pixels = int(np.prod(out_hw(g, op))) if op.kind == "conv" else 1
        need = pixels * (2 * n_in + 3 * n_out) * 8
        if need > worst:
            worst, name = need, f"; layer '{op.name}': {pixels} windows of {n_in} inputs"
    return values + worst, f"{len(g.values)} tensors in float64{name}"


def calibrate(g: Graph, inputs: FloatEnv | UniformInputs, row_block: int, budget: int | None = None) -> Ranges:
    """Ranges of every crossbar layer and tensor on calibration data (accumulators include row-block partials).

    The samples are processed in chunks that fit the memory budget (`isa.memory`; the ranges are maxima, so the
    chunks' ranges combine into those of one pass); a sample that alone exceeds the budget is an error."""
    n = len(inputs) if isinstance(inputs, UniformInputs) else len(next(iter(inputs.values()), ()))
    per, detail = item_bytes(g)
    size = chunk_size("calibration", per, max(n, 1), memory_budget() if budget is None else budget, detail)
    out: Ranges | None = None
    for lo in range(0, max(n, 1), size):
        part = inputs.chunk(lo, min(n, lo + size)) if isinstance(inputs, UniformInputs) else \
            {k: v[lo:lo + size] for k, v in inputs.items()}
        r = _calibrate(g, part, row_block)
        out = r if out is None else _merge(out, r)
    assert out is not None
    return out


def _merge(a: Ranges, b: Ranges) -> Ranges:
    out = Ranges(values={k: max(a.values[k], b.values[k]) for k in a.values},
                 exponents={k: a.exponents[k] + b.exponents[k] for k in a.exponents})
    for k in a:
        out[k] = LayerRange(*(max(x, y) for x, y in zip(astuple(a[k]), astuple(b[k]))))
    return out


def _calibrate(g: Graph, inputs: FloatEnv, row_block: int) -> Ranges:
    env = float_forward(g, inputs)
    out = Ranges(values={k: float(np.abs(v).max(initial=0.0)) for k, v in env.items()},
                 exponents={k: exponent_histogram(v) for k, v in env.items()})
    for op in g.crossbar_ops():
        if op.kind == "recurrent":  # the MVM input holds x and h; the accumulator format holds the cell state
            from .recurrent import float_recurrent
            r = float_recurrent(op, env[op.inputs[0]])[1]
            out[op.name] = LayerRange(r["weight"], r["input"], r["acc"], out.values[op.outputs[0]])
            continue
        x = layer_inputs(g, op, env[op.inputs[0]])
        w = op.params["weight"]
        partial = np.zeros((x.shape[0], w.shape[1]))
        acc = 0.0
        for r0 in range(0, w.shape[0], row_block):
            partial = partial + x[:, r0:r0 + row_block] @ w[r0:r0 + row_block]
            acc = max(acc, float(np.abs(partial).max(initial=0.0)))
        if "bias" in op.params:
            acc = max(acc, float(np.abs(partial + op.params["bias"]).max(initial=0.0)))
        out[op.name] = LayerRange(float(np.abs(w).max(initial=0.0)), float(np.abs(x).max(initial=0.0)), acc,
                                  out.values[op.outputs[0]])
    return out
