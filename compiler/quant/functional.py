"""The layer-level functional model: the quantized network computed with vectorized numpy, exactly as the
hardware computes it (docs/semantics.md). The runtime executing the compiled program must agree bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from isa import numerics as nx
from isa.hardware import HardwareConfig

from isa.errors import ModelError

from ..ir import Graph, Op
from .calibrate import layer_inputs, out_hw
from .formats import Format
from .precision import LayerPrecision
from .windows import from_hwc, to_hwc, windows

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
class CrossbarBlock:
    """One crossbar row block prepared once per layer: its integer weights (R, C), the (+)-minus-(-) slice
    differences as a float32 (R, S*C) matrix, and whether the exact integer product can stand for the
    digit-by-digit sum (no conversion can clip and none is skipped)."""

    w: np.ndarray
    diff: np.ndarray
    slices: int
    exact: bool


def prepare_block(w: np.ndarray, p: LayerPrecision, cell_bits: int) -> CrossbarBlock:
    """Slice one block's weights (rules WEIGHTS and SCE) and decide whether it can take the exact product."""
    r = w.shape[0]
    pos, neg = nx.weight_slices(w, p.w_bits, cell_bits, p.w_enc)     # (S, R, C)
    n_s, _, c = pos.shape
    # largest |bit-line value| of this block: digits are in {-1, 0, 1} for every input encoding
    reach = int(np.abs(pos - neg).sum(axis=1).max(initial=0))
    fits = p.adc_bits >= worst_case_adc_bits(r, cell_bits) or reach <= nx.qmax(p.adc_bits)
    f64 = float(1 << (p.in_bits - 1)) * float(1 << (p.w_bits - 1)) * r < 2.0**53  # |x| |w| R exact in float64
    diff = (pos - neg).astype(np.float32).transpose(1, 0, 2).reshape(r, n_s * c)
    return CrossbarBlock(np.asarray(w, dtype=np.int64), diff, n_s, fits and p.skip < 0 and f64)


def crossbar_block(x: np.ndarray, w: np.ndarray, p: LayerPrecision, cell_bits: int) -> np.ndarray:
    """Exact shift-and-add sum of one crossbar row block (rule MVM, before the rounding shift).

    x: (B, R) inputs in in_bits two's complement; w: (R, C) integer weights. Returns (B, C) int64."""
    return block_sum(x, prepare_block(w, p, cell_bits), p, cell_bits)


def block_sum(x: np.ndarray, blk: CrossbarBlock, p: LayerPrecision, cell_bits: int) -> np.ndarray:
    """`crossbar_block` on a prepared block. When no conversion can clip, the shift-and-add of the digits' dot
    products is the integer product (computed in float64, exact). Otherwise: bit-line values are small integers,
    exact in float32; the per-digit sum over slices runs in float32 when its bound (sum of slice weights x the
    ADC's largest magnitude) is below 2^24, else float64 (below 2^53, else int64); the sum over digits runs in
    int64."""
    if blk.exact and _PROBE is None:
        return np.rint(x.astype(np.float64) @ blk.w.astype(np.float64)).astype(np.int64)
    b, r = x.shape
    n_s, c = blk.slices, blk.w.shape[1]
    digits, sig = nx.input_digits(x, p.in_bits, p.in_enc)            # (bi, B, R)
    v = digits.astype(np.float32).reshape(-1, r) @ blk.diff           # (bi*B, S*C), exact small integers
    if _PROBE is not None:
        _PROBE(v)
    np.clip(v, nx.qmin(p.adc_bits), nx.qmax(p.adc_bits), out=v)      # the ADC (rule ADC)
    v = v.reshape(p.in_bits, b, n_s, c).transpose(0, 1, 3, 2)        # (bi, B, C, S)
    skip = nx.skipped(p.in_bits, n_s, cell_bits, p.skip)             # rule SKIP: skipped conversions read 0
    if skip.any():
        v = v * (~skip)[:, None, None, :].astype(np.float32)
    slice_w = np.array([1 << (cell_bits * i) for i in range(n_s)], dtype=np.int64)
    bound = float(slice_w.sum()) * float(1 << (p.adc_bits - 1))
    if bound < 2.0**24:
        per_digit = (v @ slice_w.astype(np.float32)).astype(np.int64)
    elif bound < 2.0**53:
        per_digit = (v.astype(np.float64) @ slice_w.astype(np.float64)).astype(np.int64)
    else:
        per_digit = v.astype(np.int64) @ slice_w
    return np.tensordot(sig, per_digit, axes=1)                       # (B, C)


