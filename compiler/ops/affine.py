"""``affine``: 1 input, 1 output of the same shape: ``x * scale + shift`` elementwise; params ``scale`` and
``shift`` in per-sample broadcast form (rank of the shape, each axis 1 or full, ONNX axis order, e.g. (C, 1, 1)
per channel); attr ``nodes``: the ONNX nodes merged into it (BatchNormalization, Add, Sub, Mul, Div by
constants). Folded into a neighbouring crossbar layer by `passes.affine.FoldAffine`; else it runs on the vector
unit (rule AFFINE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from isa import numerics as nx

from ..ir.graph import broadcast_param

from .base import Format, IntContext, OpKind, Shape, register, same_shape

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..ir import Graph, Op

SCALE_BITS = 32  # an affine op's scale: Q(32, fs) (rule AFFINE)
SHIFT_BITS = 32  # an affine op's shift: Q(32, fm)


@dataclass(frozen=True)
class QuantizedAffine:
    """A standalone affine op's integer constants (rule AFFINE), in the internal layout of its tensor -- (H, W, C)
    or flat -- or, with ``per_channel``, one value per channel (C,): ``scale`` in Q(32, fs), ``shift`` in
    Q(32, fm); ``mul_shift`` = fx + fs - fm is the product's rounding shift; ``frac`` = fm the op computes in."""

    scale: np.ndarray
    shift: np.ndarray
    fs: int
    frac: int
    mul_shift: int
    per_channel: bool


def quantize_affine(g: Graph, op: Op, fmt: dict[str, Format]) -> QuantizedAffine:
    """Rule AFFINE: fs = min(frac_for(max |scale|, 32), 62 + fy - fx), fm = min(fy, fx + fs), with fx, fy the
    fractions of the input and output tensors; scale_q = quant_{32,fs}(scale), shift_q = quant_{32,fm}(shift)."""
    from ..quant.precision import frac_for
    from ..quant.windows import to_hwc

    shape = g.values[op.inputs[0]].shape
    fx, fy = fmt[op.inputs[0]][1], fmt[op.outputs[0]][1]
    full = [to_hwc(np.asarray(broadcast_param(op.params[k], shape), dtype=np.float64)[None], shape)[0]
            for k in ("scale", "shift")]
    per_channel = len(shape) != 3 or all(np.all(f == f.reshape(-1, f.shape[-1])[:1]) for f in full)
    if per_channel:
        full = [f.reshape(-1, f.shape[-1])[0] if len(shape) == 3 else f for f in full]
    fs = min(frac_for(float(np.abs(full[0]).max(initial=0.0)), SCALE_BITS), 62 + fy - fx)
    fm = min(fy, fx + fs)
    return QuantizedAffine(nx.quantize(full[0], SCALE_BITS, fs), nx.quantize(full[1], SHIFT_BITS, fm), fs, fm,
                           fx + fs - fm, per_channel)


def affine_q(x: np.ndarray, q: QuantizedAffine) -> np.ndarray:
    """Rule AFFINE on Q(., fx) integers -> Q(., fm): rshift_round(x * scale_q, fx + fs - fm) + shift_q (exact
    int64, no saturation)."""
    return np.asarray(nx.rshift_round(x * q.scale, q.mul_shift) + q.shift)


@register
class Affine(OpKind):
    """A per-element or per-channel affine map on the vector unit."""

    name = "affine"
    fuses_act = True
    vector_regions = 4  # input, temporary, scale, shift

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        problem = same_shape(ins, out)
        for key in ("scale", "shift"):
            p = op.params.get(key)
            if problem is None and (p is None or p.ndim != len(out)
                                    or any(a not in (1, b) for a, b in zip(p.shape, out))):
                problem = f"param {key} {None if p is None else p.shape} is not a per-sample broadcast of {out}"
        return problem

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        from ..quant.windows import to_hwc

        x, shape = xs[0], g.values[op.inputs[0]].shape
        scale, shift = (to_hwc(broadcast_param(op.params[p], shape)[None], shape)[0].astype(x.dtype, copy=False)
                        for p in ("scale", "shift"))
        return np.asarray(x * scale + shift)

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        qa = quantize_affine(g, op, q.fmt)
        return affine_q(xs[0], qa), qa.frac

    def const_words(self, g: Graph, op: Op, fmt: dict[str, Format]) -> int:
        return 2 * quantize_affine(g, op, fmt).scale.size

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.vector import emit_affine

        emit_affine(ctx, op)
