"""Line buffers (docs/design-notes.md, "Activations larger than a tile"): the output rows (or pixel groups of rows,
for rings of pixel groups) of a row op (a crossbar conv, a max pool, an element-wise op; `rowops.row_windows`)
that reads or writes a line-buffered tensor, for `loops.row_loop`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..ir import Op
from .inport import band_receive
from .loops import Receive, Row
from .rowops import global_average, row_windows, sweep_group, sweep_rows, sweep_units
from .storage import hwc

if TYPE_CHECKING:
    from .context import Context
    from .plan import CommPlan, Core


#: The key of a window's kernel row above or below the image of a line buffer, which holds no border rows there:
#: a conv zeroes the inputs of that kernel row (its border is zeros), a max pool leaves it out of the maximum (its
#: border is the format's smallest value), which is what reading the border would give.
BORDER = -1


def band_rows(ctx: Context, core: Core, op: Op) -> tuple[list[Row], int, list[Receive]]:
    """The output rows of ``op`` on ``core`` whose inputs or output are line-buffered -- its sweep units: rows, or
    the pixel groups of its rows when it reads or writes a line buffer held in groups (`rowops.sweep_group`,
    `unit_pixels` pixels each): per unit, the window origin of every input it sweeps (at its lowest kernel row in
    memory) and the output pixel address, the offsets of each window's kernel rows from its origin (the row's key,
    input after input, never negative; `BORDER` for a kernel row in the top or bottom border of a line buffer,
    which holds no border rows), and, for a line-buffered input, the input rows (groups) the core receives first
    (when it receives the input on its tile: the rows its windows or its frees reach first) and the rows no later
    window reads (freed after it: every real row once, the rows below the last window after the last output row;
    over rows, after a row's last unit); the period of the units' addresses (the bands over their strides); how
    each received input's rows arrive."""
    st, plan, tile = ctx.st, ctx.plan, core[0]
    windows = row_windows(ctx.g, ctx.mapping, op)
    assert windows is not None, f"'{op.name}' is not a row op"
    yout, gap = op.outputs[0], global_average(ctx.g, op)  # it sweeps its input's rows: no output pointer
    yb = st.buffer(yout)
    oh, units, group = sweep_rows(ctx.g, op), sweep_units(ctx.g, st, op), sweep_group(st, op)
    inputs = [(op.inputs[k], w) for k, w in sorted(windows.items())]
    receives: list[Receive] = []
    which: dict[str, int] = {}  # input -> its receive
    for x, _ in inputs:
        xb = st.buffer(x)
        streams = [s for s in plan.streams if s.value == x and s.tile == tile] if xb.band else []
        if streams and plan.receiver(st, x, tile) == core:
            which[x] = len(receives)
            receives.append(Receive(xb.group or xb.w, xb.c, tuple((s.c0, s.c1 - s.c0, s.src[0], s.ch)
                                                                 for s in streams), plan.receive_count(x, tile)))
        port = band_receive(ctx, x, core) if xb.band and x in plan.graph_inputs else None
        if port is not None:  # a graph input through the input port: whole rows from the port
            which[x] = len(receives)
            receives.append(port)
    told = {x: _tokens(plan, x, core, writing=True) for x, _ in inputs}  # tokens for the readers of what it receives
    waits = {x: _tokens(plan, x, core, writing=False) for x, _ in inputs}
    signals = _tokens(plan, yout, core, writing=True) if core in plan.writers(st, yout, tile) and yb.band else []
    rows, freed, got = [], {x: 0 for x, _ in inputs}, {x: 0 for x, _ in inputs}
    for u in range(oh * units):
        oy, k = divmod(u, units)
        starts: list[int] = []
        key: tuple[int, ...] = ()
        frees: list[tuple[int, int]] = []
        arrivals: list[tuple[int, int, tuple[int, ...]]] = []
        loads: list[int] = []
        late: list[tuple[tuple[tuple[int, int, tuple[int, ...]], ...], tuple[int, ...], tuple[int, int]]] = []
        for x, win in inputs:
            xb = st.buffer(x)
            top, reach, upto = win.unit_rows(u, units, oh, xb.units, bool(xb.group))

            def slot(r: int) -> int:
                """Offset of row (group) r's first real word."""
                return xb.unit_base(r, tile) if xb.group else xb.row_base(r, tile) + xb.pads[1] * xb.c

            def arrived(r: int) -> tuple[int, int, tuple[int, ...]]:
                """The receive of row (group) r and the tokens telling the tile's other readers."""
                return which[x], xb.bases[tile] + slot(r) + st.views[x].coff, tuple(t + r % xb.band_on(tile)
                                                                                   for t in told[x])

            if x in which:
                arrivals += [arrived(r) for r in range(got[x], reach)]
            loads += [t + r % xb.band_on(tile) for r in range(got[x], reach) for t in waits[x]]
            got[x] = max(got[x], reach)
            if xb.band:
                frees += [(xb.bases[tile] + slot(r), (xb.group or xb.w) * xb.c)
                          for r in range(freed[x], min(upto, reach))]
                late += [((arrived(r),) if x in which and r >= got[x] else (),
                          tuple(t + r % xb.band_on(tile) for t in waits[x]) if r >= got[x] else (),
                          (xb.bases[tile] + slot(r), (xb.group or xb.w) * xb.c))
                         for r in range(max(freed[x], reach), upto)]  # below the window: freed unread
                freed[x] = max(freed[x], upto)
                got[x] = max(got[x], upto)
            if xb.group:
                key += (0,)
                starts.append(xb.bases[tile] + xb.unit_base(u, tile) + st.views[x].coff)
                continue
            inside = [top + q * win.dh for q in range(win.kh)]
            bases = [xb.row_base(h, tile) if not xb.band or 0 <= h < xb.h else None for h in inside]
            low = min(b for b in bases if b is not None)  # the pointer starts at the lowest kernel row (band slots
            key += tuple(BORDER if b is None else b - low for b in bases)  # wrap): offsets stay non-negative
            starts.append(xb.bases[tile] + low + (xb.pads[1] - win.pl + k * group * win.sw) * xb.c
                          + st.views[x].coff)
        if not gap and yb.group:
            starts.append(yb.bases.get(tile, 0) + yb.unit_base(u, tile) + st.views[yout].coff)
        elif not gap:
            starts.append(yb.bases.get(tile, 0) + yb.row_base(oy, tile) + (yb.pads[1] + k * group) * yb.c
                          + st.views[yout].coff)
        told_y = [t + u % yb.band_on(tile) for t in signals] if yb.group else \
            [t + oy % yb.band_on(tile) for t in signals] if k == units - 1 else []
        rows.append(Row(tuple(starts), key, tuple(frees), tuple(arrivals), tuple(loads), tuple(told_y), tuple(late)))
    bands = {x: st.buffer(x).band_on(tile) for x, _ in inputs}  # the copies on this tile
    out_period = yb.band_on(tile) if yb.group else (yb.band_on(tile) or 1) * units
    period = math.lcm(out_period, *(bands[x] if st.buffer(x).group else bands[x] // math.gcd(bands[x], w.sh) * units
                                    for x, w in inputs if bands[x]))
    return rows, period, receives


def unit_pixels(ctx: Context, op: Op) -> int:
    """Pixels of one unit of a row op's sweep (`band_rows`): its pixel group, else a whole row."""
    group = sweep_group(ctx.st, op)
    return group or hwc(ctx.g.values[op.inputs[0] if global_average(ctx.g, op) else op.outputs[0]].shape)[1]


def _tokens(plan: CommPlan, value: str, core: Core, writing: bool) -> list[int]:
    """The token words (`plan._tokens`) of line buffer ``value`` that ``core`` stores (``writing``: one per other
    reader on its tile) or loads (one per other writer on its tile)."""
    return [addr for (v, w, r), addr in plan.tokens.items() if v == value and (w if writing else r) == core]


def window_offsets_of(ctx: Context, op: Op, rows: list[Row]) -> dict[int, np.ndarray]:
    """A conv's window offsets (weight-row order: kernel row, kernel column, channel) for each of ``rows``;
    `BORDER` for every weight row of a kernel row in the border of a line buffer."""
    (kh, kw), dw = op.attrs["kernel"], op.attrs.get("dilations", (1, 1))[1]
    xb = ctx.st.buffer(op.inputs[0])
    c = hwc(ctx.g.values[op.inputs[0]].shape)[2]
    i, j, k = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    offsets = {}
    for r, row in enumerate(rows):
        key = np.asarray(row.key)[i]
        offsets[r] = np.where(key == BORDER, BORDER, key + j * dw * xb.c + k).reshape(-1)
    return offsets