def crossbar_layer(rows: np.ndarray, q: QuantizedLayer, p: LayerPrecision, hw: HardwareConfig) -> np.ndarray:
    """A crossbar layer on integer input rows (N, K) -> accumulator-format pre-activation outputs (N, n_out):
    row blocks of ``hw.xbar_rows`` rounded into Q(acc) and accumulated in order with saturation, then the bias.
    Blocks are prepared once; the rows go through in chunks that bound the digit-path's memory."""
    blocks = [prepare_block(q.weight[r0:r0 + hw.xbar_rows], p, hw.cell_bits)
              for r0 in range(0, q.weight.shape[0], hw.xbar_rows)]
    n_s = blocks[0].slices
    chunk = max(64, (1 << 27) // (4 * p.in_bits * n_s * max(1, q.weight.shape[1])))
    outs = [_crossbar_rows(rows[i:i + chunk], blocks, q.bias, p, hw) for i in range(0, max(1, len(rows)), chunk)]
    return np.concatenate(outs) if len(outs) > 1 else outs[0]


def _crossbar_rows(x: np.ndarray, blocks: list[CrossbarBlock], bias: np.ndarray | None, p: LayerPrecision,
                   hw: HardwareConfig) -> np.ndarray:
    acc = None
    for k, blk in enumerate(blocks):
        r0 = k * hw.xbar_rows
        part = block_sum(x[:, r0:r0 + hw.xbar_rows], blk, p, hw.cell_bits)
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


def _layer(g: Graph, op: Op, xs: list[np.ndarray], prec: dict[str, LayerPrecision], fmt: dict[str, Format],
           hw: HardwareConfig) -> tuple[np.ndarray, int]:
    """One op on integer inputs -> (output before the final requantization, its fraction bits)."""
    x = xs[0]
    if op.is_crossbar:
        p = prec[op.name]
        _PROBE_LAYER[0] = op.name
        rows = layer_inputs(g, op, x)
        y = crossbar_layer(rows, quantize_layer(op, p), p, hw)
        shape = (len(x),) + ((out_hw(g, op) + (-1,)) if op.kind == "conv" else (-1,))
        return activate(y.reshape(shape), op.attrs, p.acc_frac), p.acc_frac
    fi = fmt[op.inputs[0]][1]
    if op.kind == "pool" and op.attrs["mode"] == "max":
        y = windows(x, op, out_hw(g, op), nx.qmin(fmt[op.inputs[0]][0])).max(axis=(3, 4))
    elif op.kind == "pool":
        kh, kw = op.attrs["kernel"]
        s = windows(x, op, out_hw(g, op), 0).sum(axis=(3, 4))
        y = nx.rshift_round(s * np.int64(divisor_coef(kh * kw)), DIV_FRAC)
    elif op.kind == "gap":
        n = x.shape[1] * x.shape[2]
        y = nx.rshift_round(x.sum(axis=(1, 2), keepdims=True) * np.int64(divisor_coef(n)), DIV_FRAC)
    elif op.kind == "eltwise":
        fi = max(fmt[i][1] for i in op.inputs)
        y = sum((nx.rshift_round(v, fmt[i][1] - fi) for v, i in zip(xs, op.inputs)), np.zeros_like(x))
    elif op.kind == "concat":
        y = np.concatenate(xs, axis=-1)
    elif op.kind == "reshape":
        y = to_hwc(from_hwc(x, g.values[op.inputs[0]].shape), g.values[op.outputs[0]].shape)
    else:
        raise ModelError(f"op '{op.name}' ({op.kind}) cannot run on the device")
    return activate(y, op.attrs, fi), fi


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
    for op in g.ops:
        y, frac = _layer(g, op, [env[i] for i in op.inputs], prec, fmt, hw)
        bits, out_frac = fmt[op.outputs[0]]
        env[op.outputs[0]] = nx.requantize(y, frac - out_frac, bits)
    return {o: env[o].reshape(len(env[o]), -1) for o in g.outputs}
