"""``pool``: (C, H, W) -> (C, OH, OW); attrs ``mode`` (max/avg), ``kernel``, ``strides``, ``pads``,
``ceil_mode``, ``count_include_pad`` (an average divides each window by its own count:
`quant.windows.window_counts`), ``act``. GlobalMaxPool is the pool whose one window is the whole input.

Integer semantics (rule POOL): max of the window, the border reading the format's minimum; average:
rshift_round(sum * divisor_coef(cnt_h * cnt_w), DIV_FRAC)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from isa import numerics as nx

from .base import Format, IntContext, OpKind, PixelBlock, Shape, out_hw, register, window_out

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..ir import Graph, Op

POOL_MODES = ("max", "avg")


@register
class Pool(OpKind):
    """Max or average pooling on the vector unit."""

    name = "pool"
    fuses_act = True

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if len(ins[0]) != 3 or out[0] != ins[0][0] or window_out(op, ins[0]) != out[1:]:
            return f"pooling {ins[0]} -> {out} does not match the window geometry"
        if op.attrs.get("mode") not in POOL_MODES:
            return f"mode {op.attrs.get('mode')!r} not in (max, avg)"
        return None

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        from ..quant.windows import window_counts, windows

        x, ohw = xs[0], out_hw(g, op)
        if op.attrs["mode"] == "max":
            return np.asarray(windows(x, op, ohw, -np.inf).max(axis=(3, 4)))
        ch, cw = window_counts(op, x.shape[1:3], ohw)
        div = (ch[:, None] * cw[None, :])[None, :, :, None].astype(x.dtype)
        return np.asarray(windows(x, op, ohw, 0.0).sum(axis=(3, 4)) / div)

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        from ..quant.functional import DIV_FRAC, divisor_coef
        from ..quant.windows import window_counts, windows

        x, ohw = xs[0], out_hw(g, op)
        bits, fi = q.fmt[op.inputs[0]]
        if op.attrs["mode"] == "max":
            return windows(x, op, ohw, nx.qmin(bits)).max(axis=(3, 4)), fi
        ch, cw = window_counts(op, x.shape[1:3], ohw)
        coef = np.array([[divisor_coef(int(a * b)) for b in cw] for a in ch], dtype=np.int64)
        s = windows(x, op, ohw, 0).sum(axis=(3, 4))
        return nx.rshift_round(s * coef[None, :, :, None], DIV_FRAC), fi

    def preserves_fmt(self, op: Op) -> bool:
        return bool(op.attrs["mode"] == "max")

    def window_fill(self, op: Op, fmt: dict[str, Format]) -> int | None:
        return nx.qmin(fmt[op.inputs[0]][0]) if op.attrs["mode"] == "max" else 0

    def pixel_blocks(self, g: Graph, op: Op) -> list[PixelBlock]:
        from ..codegen.storage import hwc
        from ..codegen.vector import pool_blocks

        ih, iw, _ = hwc(g.values[op.inputs[0]].shape)
        return pool_blocks(op, (ih, iw), out_hw(g, op))

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.vector import emit_pool

        emit_pool(ctx, op)
