"""``lrn``: local response normalization across channels (ONNX LRN): (C, H, W) -> (C, H, W),
``y_c = x_c / (bias + alpha / size * sum_{c' in window(c)} x_{c'}^2) ^ beta`` with the window
[c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to the channels; attrs ``size``, ``alpha``, ``beta``,
``bias``. It runs on the vector unit with the fixed-point approximation of rule LRN (docs/semantics.md):

1. ``S = sum x_{c'}^2`` over the window, exact (x in Q(b_x, f_x)).
2. ``U = rshift_round(S * a_q, 2 f_x + f_a - f_u) + k_q``: u = bias + alpha/size * s in Q(., f_u), with
   ``a_q = quant(alpha/size)`` in Q(a_bits, f_a) and ``k_q = quant(bias)`` in Q(32, f_u); f_u is chosen so that
   the largest u the stored format allows stays below 2^30.
3. ``Y = f0_q + sum_i rshift_round(C_i * max(U - T_i, 0), f_c + f_u - f_r)``: the piecewise-linear
   interpolation of u^-beta at knots T_i spaced geometrically from bias to that largest u, in
   Q(., f_r) (f0_q = quant(bias^-beta), C_i the slope changes in Q(32, f_c)); `segments` says how many.
4. ``z = rshift_round(x * Y, f_x + f_r - f_m)`` (`mul_frac`), then the output's requantization.

Every step is exact int64 arithmetic on the vector ALU (`sub`, `load`, `mul`, `add`, `muli`, `rqnt`, `addi`,
`relu`); the only approximation is step 3's interpolation (and the roundings), whose largest error
`QuantizedLrn.max_error` is computed from the constants (an upper bound of |Y / 2^f_r - u^-beta| over every u).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from isa import numerics as nx
from isa.errors import ModelError

from .base import Format, IntContext, OpKind, Shape, register, same_shape
from .eltwise import mul_frac

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..codegen.loops import Pointer
    from ..codegen.plan import Core
    from ..ir import Graph, Op

SEGMENT_RATIO = 1.04  # rule LRN: consecutive knots of the interpolation differ by at most this factor ...
MAX_SEGMENTS = 96  # ... unless that needs more pieces than this (then the ratio grows)
MIN_ALPHA_BITS = 12  # a_q keeps at least this many bits (else the input format is too wide for exact squares)


def segments(u_hi: float, bias: float) -> int:
    """Pieces of rule LRN's interpolation over [bias, u_hi]: knots a factor `SEGMENT_RATIO` apart, at most
    `MAX_SEGMENTS`."""
    if u_hi <= bias:
        return 1
    return max(1, min(MAX_SEGMENTS, math.ceil(math.log(u_hi / bias) / math.log(SEGMENT_RATIO))))


def window(size: int) -> tuple[int, int]:
    """Channels (below, above) the window of LRN ``size`` reaches (ONNX: floor and ceil of (size - 1) / 2)."""
    return (size - 1) // 2, size // 2


def check_attrs(size: int, alpha: float, beta: float, bias: float) -> str | None:
    """The supported LRN attributes, or the problem: size >= 1, alpha >= 0, beta > 0, bias > 0 (finite)."""
    if size < 1:
        return f"size={size} must be a positive integer"
    if not all(math.isfinite(v) for v in (alpha, beta, bias)):
        return f"alpha={alpha}, beta={beta}, bias={bias} must be finite"
    if alpha < 0:
        return f"alpha={alpha} < 0 is not supported (the denominator must grow with the squares)"
    if beta <= 0:
        return f"beta={beta} <= 0 is not supported (rule LRN interpolates the decreasing u^-beta)"
    if bias <= 0:
        return f"bias={bias} <= 0 is not supported (u^-beta is unbounded at u = 0)"
    return None


@dataclass(frozen=True)
class QuantizedLrn:
    """The integer constants of rule LRN for one op (see the module docstring for the names)."""

    below: int
    above: int
    a_q: int
    u_shift: int
    k_q: int
    fu: int
    knots: tuple[int, ...]
    coefs: tuple[int, ...]
    f_shift: int
    f0_q: int
    fr: int
    fm: int
    y_shift: int
    max_error: float
    fa: int = 0
    beta: float = 1.0
    bias: float = 1.0
    size: int = 1

    def error(self, x_max: float) -> float:
        """A bound of |Y / 2^f_r - (bias + alpha/size * s)^-beta| for inputs up to ``x_max`` in magnitude:
        `max_error` (interpolation and roundings at the quantized u) plus the slope of u^-beta at bias times the
        error of the quantized u (its rounding, 2^-f_u, and alpha/size's, 2^-(f_a+1) * size * x_max^2)."""
        du = 2.0 ** -self.fu + 2.0 ** -(self.fa + 1) * self.size * x_max ** 2
        return float(self.max_error + self.beta * self.bias ** (-self.beta - 1) * du)


def _frac(v: float, bits: int) -> int:
    from ..quant.precision import frac_for

    return frac_for(v, bits)


def quantize_lrn(g: Graph, op: Op, fmt: dict[str, Format]) -> QuantizedLrn:
    """Rule LRN's constants from the op's attributes and the formats of its input and output."""
    size, alpha, beta, bias = (int(op.attrs["size"]), float(op.attrs["alpha"]), float(op.attrs["beta"]),
                               float(op.attrs["bias"]))
    problem = check_attrs(size, alpha, beta, bias)
    if problem:
        raise ModelError(f"node '{op.name}' (LRN): {problem}")
    bx, fx = fmt[op.inputs[0]]
    s_max = size << (2 * (bx - 1))  # the largest sum of squares of stored values
    a_bits = min(32, 62 - s_max.bit_length())
    if a_bits < MIN_ALPHA_BITS:
        raise ModelError(f"node '{op.name}' (LRN): its input is stored in {bx} bits; rule LRN squares stored "
                         f"values exactly in 64 bits and supports at most "
                         f"{(62 - MIN_ALPHA_BITS - size.bit_length()) // 2 + 1}-bit inputs for size={size}")
    a = alpha / size
    fa = _frac(a, a_bits) if a > 0 else 0
    a_q = int(nx.quantize(np.array(a), a_bits, fa))
    u_hi = bias + a_q * s_max / 2.0 ** (2 * fx + fa)
    fu = min(62, _frac(u_hi, 32) - 1)
    u_shift = 2 * fx + fa - fu
    if not -128 <= u_shift <= 127:
        raise ModelError(f"node '{op.name}' (LRN): the input's fraction {fx} is out of the supported range")
    k_q = int(nx.quantize(np.array(bias), 32, fu))
    top = int(nx.rshift_round(np.array(s_max * a_q, dtype=np.int64), u_shift)) + k_q  # the largest U
    k = segments(top / 2.0 ** fu, bias)
    ts = sorted({k_q, top} | {min(top, int(round(bias * (top / 2.0 ** fu / bias) ** (i / k) * 2.0 ** fu)))
                              for i in range(1, k)})
    f = [(t / 2.0 ** fu) ** -beta for t in ts]
    slopes = [(f[i + 1] - f[i]) / ((ts[i + 1] - ts[i]) / 2.0 ** fu) for i in range(len(ts) - 1)]
    changes = slopes[:1] + [slopes[i] - slopes[i - 1] for i in range(1, len(slopes))]
    fr = min(62, _frac(f[0], 32) - 1)
    fc = _frac(max((abs(c) for c in changes), default=0.0), 32)
    fc = max(fr - fu, min(fc, 62 + fr - fu))
    coefs = tuple(int(nx.quantize(np.array(c), 32, fc)) for c in changes)
    if any(abs(c) >= 1 << 31 for c in coefs):
        raise ModelError(f"node '{op.name}' (LRN): the interpolation's slopes do not fit 32 bits")
    fm, y_shift = mul_frac(fx, fr, fmt[op.outputs[0]][1])
    q = QuantizedLrn(*window(size), a_q, u_shift, k_q, fu, tuple(ts[:-1]), coefs, fc + fu - fr,
                     int(nx.quantize(np.array(f[0]), 32, fr)), fr, fm, y_shift, 0.0, fa, beta, bias, size)
    return QuantizedLrn(**{**q.__dict__, "max_error": _max_error(q, beta, ts)})


def interpolate(u: np.ndarray, q: QuantizedLrn) -> np.ndarray:
    """Step 3 of rule LRN: Y (Q(., f_r)) of U (Q(., f_u)) integers."""
    y = np.full(np.shape(u), q.f0_q, dtype=np.int64)
    for t, c in zip(q.knots, q.coefs):
        y += nx.rshift_round(np.int64(c) * np.maximum(u - np.int64(t), 0), q.f_shift)
    return y


def _max_error(q: QuantizedLrn, beta: float, ts: list[int]) -> float:
    """An upper bound of |Y / 2^f_r - u^-beta| over u in [bias, largest u]: the integer evaluation at every knot
    and at each segment's point of largest interpolation error (where the segment's slope equals the
    derivative -beta u^(-beta-1)), plus the slope of u^-beta at bias times one step of U (the error between
    those points)."""
    pts = set(ts)
    for lo, hi in zip(ts, ts[1:]):
        fl, fh = (lo / 2.0 ** q.fu) ** -beta, (hi / 2.0 ** q.fu) ** -beta
        s = (fh - fl) / ((hi - lo) / 2.0 ** q.fu)
        if s < 0:
            u = (-s / beta) ** (-1.0 / (beta + 1.0)) * 2.0 ** q.fu
            pts |= {min(hi, max(lo, int(math.floor(u)))), min(hi, max(lo, int(math.ceil(u))))}
    u = np.array(sorted(pts), dtype=np.int64)
    err = np.abs(interpolate(u, q) / 2.0 ** q.fr - (u / 2.0 ** q.fu) ** -beta).max()
    return float(err + beta * (ts[0] / 2.0 ** q.fu) ** (-beta - 1) * 2.0 ** -q.fu)


def lrn_q(x: np.ndarray, q: QuantizedLrn) -> np.ndarray:
    """Rule LRN on (B, H, W, C) integers in Q(., f_x) -> Q(., f_m)."""
    c = x.shape[-1]
    sq = x * x
    s = np.zeros_like(x)
    for d in range(-q.below, q.above + 1):
        lo, hi = max(0, -d), min(c, c - d)
        if lo < hi:
            s[..., lo:hi] += sq[..., lo + d:hi + d]
    u = nx.rshift_round(s * np.int64(q.a_q), q.u_shift) + np.int64(q.k_q)
    return np.asarray(nx.rshift_round(x * interpolate(u, q), q.y_shift))


@register
class Lrn(OpKind):
    """Local response normalization on the vector unit (rule LRN)."""

    name = "lrn"
    vector_regions = 4  # x, the sum of squares (then u), a temporary, the interpolated u^-beta

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if len(ins[0]) != 3:
            return f"expects a (C, H, W) tensor, got {ins[0]}"
        if any(k not in op.attrs for k in ("size", "alpha", "beta", "bias")):
            return "needs attrs size, alpha, beta, bias"
        return same_shape(ins, out) or check_attrs(int(op.attrs["size"]), float(op.attrs["alpha"]),
                                                   float(op.attrs["beta"]), float(op.attrs["bias"]))

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        below, above = window(int(op.attrs["size"]))
        sq = x * x
        c = x.shape[-1]
        s = np.zeros_like(x)
        for d in range(-below, above + 1):
            lo, hi = max(0, -d), min(c, c - d)
            if lo < hi:
                s[..., lo:hi] += sq[..., lo + d:hi + d]
        u = op.attrs["bias"] + op.attrs["alpha"] / op.attrs["size"] * s
        return np.asarray(x / u ** op.attrs["beta"])

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        ql = quantize_lrn(g, op, q.fmt)
        return lrn_q(xs[0], ql), ql.fm

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.vector import emit_vector

        emit_vector(ctx, op, _emit_chunk)


def _emit_chunk(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
                out_ptr: Pointer) -> None:
    """Rule LRN for channels [c0, c0 + n) of every pixel: registers ``a`` (x, then z), ``b`` (S, then U),
    ``b + chunk`` (temporary) and ``b + 2 chunk`` (Y)."""
    from isa import MemRef, ops

    from ..codegen.epilogue import finish
    from ..codegen.loops import LoopRegs, pixel_loop
    from ..codegen.storage import hwc
    from ..codegen.vector import in_ptr

    out, node, x = ctx.code(core), op.name, op.inputs[0]
    q = quantize_lrn(ctx.g, op, ctx.fmt)
    c = hwc(ctx.g.values[x].shape)[2]
    chunk = b - a
    s, t, y = b, b + chunk, b + 2 * chunk

    def body(m: list[MemRef]) -> None:
        out.append(ops.sub(d=s, a=s, b=s, n=n, w=64, node=node))
        for d in range(-q.below, q.above + 1):
            lo, hi = max(c0, -d), min(c0 + n, c - d)
            if lo >= hi:
                continue
            off, k = lo - c0, hi - lo
            out.append(ops.load(d=t + off, src=m[0].shifted(lo + d), n=k, node=node))
            out.append(ops.mul(d=t + off, a=t + off, b=t + off, n=k, f=0, w=64, node=node))
            out.append(ops.add(d=s + off, a=s + off, b=t + off, n=k, w=64, node=node))
        out.append(ops.muli(d=s, a=s, imm=q.a_q, n=n, f=0, w=64, node=node))
        out.append(ops.rqnt(d=s, a=s, n=n, shift=q.u_shift, w=64, node=node))
        out.append(ops.addi(d=s, a=s, imm=q.k_q, n=n, w=64, node=node))
        out.append(ops.sub(d=y, a=y, b=y, n=n, w=64, node=node))
        out.append(ops.addi(d=y, a=y, imm=q.f0_q, n=n, w=64, node=node))
        for knot, coef in zip(q.knots, q.coefs):
            out.append(ops.addi(d=t, a=s, imm=-knot, n=n, w=64, node=node))
            out.append(ops.relu(d=t, a=t, n=n, node=node))
            out.append(ops.muli(d=t, a=t, imm=coef, n=n, f=q.f_shift, w=64, node=node))
            out.append(ops.add(d=y, a=y, b=t, n=n, w=64, node=node))
        out.append(ops.load(d=a, src=m[0].shifted(c0), n=n, node=node))
        out.append(ops.mul(d=a, a=a, b=y, n=n, f=q.y_shift, w=64, node=node))
        finish(ctx, core, node, op.outputs[0], a, n, q.fm, c0, m[1])

    pixel_loop(out, LoopRegs.of(ctx.hw), oh, ow, [in_ptr(ctx, core[0], x), out_ptr], body, node=node)
