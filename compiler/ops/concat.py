"""``concat``: (C_i, H, W) inputs -> (sum C_i, H, W) along channels, or with attr ``axis=1`` (C, H_i, W) ->
(C, sum H_i, W) along rows (a bidirectional recurrent Y: the directions' (T, 1, H) sequences as (T, 2, H)). No
core runs it: its inputs are stored as channel or row views of its output's buffer (`codegen.Storage`), in the
output's format."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import IntContext, OpKind, Shape, register

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..ir import Graph, Op


@register
class Concat(OpKind):
    """A channel concatenation (a storage view)."""

    name = "concat"
    arity = (1, 64)
    device = "view"

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if op.attrs.get("axis", 0) == 1:
            if any(len(s) != 3 or (s[0], s[2]) != (out[0], out[2]) for s in ins) or sum(s[1] for s in ins) != out[1]:
                return f"row concat {ins} -> {out}"
            return None
        if any(len(s) != 3 or s[1:] != out[1:] for s in ins) or sum(s[0] for s in ins) != out[0]:
            return f"channel concat {ins} -> {out}"
        return None

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs, axis=_axis(op))

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        return np.concatenate(xs, axis=_axis(op)), q.fmt[op.outputs[0]][1]

    def preserves_fmt(self, op: Op) -> bool:
        return True

    def emit(self, ctx: Context, op: Op) -> None:
        """Nothing to run: the producers of the inputs write into the output's buffer."""


def _axis(op: Op) -> int:
    """The concatenated axis of the internal (B, H, W, C) layout."""
    return 1 if op.attrs.get("axis", 0) == 1 else -1
