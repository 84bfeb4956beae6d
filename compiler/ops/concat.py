"""``concat``: (C_i, H, W) inputs -> (sum C_i, H, W) along channels. No core runs it: its inputs are stored as
channel views of its output's buffer (`codegen.Storage`), in the output's format."""

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
        if any(len(s) != 3 or s[1:] != out[1:] for s in ins) or sum(s[0] for s in ins) != out[0]:
            return f"channel concat {ins} -> {out}"
        return None

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs, axis=-1)

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        return np.concatenate(xs, axis=-1), q.fmt[op.outputs[0]][1]

    def preserves_fmt(self, op: Op) -> bool:
        return True

    def emit(self, ctx: Context, op: Op) -> None:
        """Nothing to run: the producers of the inputs write into the output's buffer."""
