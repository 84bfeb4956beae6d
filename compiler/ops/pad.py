"""``pad``: constant-zero spatial padding (C, H, W) -> (C, H + top + bottom, W + left + right); attr ``pads``
(top, left, bottom, right). Folded into the convolutions that read it (`passes.canonicalize.FoldPad`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import OpKind, Shape, register

if TYPE_CHECKING:
    from ..ir import Graph, Op


@register
class Pad(OpKind):
    """Explicit zero padding (no device code: folded away)."""

    name = "pad"
    device = "none"

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        pt, pl, pb, pr = op.attrs["pads"]
        c, h, w = ins[0]
        return None if out == (c, h + pt + pb, w + pl + pr) else f"pad {ins[0]} -> {out}"

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        from ..quant.windows import pad_hwc

        return pad_hwc(xs[0], op.attrs["pads"], 0.0)

    def device_error(self, g: Graph, op: Op) -> str:
        return (f"node '{op.name}': a Pad read by anything but convolutions cannot run on the device (it is "
                f"folded into the convolutions that read it)")
