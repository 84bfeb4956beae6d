"""The layer-level functional model: the quantized network computed with vectorized numpy, exactly as the
hardware computes it (docs/semantics.md). The runtime executing the compiled program must agree bit for bit.

Each op runs by its kind's ``int_eval`` (`compiler.ops`); this module holds the shared numeric pieces: the
crossbar layer (rules WEIGHTS, SCE, MVM, ADC, SKIP), the fused activation (rule ACT) and the divisor of averages
(rule POOL)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from isa import numerics as nx
from isa.hardware import HardwareConfig

from ..ir import Graph, Op
from ..ops import IntContext, kind_of
from ..ops.affine import SCALE_BITS, SHIFT_BITS, QuantizedAffine, affine_q, quantize_affine  # noqa: F401 (by name)
from ..ops.eltwise import mul_frac  # noqa: F401 (callers import the rules from here)
from .calibrate import last_uses
from .formats import Format
from .precision import LayerPrecision
from .windows import im2col, internal, to_hwc

IntEnv = dict[str, np.ndarray]


@dataclass(frozen=True)
class QuantizedLayer:
    """A crossbar layer's integer parameters: weights (n_in, n_out) in Q(w_bits, w_frac), bias in the
    accumulator format Q(acc_bits, acc_frac) (or None)."""

    weight: np.ndarray
    bias: np.ndarray | None


def quantize_layer(op: Op, p: LayerPrecision) -> QuantizedLayer:
    """Integer weights and bias of ``op`` under precision ``p`` (rules WEIGHTS and BIAS; nonuniform and varied
    schemes put their levels on the same Q(w_bits, w_frac) grid)."""
    from .weights import nonuniform_levels, quantize_channel, snap_to_levels

    w = op.params["weight"]
    if p.w_scheme == "nonuniform":
        w = snap_to_levels(w, nonuniform_levels(w, (p.w_code_bits or p.w_bits) - 1, p.w_k))
    if p.w_scheme == "varied":
        chans = p.w_channels
        w = np.stack([quantize_channel(w[:, c], dict(chans[c % len(chans)]), p.w_bits, p.w_frac)
                      for c in range(w.shape[1])], axis=1).astype(np.int64)
    else:
        w = nx.quantize_weights(w, p.w_bits, p.w_frac)
    b = op.params.get("bias")
    return QuantizedLayer(w, None if b is None else nx.quantize(b, p.acc_bits, p.acc_frac))


_PROBE: Callable[[np.ndarray], None] | None = None  # receives unclipped bit-line values (see adc_profile.py)
_PROBE_LAYER: list[str] = [""]


def set_bitline_probe(probe: Callable[[str, np.ndarray], None] | None) -> None:
    """Install (or remove, with None) a callback that receives (layer name, bit-line values before the ADC) for
    every crossbar block; while installed, every block takes the digit-by-digit path."""
    global _PROBE
    _PROBE = None if probe is None else (lambda v: probe(_PROBE_LAYER[0], v))


def worst_case_adc_bits(rows: int, cell_bits: int) -> int:
    """Signed ADC bits that hold any bit-line value of ``rows`` driven rows: ceil(log2(rows*(2^cb-1)+1)) + 1."""
    return int(np.ceil(np.log2(rows * ((1 << cell_bits) - 1) + 1))) + 1


@dataclass(frozen=True)
class DigitStep:
    """One input digit's work on one crossbar block: the transposed bit-line matrix ``a`` (n*C, R) -- its
    ``n_clip`` first rows are the (+)-minus-(-) differences of the slices whose conversions can clip (or are
    probed), slice by slice; the last C rows, if n*C > n_clip, the slices that cannot clip folded into one
    matrix by their significances -- and ``coef`` (n,), each row group's weight in the shift-and-add (the
    slice significance, 0 if skipped: rule SKIP). ``bound`` caps every partial sum and |result|."""

    a: np.ndarray
    coef: np.ndarray
    n_clip: int
    bound: int


@dataclass(frozen=True)
class CrossbarBlock:
    """One crossbar row block prepared once per layer: its weights (R, C) as float64, one `DigitStep` per input
    digit (None if the digit adds nothing), whether the exact integer product can stand for the digit-by-digit
    sum (no conversion can clip and none is skipped), whether every step is exact in float32 and whether the
    sum over digits can reach 2^53 (then it runs in int64)."""

    w: np.ndarray
    steps: tuple[DigitStep | None, ...]
    exact: bool
    f32: bool
    wide: bool


def prepare_block(w: np.ndarray, p: LayerPrecision, cell_bits: int) -> CrossbarBlock:
    """Slice one block's weights (rules WEIGHTS and SCE) and plan its digit steps. A slice whose largest
    |bit-line value| (digits are in {-1, 0, 1} for every input encoding) fits the ADC never clips, so its
    conversions are folded into one product per digit; with a bit-line probe installed every slice is
    converted. Skipped conversions are left out."""
    r = w.shape[0]
    diff = slice_differences(w, p.w_bits, cell_bits, p.w_enc).transpose(0, 2, 1)  # (S, C, R)
    n_s, c = diff.shape[:2]
    probe = _PROBE is not None
    reach = [int(v) for v in np.abs(diff).sum(axis=2, dtype=np.int64).max(axis=1, initial=0)]
    clips = [probe or v > nx.qmax(p.adc_bits) for v in reach]
    skip = nx.skipped(p.in_bits, n_s, cell_bits, p.skip)
    plans, folds = [], {}
    for j in range(p.in_bits):
        conv = tuple(s for s in range(n_s) if clips[s] and (probe or not skip[j, s]))
        folded = tuple(s for s in range(n_s) if not clips[s] and not skip[j, s])
        coef = [0 if skip[j, s] else 1 << (cell_bits * s) for s in conv] + [1] * bool(folded)
        bound = sum(k * min(reach[s], 1 << (p.adc_bits - 1)) for k, s in zip(coef, conv))
        if folded and folded not in folds:
            fw = sum(diff[s].astype(np.int64) << cell_bits * s for s in folded)
            folds[folded] = fw, int(np.abs(fw).sum(axis=1).max(initial=0))
        plans.append((conv, folded, coef, bound + (folds[folded][1] if folded else 0)))
    bounds = [pl[3] for pl in plans]
    assert max(bounds) < 2**53  # |bit-line value| <= R (2^cb - 1) and |folded| <= |w| R: far below
    f32 = max(bounds) < 2**24
    dt = np.float32 if f32 else np.float64
    mats: dict[tuple[tuple[int, ...], tuple[int, ...]], np.ndarray] = {}
    steps = []
    for conv, folded, coef, bound in plans:
        if (conv, folded) not in mats:
            parts = [diff[s] for s in conv] + ([folds[folded][0]] if folded else [])
            mats[conv, folded] = np.concatenate(parts, dtype=dt) if parts else None  # cast while copying
        a = mats[conv, folded]
        steps.append(None if a is None else DigitStep(a, np.array(coef, dtype=dt), len(conv) * c, bound))
    f64 = float(1 << (p.in_bits - 1)) * float(1 << (p.w_bits - 1)) * r < 2.0**53  # |x| |w| R exact in float64
    exact = not probe and not any(clips) and not skip.any() and f64
    wide = sum(bd << j for j, bd in enumerate(bounds)) >= 2**53
    return CrossbarBlock(np.asarray(w, dtype=np.float64), tuple(steps), exact, f32, wide)


def slice_differences(w: np.ndarray, bits: int, cell_bits: int, encoding: str = "twos") -> np.ndarray:
    """``pos - neg`` of `nx.weight_slices` (S, R, C) as int8 (cells up to 6 bits, weights up to
    `nx.MAX_TABLE_BITS`), gathered from the slices of every weight value (`nx.value_slices`): the same values as
    slicing the cells in int64, without its passes over the block (VGG-16's 138 M weights took 13 s so). Wider
    cells or weights are sliced cell by cell."""
    w = np.asarray(w)
    if bits > nx.MAX_TABLE_BITS or cell_bits > 6 or w.dtype.kind not in "iu":
        pos, neg = nx.weight_slices(w, bits, cell_bits, encoding)
        return pos - neg
    table = _difference_table(bits, cell_bits, encoding)
    return table[:, w.astype(np.intp) + nx.qmax(bits)]


@functools.lru_cache(maxsize=64)
def _difference_table(bits: int, cell_bits: int, encoding: str) -> np.ndarray:
    """(S, V) int8: pos - neg of every weight value -qmax(bits)..qmax(bits) (`nx.value_slices`)."""
    pos, neg = nx.value_slices(bits, cell_bits, encoding)
    return (pos - neg).astype(np.int8)


def probe_installed() -> bool:
    """Whether a bit-line probe is installed (prepared blocks differ then: `blockcache` keys on it)."""
    return _PROBE is not None


def crossbar_block(x: np.ndarray, w: np.ndarray, p: LayerPrecision, cell_bits: int) -> np.ndarray:
    """Exact shift-and-add sum of one crossbar row block (rule MVM, before the rounding shift).

    x: (B, R) inputs in in_bits two's complement; w: (R, C) integer weights. Returns (B, C) int64."""
    return block_sum(x, prepare_block(w, p, cell_bits), p)


def block_sum(x: np.ndarray, blk: CrossbarBlock, p: LayerPrecision) -> np.ndarray:
    """`crossbar_block` on a prepared block: x (B, R) -> (B, C) int64."""
    return _block_sums(x, [blk], p, lambda t: t, len(x))[0]


def _block_sums(x: np.ndarray, blocks: list[CrossbarBlock], p: LayerPrecision,
                to_rows: Callable[[np.ndarray], np.ndarray], n: int) -> list[np.ndarray]:
    """Every block's sum on the n rows ``to_rows(x)`` (consecutive column ranges, one per block).

    An exact block is the integer product, in float64 (exact: |x| |w| R < 2^53). Otherwise, per input digit j
    (computed once per input value, then laid out as rows): the step's matrix times the digit rows gives
    bit-line values (small integers), the clippable ones go through the ADC (rule ADC), ``coef`` weights and
    sums the slices, and sig_j times that adds to the block's sum. Every partial sum is an integer below the
    step's bound: exact in float32 when that is below 2^24, else in float64; the sum over digits runs in float64
    unless it can reach 2^53 (then int64). Bit-line values are computed transposed, (n*C, rows), so the ADC
    and the slice sum run over contiguous memory."""
    ends = np.cumsum([blk.w.shape[0] for blk in blocks]).tolist()
    spans = list(zip([0] + ends[:-1], ends))
    out: list[np.ndarray] = [np.empty(0)] * len(blocks)
    if any(blk.exact for blk in blocks):
        rows = to_rows(x.astype(np.float64))
        for k, blk in enumerate(blocks):
            if blk.exact:
                out[k] = (rows[:, spans[k][0]:spans[k][1]] @ blk.w).astype(np.int64)
    todo = [k for k, blk in enumerate(blocks) if not blk.exact]
    if not todo:
        return out
    acc = {k: np.zeros((blocks[k].w.shape[1], n), dtype=np.int64 if blocks[k].wide else np.float64)
           for k in todo}                                                # transposed (C, rows)
    dt = np.float32 if all(blocks[k].f32 for k in todo) else np.float64
    digits, sig = nx.input_digits(x, p.in_bits, p.in_enc)            # (bi,) + x.shape
    lo, hi = nx.qmin(p.adc_bits), nx.qmax(p.adc_bits)
    for j in range(p.in_bits):
        live = [k for k in todo if blocks[k].steps[j] is not None]
        if not live or (_PROBE is None and not digits[j].any()):          # an all-zero digit adds nothing
            continue
        d = to_rows(digits[j].astype(dt))
        for k in live:
            st = blocks[k].steps[j]
            assert st is not None
            v = st.a @ d[:, spans[k][0]:spans[k][1]].T                   # (n*C, rows) bit-line values
            if st.n_clip:
                if _PROBE is not None:
                    _PROBE(v)
                np.clip(v[:st.n_clip], lo, hi, out=v[:st.n_clip])          # the ADC (rule ADC)
            part = (st.coef @ v.reshape(len(st.coef), -1)).reshape(-1, n)  # (C, rows)
            if blocks[k].wide:
                acc[k] += part.astype(np.int64) * sig[j]
            else:
                acc[k] += part * np.float64(sig[j])
    for k in todo:
        out[k] = acc[k].T.astype(np.int64, order="C")
    return out


def crossbar_layer(x: np.ndarray, q: QuantizedLayer, p: LayerPrecision, hw: HardwareConfig,
                   conv: tuple[Op, tuple[int, int]] | None = None,
                   blocks: list[CrossbarBlock] | None = None) -> np.ndarray:
    """A crossbar layer on integer input rows (N, K) -> accumulator-format pre-activation outputs (N, n_out):
    row blocks of ``hw.xbar_rows`` rounded into Q(acc) and accumulated in order with saturation, then the bias.
    With ``conv`` = (op, output size), x is the layer's input tensor (B, H, W, C) and the rows are its im2col
    windows (the input digits are computed once per input value). Blocks are prepared once; the input goes
    through in chunks that bound the memory. ``blocks``: the prepared blocks of ``q`` (`blockcache`)."""
    if blocks is None:
        blocks = [prepare_block(q.weight[r0:r0 + hw.xbar_rows], p, hw.cell_bits)
                  for r0 in range(0, q.weight.shape[0], hw.xbar_rows)]
    if conv is None:
        to_rows, per_item = (lambda t: t), 1
    else:
        op, ohw = conv
        to_rows, per_item = (lambda t: im2col(t, op, ohw)), ohw[0] * ohw[1]
    width = max((st.a.shape[0] for blk in blocks for st in blk.steps if st is not None), default=0)
    row_bytes = 8 * (q.weight.shape[0] + width + (len(blocks) + 1) * q.weight.shape[1])
    chunk = max(1, (1 << 28) // (row_bytes * per_item))
    outs = [_crossbar_rows(x[i:i + chunk], blocks, q.bias, p, to_rows, per_item)
            for i in range(0, max(1, len(x)), chunk)]
    return np.concatenate(outs) if len(outs) > 1 else outs[0]


def _crossbar_rows(x: np.ndarray, blocks: list[CrossbarBlock], bias: np.ndarray | None, p: LayerPrecision,
                   to_rows: Callable[[np.ndarray], np.ndarray], per_item: int) -> np.ndarray:
    acc = None
    for part in _block_sums(x, blocks, p, to_rows, len(x) * per_item):
        out = nx.requantize(part, p.mvm_shift, p.acc_bits)
        acc = out if acc is None else nx.saturate(acc + out, p.acc_bits)
    assert acc is not None
    if bias is not None:
        acc = nx.saturate(acc + bias, p.acc_bits)
    return acc


def leaky_coef(alpha: float) -> int:
    """LeakyRelu's slope as a Q(32, 16) integer (rule ACT)."""
    return int(nx.quantize(np.array(alpha), 32, LEAKY_FRAC))


LEAKY_FRAC = 16
DIV_FRAC = 24


def clip_bounds(attrs: dict[str, Any], frac: int) -> tuple[int, int]:
    """Clip bounds as Q(32, frac) integers (saturated to 32 bits, rule ACT)."""
    return int(nx.quantize(np.array(attrs["lo"]), 32, frac)), int(nx.quantize(np.array(attrs["hi"]), 32, frac))


def activate(x: np.ndarray, attrs: dict[str, Any], frac: int) -> np.ndarray:
    """Rule ACT: the activation named by ``attrs['act']`` on Q(., frac) integers."""
    fn = attrs.get("act", "none")
    if fn == "relu":
        return np.maximum(x, 0)
    if fn == "sigmoid":
        return nx.sigmoid_q(x, frac)
    if fn == "tanh":
        return nx.tanh_q(x, frac)
    if fn == "leaky_relu":
        return np.maximum(x, nx.rshift_round(x * np.int64(leaky_coef(attrs["alpha"])), LEAKY_FRAC))
    if fn == "clip":
        lo, hi = clip_bounds(attrs, frac)
        return np.clip(x, lo, hi)
    return x


def divisor_coef(n: int) -> int:
    """floor(2^24 / n + 1/2): the multiplier of an average over n values (rule POOL)."""
    return ((1 << (DIV_FRAC + 1)) + n) // (2 * n)


def op_output(g: Graph, op: Op, xs: list[np.ndarray], prec: dict[str, LayerPrecision], fmt: dict[str, Format],
              hw: HardwareConfig) -> tuple[np.ndarray, int]:
    """One op on integer inputs (its kind's ``int_eval``, then the fused activation, rule ACT) -> (its output
    before the requantization to the stored format, that output's fraction bits)."""
    y, frac = kind_of(op).int_eval(g, op, xs, IntContext(prec, fmt, hw))
    return activate(y, op.attrs, frac), frac


def run_functional(g: Graph, prec: dict[str, LayerPrecision], inputs: IntEnv, hw: HardwareConfig,
                   fmt: dict[str, Format]) -> IntEnv:
    """Integer device outputs (B, n) in their stored formats, flattened in HWC order.

    ``inputs`` are graph inputs already quantized to their stored format, in ONNX layout (B, ...) or flat HWC.
    ``fmt`` is the tensor format assignment (`assign_formats`).
    """
    env = {}
    for v in g.inputs:
        arr = np.asarray(inputs[v.name], dtype=np.int64)
        env[v.name] = to_hwc(arr, v.shape) if arr.ndim > 2 else (
            arr.reshape((len(arr),) + (v.shape[1], v.shape[2], v.shape[0])) if len(v.shape) == 3 else arr)
    last = last_uses(g)
    for k, op in enumerate(g.ops):
        y, frac = op_output(g, op, [env[i] for i in op.inputs], prec, fmt, hw)
        bits, out_frac = fmt[op.outputs[0]]
        env[op.outputs[0]] = internal(nx.requantize(y, frac - out_frac, bits), g.values[op.outputs[0]].shape)
        del y
        for i in set(op.inputs):  # a tensor no later op reads is dropped (the peak is the graph's widest point)
            if last.get(i, -1) <= k:
                del env[i]
    return {o: env[o].reshape(len(env[o]), -1) for o in g.outputs}
