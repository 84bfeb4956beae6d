"""``dense``: 1 input of n_in elements (any shape, read row-major in the internal layout: HWC for (C, H, W)),
1 output (n_out,); params ``weight`` (n_in, n_out), optional ``bias`` (n_out,); attr ``act``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Shape, register, size_of
from .crossbar import CrossbarKind

if TYPE_CHECKING:
    from ..ir import Op


@register
class Dense(CrossbarKind):
    """A fully connected layer on crossbars (rule MVM, docs/semantics.md)."""

    name = "dense"

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        problem = self.check_params(op, size_of(ins[0]), size_of(out))
        return None if problem is None else f"{problem}: does not map {ins[0]} to {out}"
