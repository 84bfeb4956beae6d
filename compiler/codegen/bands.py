"""Line buffers (docs/design-notes.md, "Activations larger than a tile"): the output rows of a windowed op (a
crossbar conv or a max pool) that reads or writes a line-buffered tensor, for `loops.row_loop`."""

from __future__ import annotations

import math

import numpy as np

from ..ir import Op
from .context import Context
from .inport import band_receive
from .loops import Receive, Row
from .plan import Core
from .storage import hwc


def band_rows(ctx: Context, core: Core, op: Op) -> tuple[list[Row], int, Receive | None]:
    """The output rows of ``op`` on ``core`` whose input or output is line-buffered: per row, the window origin (at
    its lowest kernel row in memory) and output pixel addresses, the offsets of the window's kernel rows from its
    origin (the row's key, never negative; a kernel row in the top or bottom border reads the buffer's border
    row), and, for a line-buffered input, the input
    rows the core receives first (when it receives the input on its tile: the rows its window or its frees reach
    first) and the rows no later window reads (freed after it: every real row once, the rows below the last
    window after the last output row); the period of the rows' addresses (the bands over their strides); how
    received rows arrive."""
    st, plan, kh, sh = ctx.st, ctx.plan, op.attrs["kernel"][0], op.attrs["strides"][0]
    dh, (pt, pl) = op.attrs.get("dilations", (1, 1))[0], op.attrs["pads"][:2]
    xin, yout, tile = op.inputs[0], op.outputs[0], core[0]
    xb, yb = st.buffer(xin), st.buffer(yout)
    oh = hwc(ctx.g.values[yout].shape)[0]
    col0 = (xb.pads[1] - pl) * xb.c + st.views[xin].coff
    streams = [s for s in plan.streams if s.value == xin and s.tile == tile] if xb.band else []
    receive = None
    if streams and plan.receiver(st, xin, tile) == core:
        receive = Receive(xb.w, xb.c, tuple((s.c0, s.c1 - s.c0, s.src[0], s.ch) for s in streams),
                          plan.store_count(xin, tile))
    if xb.band and plan.port:  # a graph input through the input port: whole rows from the port
        receive = band_receive(ctx, xin, core) or receive
    rows, freed, got = [], 0, 0
    for oy in range(oh):
        top = oy * sh - pt
        bases = [xb.row_base(top + q * dh) for q in range(kh)]
        low = min(bases)  # the pointer starts at the lowest kernel row (a band's border row lies after its slots):
        kernel_rows = tuple(b - low for b in bases)  # offsets stay non-negative, as memory operands must
        last = oy == oh - 1
        upto = xb.h if last else min(max(top + sh, 0), xb.h)
        reach = max(upto, min(max(top + (kh - 1) * dh + 1, 0), xb.h))  # a row is received before it is freed
        receives = tuple(xb.bases[tile] + xb.row_base(r) + xb.pads[1] * xb.c + st.views[xin].coff
                         for r in range(got, reach)) if receive else ()
        got = max(got, reach)
        frees = tuple((xb.bases[tile] + xb.row_base(r) + xb.pads[1] * xb.c, xb.w * xb.c)
                      for r in range(freed, upto)) if xb.band else ()
        freed = max(freed, upto)
        starts = (xb.bases[tile] + low + col0,
                  yb.bases.get(tile, 0) + yb.row_base(oy) + yb.pads[1] * yb.c + st.views[yout].coff)
        rows.append(Row(starts, kernel_rows, frees, receives))
    period = math.lcm(xb.band // math.gcd(xb.band, sh) if xb.band else 1, yb.band or 1)
    return rows, period, receive


def window_offsets_of(ctx: Context, op: Op, rows: list[Row]) -> dict[int, np.ndarray]:
    """A conv's window offsets (weight-row order: kernel row, kernel column, channel) for each of ``rows``."""
    (kh, kw), dw = op.attrs["kernel"], op.attrs.get("dilations", (1, 1))[1]
    xb = ctx.st.buffer(op.inputs[0])
    c = hwc(ctx.g.values[op.inputs[0]].shape)[2]
    i, j, k = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    return {r: (np.asarray(row.key)[i] + j * dw * xb.c + k).reshape(-1) for r, row in enumerate(rows)}
