"""The program's edges: receives of remote tensors, graph inputs (manifest and transfers), graph outputs and the
initial border data of padded buffers."""

from __future__ import annotations

import numpy as np

from isa import NO_BASE, MemInit, MemRef, TensorLoc, ops
from isa.errors import ModelError

from .context import Context
from .inport import emit_port_inputs, port_of
from .loops import LoopRegs, pixel_loop
from .plan import SHARED_READERS, Stream
from .storage import Buffer, hwc
from .recurrent import stepped
from .vector import pixel_order


def emit_receive(ctx: Context, s: Stream) -> None:
    """The receive loop of one stream on its receiving core: in the head of its stream, or in the tail when the
    receiver is the output core of a graph output (it receives after computing)."""
    st, plan = ctx.st, ctx.plan
    if st.buffer(s.value).band:  # a line buffer: its reader receives row by row (`crossbar.band_rows`)
        return
    if stepped(ctx, s) is not None:  # a recurrent layer's Y received step by step in the next layer's loop
        return
    rcv = plan.receiver(st, s.value, s.tile)
    streams = ctx.stream(rcv)
    outputs = [o for o in {s.value} | plan.holders.get(s.value, set()) if o in plan.out_core]
    reads = any(rcv in plan.readers[o] for o in {s.value} | plan.holders.get(s.value, set()))
    # a graph output (or a part of a concat that is one) its output core does not read: received after computing
    out = streams.tail if not reads and any(rcv == plan.out_core[o] for o in outputs) else streams.head
    h, w, _ = hwc(ctx.g.values[s.value].shape)
    row_step, pix_step = st.pixel_step(s.value)
    spatial = len(ctx.g.values[s.value].shape) == 3
    # the pixels arrive in the order the producer stores them: a band of rows, or a padded average pool's blocks
    blocks = [(*s.rows, 0, w)] if s.rows else pixel_order(ctx.g, s.value)
    for r0, r1, q0, q1 in blocks:
        base = st.buffer(s.value).bases[s.tile] + st.origin(s.value) + s.c0 + r0 * row_step + q0 * pix_step
        pixel_loop(out, LoopRegs.of(ctx.hw), r1 - r0, q1 - q0, [(base, row_step, pix_step)], lambda m: out.append(
            ops.recv(dst=m[0], n=s.c1 - s.c0, tile=s.src[0], ch=s.ch, count=SHARED_READERS, node=s.value)),
            spatial=spatial, node=s.value)


def emit_inputs(ctx: Context) -> None:
    """Graph inputs: where the host writes each one (the whole padded buffer on its home tile), and the sends and
    receives of the plan's input transfers in the prologues."""
    for v in ctx.g.inputs:
        buf, home = ctx.st.buffer(v.name), ctx.plan.producers[v.name][0][0]
        bits, frac = ctx.fmt[v.name]
        port = port_of(ctx.plan, v.name)  # through the input port: the host sends rows to these tiles
        tile = port[0][0] if port else home[0]
        words = buf.hp * buf.wp * buf.c  # the host's whole padded tensor (a line buffer holds fewer)
        ctx.program.inputs.append(TensorLoc(v.name, tile, buf.bases[tile], words, bits, frac, v.shape,
                                            SHARED_READERS, tuple(buf.pads), buf.fill or 0,  # type: ignore[arg-type]
                                            port))
    emit_port_inputs(ctx)
    for t in ctx.plan.inputs:
        bases = ctx.st.buffer(t.value).bases
        ctx.stream(t.home).prologue.append(ops.send(src=MemRef(NO_BASE, bases[t.home[0]] + t.lo), n=t.n,
                                                    tile=t.rcv[0], ch=t.ch, node=t.value))
        ctx.stream(t.rcv).prologue.append(ops.recv(dst=MemRef(NO_BASE, bases[t.rcv[0]] + t.lo), n=t.n,
                                                   tile=t.home[0], ch=t.ch, count=SHARED_READERS, node=t.value))


def emit_outputs(ctx: Context) -> None:
    """Output locations on each output's tile."""
    for name in ctx.g.outputs:
        buf, core = ctx.st.buffer(name), ctx.plan.out_core[name]
        if ctx.st.views[name].coff or ctx.st.root(name) != name:
            raise ModelError(f"graph output '{name}' is also a concat input; not supported")
        bits, frac = ctx.fmt[name]
        words = buf.hp * buf.wp * buf.c  # the whole padded tensor (a line-buffered output leaves through the port)
        ctx.program.outputs.append(TensorLoc(ctx.g.external_name(name), core[0], buf.bases[core[0]], words,
                                             bits, frac, ctx.g.values[name].shape, SHARED_READERS,
                                             tuple(buf.pads), buf.fill or 0,  # type: ignore[arg-type]
                                             port_of(ctx.plan, name)))


def emit_borders(ctx: Context) -> None:
    """Initial data: the border of every padded buffer copy -- not of graph inputs written into memory: the host
    writes the whole padded buffer on the home tile and the home core sends all of it, border included, to the
    other tiles (graph inputs through the input port get their borders here: the host sends real rows only)."""
    inputs = {v.name for v in ctx.g.inputs} - {f.value for f in ctx.plan.port}  # port inputs: rows only
    for root, buf in ctx.st.buffers.items():
        if not any(buf.pads) or root in inputs:
            continue
        for t, base in sorted(buf.bases.items()):
            for lo, n in border_runs(buf, t):
                ctx.program.data.append(MemInit(t, base + lo, np.full(n, buf.fill or 0, np.int64), SHARED_READERS))


def border_runs(buf: Buffer, tile: int | None = None) -> list[tuple[int, int]]:
    """(offset, length) of the border runs of one copy: whole rows above and below, and the left and right
    border pixels of every interior row."""
    pt, pl, pb, pr = buf.pads
    row = buf.wp * buf.c
    if buf.band:  # a line buffer: the side borders of every slot (no rows above or below: `bands.BORDER`)
        sides = [(j * row, pl * buf.c) for j in range(buf.band_on(tile)) if pl]
        sides += [(j * row + (pl + buf.w) * buf.c, pr * buf.c) for j in range(buf.band_on(tile)) if pr]
        return sorted(sides)
    runs = [(0, pt * row)] if pt else []
    for h in range(pt, pt + buf.h):
        if pl:
            runs.append((h * row, pl * buf.c))
        if pr:
            runs.append((h * row + (pl + buf.w) * buf.c, pr * buf.c))
    if pb:
        runs.append(((pt + buf.h) * row, pb * row))
    return runs
