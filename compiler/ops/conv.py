"""``conv``: (C, H, W) -> (Cout, OH, OW); params ``weight`` (kh*kw*C, Cout) with rows in window order (kernel
row, kernel column, input channel) -- grouped convolutions are block-diagonal -- and optional ``bias``; attrs
``kernel``, ``strides``, ``pads`` (top, left, bottom, right), ``dilations``, ``act``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Format, Shape, out_hw, register, window_out
from .crossbar import CrossbarKind

if TYPE_CHECKING:
    from ..ir import Graph, Op


@register
class Conv(CrossbarKind):
    """A convolution on crossbars: the dense product of every im2col window (rule MVM)."""

    name = "conv"
    windowed = True

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if len(ins[0]) != 3 or len(out) != 3:
            return f"expects (C, H, W) tensors, got {ins[0]} -> {out}"
        kh, kw = op.attrs["kernel"]
        problem = self.check_params(op, kh * kw * ins[0][0], out[0])
        if problem:
            return problem
        if window_out(op, ins[0]) != out[1:]:
            return f"output {out} does not match the window geometry {window_out(op, ins[0])}"
        return None

    def windows(self, g: Graph, op: Op) -> tuple[int, int] | None:
        return out_hw(g, op)

    def rows(self, g: Graph, op: Op, x: np.ndarray) -> np.ndarray:
        from ..quant.windows import im2col

        return im2col(x, op, out_hw(g, op))

    def geometry(self, g: Graph, op: Op) -> dict[str, tuple[int, ...]]:
        return {k: tuple(op.attrs[k]) for k in ("kernel", "strides", "pads", "dilations")}

    def window_fill(self, op: Op, fmt: dict[str, Format]) -> int | None:
        return 0
