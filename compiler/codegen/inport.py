"""Graph inputs and outputs through the host port (docs/design-notes.md, "Activations larger than a tile";
`isa.inport`): the host streams each real row of an input to every tile that needs it, instead of writing the
whole padded buffer into its home tile before the run; a line-buffered output is sent to the host pixel by pixel
as it is stored, instead of held whole (a round's outputs, `mapping.rounds`, are spilled that way). Each row is received like a row of a cross-tile stream, from the port
pseudo-tile (`HardwareConfig.port_tile`), as messages of at most `plan.MAX_MSG` words; so the input needs only a
line buffer (`plan.line_buffers`) on its readers' tiles when its readers are windowed ops, and a whole buffer,
filled row by row by its first reader core before computing, otherwise.

The plan uses the port only when the whole-tensor plan does not fit the tile memories (`plan.plan_communication`),
so programs that fit are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from isa import ops
from isa.hardware import HardwareConfig

from ..ir import Graph
from .loops import LoopRegs, Receive, pixel_loop
from .storage import Storage

if TYPE_CHECKING:
    from .context import Context
    from .plan import CommPlan, Core


@dataclass(frozen=True)
class PortFeed:
    """Words [lo, lo + n) of every real row of graph input ``value``, sent by the host to ``tile`` on channel
    ``ch`` of the port; for a graph output, channels [lo, lo + n) of every pixel, sent by ``tile`` to the port."""

    value: str
    tile: int
    ch: int
    lo: int
    n: int


def portable(g: Graph, st: Storage, hw: HardwareConfig) -> set[str]:
    """The graph inputs and outputs that can go through the port, when its tile number fits the 12-bit tile field
    of send and recv (a chip of fewer than 4,096 tiles): every input (never a concat view) that is not also an
    output, every output (C, H, W) tensor with a buffer of its own (`plan.line_buffers` decides which of them
    are line-buffered: an output then leaves through the port as it is produced, `plan_port_outputs`)."""
    from isa.hardware import HARDWARE_FIELDS

    if hw.port_tile > int(HARDWARE_FIELDS["tiles"].hi or 0) - 1:
        return set()
    inputs = {v.name for v in g.inputs if st.root(v.name) == v.name and v.name not in g.outputs}
    outputs = {v for v in g.outputs if st.root(v) == v and len(g.values[v].shape) == 3 and g.producer(v) is not None}
    return inputs | outputs


def plan_port(g: Graph, st: Storage, hw: HardwareConfig, plan: "CommPlan", take: Callable[[int, int], int]) -> None:
    """A feed per (input, tile needing it, message of a row): one port channel per (input, tile)."""
    from .plan import MAX_MSG

    for v in g.inputs:
        buf = st.buffer(v.name)
        row = buf.w * buf.c
        for t in sorted(plan.need[v.name]):
            ch = take(hw.port_tile, t)
            plan.port.extend(PortFeed(v.name, t, ch, lo, min(MAX_MSG, row - lo)) for lo in range(0, row, MAX_MSG))


def plan_port_outputs(g: Graph, st: Storage, hw: HardwareConfig, plan: "CommPlan",
                      take: Callable[[int, int], int]) -> None:
    """Every line-buffered graph output leaves through the port: each producer core sends each pixel chunk it
    stores to the port (a `plan.Stream` to `HardwareConfig.port_tile` in `CommPlan.sends`; the store's reader
    count has one more for it, `plan.line_buffers`), recorded as a feed (source tile, channel, first channel,
    channels) for the manifest."""
    from .plan import Stream

    for v in g.outputs:
        if not st.buffer(v).band or g.producer(v) is None:
            continue
        for src, c0, c1 in plan.producers[v]:
            s = Stream(v, src, c0, c1, hw.port_tile, take(src[0], hw.port_tile), plan.bands.get((v, src)))
            plan.sends[(v, src, c0)].append(s)
            plan.port.append(PortFeed(v, src[0], s.ch, c0, c1 - c0))


def row_start(st: Storage, value: str, tile: int, h: int) -> int:
    """Address on ``tile`` of the first real word of row ``h`` of ``value``'s buffer (a line buffer's slot)."""
    buf = st.buffer(value)
    return buf.bases[tile] + buf.row_base(h, tile) + buf.pads[1] * buf.c


def band_receive(ctx: "Context", value: str, core: "Core") -> Receive | None:
    """How ``core`` receives the rows of line-buffered port input ``value`` (`loops.Receive`: one row as one
    message per feed), or None when it is not that input's receiver on its tile."""
    feeds = [f for f in ctx.plan.port if f.value == value and f.tile == core[0]]
    if not feeds or ctx.plan.receiver(ctx.st, value, core[0]) != core:
        return None
    return Receive(1, 0, tuple((f.lo, f.n, ctx.hw.port_tile, f.ch) for f in feeds),
                   ctx.plan.store_count(value, core[0]))


def emit_port_inputs(ctx: "Context") -> None:
    """The receives of port inputs held whole: each tile's receiver core takes every row in its prologue (a line
    buffer's rows are received inside its reader's row loop, `band_receive`)."""
    st, plan = ctx.st, ctx.plan
    for v in ctx.g.inputs:
        buf = st.buffer(v.name)
        if buf.band:
            continue
        for t in sorted({f.tile for f in plan.port if f.value == v.name}):
            feeds = [f for f in plan.port if f.value == v.name and f.tile == t]
            out = ctx.stream(plan.receiver(st, v.name, t)).prologue
            count = plan.store_count(v.name, t)
            pixel_loop(out, LoopRegs.of(ctx.hw), buf.h, 1, [(row_start(st, v.name, t, 0), buf.wp * buf.c, 0)],
                       lambda m: out.extend(ops.recv(dst=m[0].shifted(f.lo), n=f.n, tile=ctx.hw.port_tile,
                                                     ch=f.ch, count=count, node=v.name) for f in feeds),
                       spatial=buf.h > 1, node=v.name)


def port_of(plan: "CommPlan", value: str) -> tuple[tuple[int, int, int, int], ...]:
    """The manifest's feeds of ``value`` (`isa.TensorLoc.port`): (tile, channel, row offset, words) each."""
    return tuple((f.tile, f.ch, f.lo, f.n) for f in plan.port if f.value == value)
