"""``gap``: (C, H, W) -> (C, 1, 1) global average; attr ``act``. Integer semantics (rule POOL):
rshift_round(sum * divisor_coef(H * W), DIV_FRAC)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from isa import numerics as nx

from .base import IntContext, OpKind, Shape, register

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..ir import Graph, Op


@register
class GlobalAverage(OpKind):
    """Global average pooling on the vector unit."""

    name = "gap"
    fuses_act = True

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if len(ins[0]) != 3 or out != (ins[0][0], 1, 1):
            return f"global pooling {ins[0]} -> {out}"
        return None

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(xs[0].mean(axis=(1, 2), keepdims=True))

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        from ..quant.functional import DIV_FRAC, divisor_coef

        x = xs[0]
        n = x.shape[1] * x.shape[2]
        y = nx.rshift_round(x.sum(axis=(1, 2), keepdims=True) * np.int64(divisor_coef(n)), DIV_FRAC)
        return y, q.fmt[op.inputs[0]][1]

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.vector import emit_gap

        emit_gap(ctx, op)
