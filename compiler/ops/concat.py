"""``concat``: (C_i, H, W) inputs -> (sum C_i, H, W) along channels, or with attr ``pixels=True`` inputs of C
channels laid end to end in the output's row-major pixel order, each either whole rows of the output or within
one row (a bidirectional recurrent Y: the directions' (T, 1, H) sequences as (T, 2, H), or as (T, 1, 2H)). No
core runs it: its inputs are stored as channel or pixel views of its output's buffer (`codegen.Storage`), in the
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
        if op.attrs.get("pixels"):
            return None if pixel_offsets(ins, out) is not None else f"pixel concat {ins} -> {out}"
        if any(len(s) != 3 or s[1:] != out[1:] for s in ins) or sum(s[0] for s in ins) != out[0]:
            return f"channel concat {ins} -> {out}"
        return None

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        return _join(g, op, xs)

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        return _join(g, op, xs), q.fmt[op.outputs[0]][1]

    def preserves_fmt(self, op: Op) -> bool:
        return True

    def emit(self, ctx: Context, op: Op) -> None:
        """Nothing to run: the producers of the inputs write into the output's buffer."""


def pixel_offsets(ins: list[Shape], out: Shape) -> list[int] | None:
    """The first output pixel (row-major) of each input of a pixel concat, or None when the inputs do not tile
    the output: equal channels, each input whole rows starting a row or inside one row."""
    if len(out) != 3 or any(len(s) != 3 or s[0] != out[0] for s in ins):
        return None
    offs, at = [], 0
    for _, h, w in ins:
        whole_rows = w == out[2] and at % out[2] == 0
        in_row = h == 1 and at % out[2] + w <= out[2]
        if not (whole_rows or in_row):
            return None
        offs.append(at)
        at += h * w
    return offs if at == out[1] * out[2] else None


def _join(g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
    """The concat of internal-layout (B, H, W, C) arrays: along C, or (``pixels``) their pixels end to end."""
    if not op.attrs.get("pixels"):
        return np.concatenate(xs, axis=-1)
    _, h, w = g.values[op.outputs[0]].shape
    flat = np.concatenate([x.reshape(len(x), -1, x.shape[-1]) for x in xs], axis=1)
    return flat.reshape(len(flat), h, w, flat.shape[-1])
