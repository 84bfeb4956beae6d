"""``eltwise``: 1 or 2 inputs -> the first's shape: attr ``op`` (absent: ``add``; ``sub``, ``mul``) of the inputs,
then ``act``; the second input may be (C, 1, 1), (C, H, 1) or (C, 1, W) against a (C, H, W) first (broadcast
over the pixels, rows or columns, as squeeze-excite gating multiplies: its pointer does not advance along the
broadcast axes). One input: a copy (or a standalone activation).

Integer semantics (rule ELTWISE): add/sub align both inputs to the larger fraction (rshift_round) and add
exactly; mul rounds the exact product into f_m (`mul_frac`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from isa import numerics as nx

from .base import IntContext, OpKind, Shape, register, same_shape

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..ir import Graph, Op

ELTWISE_OPS = ("add", "sub", "mul")


def broadcasts(small: Shape, big: Shape) -> bool:
    """Whether a second operand of shape ``small`` broadcasts over the pixels of a (C, H, W) ``big``."""
    return len(big) == 3 and len(small) == 3 and small[0] == big[0] and small != big \
        and all(s in (1, b) for s, b in zip(small[1:], big[1:]))


def mul_frac(fa: int, fb: int, fy: int) -> tuple[int, int]:
    """Rule ELTWISE (mul): the fraction f_m = max(min(f_y, f_a + f_b), f_a + f_b - 62) the product is rounded
    into, and the rounding shift f_a + f_b - f_m (in [0, 62], the ``mul`` instruction's f)."""
    fm = max(min(fy, fa + fb), fa + fb - 62)
    return fm, fa + fb - fm


@register
class Eltwise(OpKind):
    """Element-wise add, sub or mul of activations on the vector unit."""

    name = "eltwise"
    arity = (1, 2)
    fuses_act = True

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if op.attrs.get("op", "add") not in ELTWISE_OPS:
            return f"op {op.attrs.get('op')!r} not in {ELTWISE_OPS}"
        if len(ins) == 2 and broadcasts(ins[1], out) and ins[0] == out:
            return None
        return same_shape(ins, out)

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        fn = op.attrs.get("op", "add")
        if len(xs) == 2 and fn != "add":
            return np.asarray(xs[0] * xs[1] if fn == "mul" else xs[0] - xs[1])
        return sum(xs[1:], xs[0])

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        if op.attrs.get("op") == "mul":
            fi, shift = mul_frac(q.fmt[op.inputs[0]][1], q.fmt[op.inputs[1]][1], q.fmt[op.outputs[0]][1])
            return nx.rshift_round(xs[0] * xs[1], shift), fi
        fi = max(q.fmt[i][1] for i in op.inputs)
        a, *rest = (nx.rshift_round(v, q.fmt[i][1] - fi) for v, i in zip(xs, op.inputs))
        return (a - rest[0] if op.attrs.get("op") == "sub" else sum(rest, a)), fi

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.vector import emit_eltwise

        emit_eltwise(ctx, op)
