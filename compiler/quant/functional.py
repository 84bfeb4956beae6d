"""The layer-level functional model: the quantized network computed with vectorized numpy, exactly as the
hardware computes it (docs/semantics.md). The runtime executing the compiled program must agree bit for bit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa import numerics as nx
from isa.hardware import HardwareConfig

from ..ir import Graph, Op
from .precision import LayerPrecision

IntEnv = dict[str, np.ndarray]


@dataclass(frozen=True)
class QuantizedLayer:
    """A crossbar layer's integer parameters: weights (n_in, n_out) in Q(w_bits, w_frac), bias in the
    accumulator format Q(acc_bits, acc_frac) (or None)."""

    weight: np.ndarray
    bias: np.ndarray | None


def quantize_layer(op: Op, p: LayerPrecision) -> QuantizedLayer:
    """Integer weights and bias of ``op`` under precision ``p`` (rules WEIGHTS and BIAS)."""
    w = nx.quantize_weights(op.params["weight"], p.w_bits, p.w_frac)
    b = op.params.get("bias")
    return QuantizedLayer(w, None if b is None else nx.quantize(b, p.acc_bits, p.acc_frac))


def crossbar_block(x: np.ndarray, w: np.ndarray, p: LayerPrecision, cell_bits: int) -> np.ndarray:
    """Exact shift-and-add sum of one crossbar row block (rule MVM, before the rounding shift).

    x: (B, R) inputs in in_bits two's complement; w: (R, C) integer weights. Returns (B, C) int64.
    Bit-line values are small integers, exact in float32; the per-digit sum over slices runs in float32 when
    its bound (sum of slice weights x the ADC's largest magnitude) is below 2^24, else float64 (below 2^53,
    else int64); the sum over digits runs in int64.
    """
    b, r = x.shape
    digits, sig = nx.input_digits(x, p.in_bits)                      # (bi, B, R)
    pos, neg = nx.weight_slices(w, p.w_bits, cell_bits)              # (S, R, C)
    n_s, _, c = pos.shape
    diff = (pos - neg).astype(np.float32).transpose(1, 0, 2).reshape(r, n_s * c)
    v = digits.astype(np.float32).reshape(-1, r) @ diff               # (bi*B, S*C), exact small integers
    np.clip(v, nx.qmin(p.adc_bits), nx.qmax(p.adc_bits), out=v)      # the ADC (rule ADC)
    v = v.reshape(p.in_bits, b, n_s, c).transpose(0, 1, 3, 2)        # (bi, B, C, S)
    slice_w = np.array([1 << (cell_bits * i) for i in range(n_s)], dtype=np.int64)
    bound = float(slice_w.sum()) * float(1 << (p.adc_bits - 1))
    if bound < 2.0**24:
        per_digit = (v @ slice_w.astype(np.float32)).astype(np.int64)
    elif bound < 2.0**53:
        per_digit = (v.astype(np.float64) @ slice_w.astype(np.float64)).astype(np.int64)
    else:
        per_digit = v.astype(np.int64) @ slice_w
    return np.tensordot(sig, per_digit, axes=1)                       # (B, C)


def dense_forward(x: np.ndarray, q: QuantizedLayer, p: LayerPrecision, act: str, hw: HardwareConfig) -> np.ndarray:
    """One dense layer on integer inputs (B, n_in) -> accumulator-format outputs (B, n_out) after activation."""
    acc = None
    for r0 in range(0, q.weight.shape[0], hw.xbar_rows):
        part = crossbar_block(x[:, r0:r0 + hw.xbar_rows], q.weight[r0:r0 + hw.xbar_rows], p, hw.cell_bits)
        out = nx.requantize(part, p.mvm_shift, p.acc_bits)
        acc = out if acc is None else nx.saturate(acc + out, p.acc_bits)
    assert acc is not None
    if q.bias is not None:
        acc = nx.saturate(acc + q.bias, p.acc_bits)
    return activate(acc, act, p.acc_frac)


def activate(acc: np.ndarray, act: str, frac: int) -> np.ndarray:
    """Rule ACT in the accumulator format."""
    if act == "relu":
        return np.maximum(acc, 0)
    if act == "sigmoid":
        return nx.sigmoid_q(acc, frac)
    if act == "tanh":
        return nx.tanh_q(acc, frac)
    return acc


def input_format(g: Graph, value: str, prec: dict[str, LayerPrecision]) -> tuple[int, int] | None:
    """(bits, frac) in which the crossbar layers reading ``value`` expect it, or None if none reads it."""
    for op in g.consumers(value):
        if op.is_crossbar:
            return prec[op.name].in_bits, prec[op.name].in_frac
    return None


def run_functional(g: Graph, prec: dict[str, LayerPrecision], inputs: IntEnv, hw: HardwareConfig) -> IntEnv:
    """Integer outputs (B, n) of every device output, in its producer's accumulator format.

    ``inputs`` are graph inputs already quantized to their consumers' input format (B, n).
    """
    env = {k: np.asarray(v, dtype=np.int64).reshape(len(v), -1) for k, v in inputs.items()}
    results: IntEnv = {}
    for op in g.ops:
        if not op.is_crossbar:
            raise NotImplementedError(f"functional model: op kind {op.kind}")
        p = prec[op.name]
        y = dense_forward(env[op.inputs[0]], quantize_layer(op, p), p, op.attrs.get("act", "none"), hw)
        nxt = input_format(g, op.outputs[0], prec)
        env[op.outputs[0]] = y if nxt is None else nx.requantize(y, p.acc_frac - nxt[1], nxt[0])
        if op.outputs[0] in g.outputs:
            results[op.outputs[0]] = y  # a device output stays in its layer's accumulator format
    return results
