"""``act``: 1 input, 1 output of the same shape; attr ``act`` (the function, not ``none``). Canonicalization
fuses it into the op before it or turns it into a one-input ``eltwise`` (`passes.canonicalize.FuseActivation`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import OpKind, Shape, register, same_shape

if TYPE_CHECKING:
    from ..ir import Graph, Op


@register
class Activation(OpKind):
    """A standalone activation (its function is the generic fused activation)."""

    name = "act"
    device = "none"

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if op.attrs.get("act") in (None, "none"):
            return same_shape(ins, out) or "standalone activation without a function"
        return same_shape(ins, out)

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        return xs[0]
