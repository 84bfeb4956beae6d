"""``recurrent``: one direction of an LSTM, GRU or RNN over a sequence (T, 1, C) (a batch-first (N, T, C) tensor
lifted; a bidirectional Y read as (T, 2H) is one, `ops.concat`'s pixel concat), written by `frontend.recurrent`. Attrs ``cell`` (lstm, gru, rnn), ``hidden`` H, ``steps`` T,
``reverse``, ``acts`` (the gate functions), ``clip`` (None or the bound of every activation's input),
``input_forget``, GRU ``linear_before_reset`` (0: a second MVM per step, `quant.recurrent.drives`), ``out``: ``seq`` (output (T, 1, H), h_t at time t), ``h`` or ``c`` (the last hidden or cell
state: (H, 1, 1), or (1, 1, H) as one direction of a bidirectional node, whose states are concatenated). Params ``weight`` (C + H, columns) on [x_t ; h_{t-1}], ``bias`` (columns,), ``init_h`` (H,),
LSTM ``init_c`` and optional ``peephole`` (3H: i, o, f). A crossbar layer with its own time loop (rule
RECURRENT, docs/semantics.md): float and integer semantics in `quant.recurrent`, code in `codegen.recurrent`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import IntContext, Shape, register
from .crossbar import CrossbarKind

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..ir import Graph, Op

#: weight columns per hidden unit (GRU: z, r and the candidate's input and recurrent parts)
COLUMNS = {"lstm": 4, "gru": 4, "rnn": 1}


@register
class Recurrent(CrossbarKind):
    """An LSTM/GRU/RNN direction: one MVM of [x_t ; h_{t-1}] per step, the gates on the vector unit."""

    name = "recurrent"
    fuses_act = False

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        a = op.attrs
        if len(ins[0]) != 3 or ins[0][1] != 1 or ins[0][0] != a["steps"]:
            return f"input shape {ins[0]} is not a sequence of {a['steps']} steps (T, 1, C)"
        h = a["hidden"]
        want = [(a["steps"], 1, h)] if a["out"] == "seq" else [(h, 1, 1), (1, 1, h)]
        if out not in want:
            return f"output shape {out}, expected {' or '.join(map(str, want))}"
        return self.check_params(op, ins[0][2] + h, COLUMNS[a["cell"]] * h)

    def pixels(self, g: Graph, op: Op) -> int:
        """One MVM per time step (two: a GRU with ``linear_before_reset=0``)."""
        from ..quant.recurrent import drives

        return int(op.attrs["steps"]) * drives(op)

    def rows(self, g: Graph, op: Op, x: np.ndarray) -> np.ndarray:
        """The (B * T, C + H) MVM inputs as far as the input tells them: x_t, and zeros for h_{t-1} (which only
        the time loop computes; the search's cost model counts the DAC pulses of the x rows only); a second drive
        per step (`pixels`) repeats them."""
        from ..quant.recurrent import drives

        b, _, c, t = x.shape
        xs = x[:, 0].transpose(0, 2, 1).reshape(b * t, c)
        rows = np.concatenate([xs, np.zeros((b * t, int(op.attrs["hidden"])), dtype=x.dtype)], axis=1)
        return np.concatenate([rows] * drives(op)) if drives(op) > 1 else rows

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        from ..quant.recurrent import float_recurrent

        return float_recurrent(op, xs[0])[0].astype(xs[0].dtype, copy=False)

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        from ..quant.blockcache import quantized
        from ..quant.recurrent import recurrent_q

        p = q.prec[op.name]
        ql = quantized(op, p)
        return recurrent_q(op, xs[0], ql.weight, ql.bias, p, q.hw), p.acc_frac

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.recurrent import emit_recurrent

        emit_recurrent(ctx, op, ctx.quantized[op.name])
