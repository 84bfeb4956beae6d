"""The communication plan, computed once before any instruction is emitted: who produces and reads every tensor,
where its buffer copies live, which pixel chunks travel between tiles on which channel, where partial sums and
biases go, and how graph inputs reach the tiles that need them.

Every activation word is stored once with reader count 0 (valid from then on), so consumers synchronize on valid
bits alone; partial sums go to a scratch buffer with reader count 1 (the owner core consumes each exactly once).
A tile that needs a tensor produced on another tile gets each produced pixel chunk by send/receive: the producer
sends right after its store, the first core on the receiving tile that reads the tensor receives all its pixels
before computing. Memory is bump-allocated per tile and channels are numbered per (source, destination) tile
pair, in a fixed order: buffers, streams, then per crossbar layer its scratch, remote scratch and bias, then the
constants of affine ops, then the graph-input transfers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from dataclasses import dataclass, field

from isa.errors import ModelError
from isa.hardware import HardwareConfig

from ..ir import Graph, Op
from ..mapping import Block, LayerMap, Mapping
from ..mapping.fit import tile_ops
from ..ops import kind_of
from .memory import LISTED, buffer_shape, describe
from .rowops import Window, band_height, pixel_group, row_windows, vector_chunk
from .storage import Storage, hwc

Core = tuple[int, int]
MAX_MSG = 65535  # words of one message (the n field of send and recv)
PARTIAL_READERS = 1  # reader count of a stored partial sum: its owner consumes it once
SHARED_READERS = 0  # reader count of activations: valid for any number of reads


@dataclass(frozen=True)
class Stream:
    """Pixels [c0, c1) of tensor ``value`` produced by ``src`` and sent to ``tile`` on channel ``ch``."""

    value: str
    src: Core
    c0: int
    c1: int
    tile: int
    ch: int
    rows: tuple[int, int] | None = None  # the band of pixel rows the producer writes (None: all)


@dataclass(frozen=True)
class Partial:
    """Where the partial sum of a crossbar block held away from its owner core goes: ``scratch`` on its own tile
    and, when the owner is on another tile, ``remote`` (address on the owner's tile, channel)."""

    scratch: int
    remote: tuple[int, int] | None = None


@dataclass(frozen=True)
class InputTransfer:
    """One message of graph input ``value``: words [lo, lo+n) of its buffer from the home core to ``rcv``."""

    value: str
    home: Core
    rcv: Core
    lo: int
    n: int
    ch: int


class TileMemory:
    """Bump allocation of each tile's memory. An allocation past ``tile_mem_words`` is recorded, not raised at
    once, so that `check` can say what the whole chip needs (`plan_communication` calls it last)."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        self.top: dict[int, int] = defaultdict(int)
        self.held: dict[int, list[tuple[str, int]]] = defaultdict(list)  # what each tile holds, for messages
        self.details: dict[tuple[int, str], str] = {}  # (tile, what) -> its shape there (`memory.breakdown`)
        self.placed: dict[int, list[str]] = {}  # tile -> the ops placed on it, for the error
        self.storage: Storage | None = None  # the storage planned (`memory.plan_memory`)
        self.first_overflow: tuple[int, str, int] | None = None  # (tile, what, words)

    def alloc(self, tile: int, words: int, what: str = "scratch", detail: str = "") -> int:
        """``words`` of ``tile``'s memory for ``what`` (a tensor's name, a bias, ...; ``detail``: its shape)."""
        addr = self.top[tile]
        self.top[tile] += words
        self.held[tile].append((what, words))
        if detail:
            self.details[tile, what] = detail
        if self.top[tile] > self.hw.tile_mem_words and self.first_overflow is None:
            self.first_overflow = (tile, what, words)
        return addr

    def holdings(self, tile: int, n: int = 3) -> str:
        """The ``n`` largest holdings of ``tile`` (`memory.breakdown`: one per tensor, partial sums, ...) with their
        shapes and what the rest add up to, e.g. "tensor 'x' 3,712 words (band of 2 of 56 rows x 58 x 32), ...
        and 12 more (4,096 words)": what a placement or a line buffer would have to move or shrink."""
        return describe(self, tile, n)

    def check(self) -> None:
        """ModelError when a tile is full: what overflowed first, what that tile holds, the largest need of any
        tile, the presets with that much memory, and the hardware field that fits."""
        if self.first_overflow is None:
            return
        from isa.hardware import PRESETS

        tile, what, words = self.first_overflow
        need_tile = max(self.top, key=lambda t: self.top[t])
        need = self.top[need_tile]
        ops = self.placed.get(tile)
        placed = f" (ops placed on it: {', '.join(ops)})" if ops else ""
        busiest = "" if need_tile == tile else f": {self.holdings(need_tile, 5)}"
        fits = [n for n, p in PRESETS.items() if p.tile_mem_words >= need]
        presets = (f"presets with that much tile memory: {', '.join(fits)}" if fits else
                   "no preset has that much tile memory")
        raise ModelError(f"tile {tile} memory overflow placing {what} ({words:,} words): the tile needs "
                         f"{self.top[tile]:,} words and has {self.hw.tile_mem_words:,} (tile_mem_words of "
                         f"'{self.hw.name}'){placed}; it holds {self.holdings(tile, LISTED)}. Tensors are held whole on "
                         f"each tile that "
                         f"reads them, except those passed between row ops (convs, max pools, element-wise ops) and "
                         f"graph inputs through the input port, which are line-buffered (docs/design-notes.md, "
                         f"'Activations larger than a tile'); the largest tile needs {need:,} words (tile "
                         f"{need_tile}{busiest}); "
                         f"{presets}. Use a hardware file with tile_mem_words >= {need:,} (a power of two: "
                         f"{1 << (need - 1).bit_length():,})")


@dataclass
class CommPlan:
    """The plan (see module docstring); built by `plan_communication`, read by the emitters."""

    producers: dict[str, list[tuple[Core, int, int]]] = field(default_factory=lambda: defaultdict(list))
    readers: dict[str, list[Core]] = field(default_factory=lambda: defaultdict(list))
    bands: dict[tuple[str, Core], tuple[int, int] | None] = field(default_factory=dict)
    need: dict[str, set[int]] = field(default_factory=dict)  # tiles that need a value
    holders: dict[str, set[str]] = field(default_factory=dict)  # concat outputs holding a value (`_concat_holders`)
    order: dict[str, int] = field(default_factory=dict)  # position of each value's producer in the graph
    out_core: dict[str, Core] = field(default_factory=dict)
    streams: list[Stream] = field(default_factory=list)
    sends: dict[tuple[str, Core, int], list[Stream]] = field(default_factory=lambda: defaultdict(list))
    partials: dict[Block, Partial] = field(default_factory=dict)
    links: dict[tuple[str, int, int, Core], Partial] = field(default_factory=dict)  # (layer, rep, col, core) ->
    # where that core passes the running sum of a chained column block on (`chain_cores`, `_chain_links`)
    bias: dict[tuple[str, Core, int], int] = field(default_factory=dict)  # (layer, core, col block) -> address
    consts: dict[str, int] = field(default_factory=dict)  # affine op -> address of its scale, then its shift
    recurrent: dict[str, Any] = field(default_factory=dict)  # layer -> `codegen.recurrent.RecurrentPlan`
    inputs: list[InputTransfer] = field(default_factory=list)
    port: list[Any] = field(default_factory=list)  # graph inputs' feeds through the input port (`inport.PortFeed`)
    graph_inputs: set[str] = field(default_factory=set)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)  # line buffer (value, tile) -> reader cores
    sent: dict[tuple[str, int], int] = field(default_factory=dict)  # line buffer (value, home tile) -> tiles sent to
    tokens: dict[tuple[str, Core, Core], int] = field(default_factory=dict)  # (line buffer, writer, reader) -> words

    def store_count(self, value: str, tile: int) -> int:
        """The reader count ``value``'s words are stored with on ``tile``: for a line buffer, its reader cores there
        (each frees every row once) plus, on a producer's tile, one per other tile the words are sent to (a send
        consumes like a load); else `SHARED_READERS`."""
        return self.counts.get((value, tile), SHARED_READERS) + self.sent.get((value, tile), 0)

    def writers(self, st: Storage, value: str, tile: int) -> list[Core]:
        """The cores that write line buffer ``value`` on ``tile``: its producer cores there and the core that
        receives it there from other tiles."""
        ported = value in self.graph_inputs and any(f.value == value and f.tile == tile for f in self.port)
        cores = [] if ported else [c for c, _, _ in self.producers[value] if c[0] == tile]
        if ported or any(s.value == value and s.tile == tile for s in self.streams):
            cores.append(self.receiver(st, value, tile))
        return list(dict.fromkeys(cores))

    def receive_count(self, value: str, tile: int) -> int:
        """The reader count ``value``'s words are received with on ``tile``: for a line buffer, its reader cores
        there; else `SHARED_READERS`."""
        return self.counts.get((value, tile), SHARED_READERS)

    def receiver(self, st: Storage, value: str, tile: int) -> Core:
        """The core on ``tile`` that receives ``value``: its first reader there, else the first reader there of
        the concat output it is part of, else the output core (never a reader of a sibling view, which may be
        upstream of ``value``'s producer)."""
        holders = sorted(self.holders.get(value, ()), key=lambda h: self.order.get(h, 0))  # readers of holders read it too
        for c in self.readers[value] + [c for h in holders for c in self.readers[h]] + self.readers[st.root(value)]:
            if c[0] == tile:
                return c
        for o in [value] + holders:  # a graph output (a concat of it, too) is received by the output core
            if o in self.out_core and self.out_core[o][0] == tile:
                return self.out_core[o]
        raise ModelError(f"no core on tile {tile} to receive '{value}'")


def cores_of(mapping: Mapping, op: Op) -> list[Core]:
    """Cores running ``op`` (none for a concat)."""
    if op.is_crossbar:
        return mapping.layers[op.name].cores()
    return [mapping.vector[op.name]] if op.name in mapping.vector else []


class _Channels:
    """Channel numbers per (source tile, destination tile), handed out in order."""

    def __init__(self) -> None:
        self.next: dict[tuple[int, int], int] = defaultdict(int)

    def take(self, src: int, dst: int) -> int:
        ch = self.next[(src, dst)]
        self.next[(src, dst)] += 1
        return ch


def plan_communication(g: Graph, mapping: Mapping, st: Storage, hw: HardwareConfig, biased: set[str],
                       mem: TileMemory) -> CommPlan:
    """The plan of a mapped graph; fills the buffer bases of ``st`` and allocates from ``mem``. ``biased``: the
    crossbar layers with a bias. When whole tensors overflow a tile, the tensors that can be line-buffered
    (`line_buffers`) are, and the plan is made again; a tile that still overflows is a ModelError."""
    from .inport import portable

    plan = _plan(g, mapping, st, hw, biased, mem)
    ported = portable(g, st, hw)
    for port, tight in ((set(), False), (ported, False), (ported, True)):  # line buffers; graph inputs through the
        if mem.first_overflow is None:                                  # port too (`inport`); bands of one window
            break
        for buf in st.buffers.values():
            buf.band = buf.group = 0
            buf.slots.clear()
        counts, sent = line_buffers(g, mapping, st, plan, port, tight)
        if counts or port:
            for buf in st.buffers.values():
                buf.bases.clear()
            fresh = TileMemory(hw)
            plan = _plan(g, mapping, st, hw, biased, fresh, bool(port))
            plan.counts, plan.sent = counts, sent
            mem.top, mem.held, mem.details, mem.first_overflow = fresh.top, fresh.held, fresh.details, fresh.first_overflow
    mem.placed = tile_ops(mapping)
    mem.check()
    return plan


def _plan(g: Graph, mapping: Mapping, st: Storage, hw: HardwareConfig, biased: set[str],
          mem: TileMemory, port: bool = False) -> CommPlan:
    plan, channels = CommPlan(), _Channels()
    _producers_and_readers(g, mapping, hw, plan)
    _buffers(g, st, plan, mem)
    _streams(g, plan, channels)
    for op in g.crossbar_ops():
        _partials_and_bias(mapping, op, op.name in biased, plan, channels, mem)
    _affine_consts(g, mapping, st, plan, mem)
    for op in g.ops:
        if op.kind == "recurrent":
            from .recurrent import plan_recurrent
            plan.recurrent[op.name] = plan_recurrent(op, mapping.layers[op.name], channels.take, mem.alloc)
    if port:
        from .inport import plan_port, plan_port_outputs
        plan_port(g, st, hw, plan, channels.take)
        plan_port_outputs(g, st, hw, plan, channels.take)
    else:
        _inputs(g, st, plan, channels)
    _tokens(st, plan, mem)
    return plan


def _tokens(st: Storage, plan: CommPlan, mem: TileMemory) -> None:
    """Row tokens of line buffers (docs/design-notes.md): for every core that writes a line buffer on a tile
    (`CommPlan.writers`) and every other core reading it there, one word per slot of the band. The writer stores
    the token (count 1) after it wrote the row, the reader loads it before the row enters its windows: a slot still
    holding a row that a slower reader has not freed is valid, and without the token a faster reader would read
    it as the new row."""
    for root, buf in st.buffers.items():
        if not buf.band:
            continue
        for t in sorted(buf.bases):
            for w in plan.writers(st, root, t):
                for r in plan.readers[root]:
                    if r[0] == t and r != w:
                        plan.tokens[(root, w, r)] = mem.alloc(t, buf.band_on(t), f"row tokens of '{root}'")


def line_buffers(g: Graph, mapping: Mapping, st: Storage, plan: CommPlan, port: set[str] | None = None,
                 tight: bool = False) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """Make a line buffer (`Buffer.band` real rows, docs/design-notes.md) of every tensor that can have one, and
    return its reader cores on each tile holding it and the tiles each producer tile sends it to
    (`CommPlan.store_count`). A tensor can when it is produced by a row op (`rowops.row_windows`: a conv, a max
    pool, an element-wise op) and read only by row ops, on any tiles, and is not a graph input or output nor part
    of a concat; a conv whose column blocks are owned on several tiles stores each tile's channels in that tile's
    copy and sends them on. Each tile's copy (`Buffer.slots`) holds the rows the tallest window of the readers on
    that tile spans plus a stride, rounded up to a power of two (so that the period of a conv's rows, the bands
    of its input over its stride and of its output, is at most the larger band), one row on a producer's tile
    with no reader; ``tight``: only the rows its tallest window spans (`rowops.band_height`: the producer then
    writes a reader's next rows only after the reader's row, less overlap for less memory). A tensor read only
    pointwise (`rowops.Window.pointwise`) is a ring of pixel groups instead (`rowops.pixel_group`: two groups,
    one when tight or on a producer's tile with no reader). Then `lag.settle_bands` grows the copies that readers
    joining later need (a residual add). The graph inputs and outputs in ``port`` go through the host port (`inport`): an input like a produced
    tensor with no producer to send it (the port sends it to every tile itself), an output sent to the port as it
    is produced (one more reader count on its producers' tiles)."""
    from .lag import settle_bands

    port = port or set()
    ends = {v.name for v in g.inputs} | set(g.outputs)
    shared = {view.root for name, view in st.views.items() if name != view.root}
    windows = {op.name: row_windows(g, mapping, op) for op in g.ops}
    local: dict[str, tuple[dict[int, int], set[int], int]] = {}
    for v, info in g.values.items():
        prod = g.producer(v)
        readers = g.consumers(v)
        if ((v in ends or prod is None) and v not in port or prod is not None and windows[prod.name] is None
                or v in shared or st.root(v) != v or len(info.shape) != 3 or not (readers or v in port)):
            continue
        read = [(op, w) for op in readers for k, w in (windows[op.name] or {}).items() if op.inputs[k] == v]
        if len(read) != len(readers):  # a reader that is no row op, or reads v as an operand it does not sweep
            continue
        buf = st.buffer(v)
        wins = [w for _, w in read]
        group = pixel_group(buf.w) if all(w.pointwise for w in wins) and not any(buf.pads) else 0
        group = 0 if v in port else group  # read pixel by pixel only: a ring of pixel groups instead of rows

        def slots(wins: list[Window]) -> int:
            """The slots a copy holds for the readers ``wins`` on its tile (none: a row being sent, then the next)."""
            if not wins or group:
                return 1 if not wins or tight else 2
            return min(buf.h, band_height(max(w.height for w in wins)) if tight else
                       1 << (max(w.span for w in wins) - 1).bit_length())

        rows = slots(wins)
        homes = _homes(plan, v, port if prod is None else set())
        tiles = {t: sum(c[0] == t for c in plan.readers[v]) for t in plan.need[v] | homes}
        if not group and rows >= buf.h or max(tiles.values()) + len(tiles) > 255:
            continue
        buf.band, buf.group = rows, group
        buf.slots = {t: slots([w for op, w in read if any(c[0] == t for c in cores_of(mapping, op))])
                     for t in tiles}  # each copy holds what the readers on its tile need
        local[v] = tiles, homes, int(v in port and prod is not None)  # a graph output: its producers send it to the port
    settle_bands(g, mapping, st, plan, windows)
    counts: dict[tuple[str, int], int] = {}
    sent: dict[tuple[str, int], int] = {}
    for v, (tiles, homes, out) in local.items():
        if st.buffer(v).band:
            counts.update({(v, t): n for t, n in tiles.items()})
            sent.update({(v, t): len(plan.need[v] - {t}) + out for t in homes})
    return counts, sent


def _homes(plan: CommPlan, value: str, port: set[str]) -> set[int]:
    """The tiles of ``value``'s producer cores (none for a graph input through the port, in ``port``)."""
    return set() if value in port else {c[0] for c, _, _ in plan.producers[value]}


def _producers_and_readers(g: Graph, mapping: Mapping, hw: HardwareConfig, plan: CommPlan) -> None:
    for op in g.ops:
        kind = kind_of(op)
        if kind.device == "none":
            raise ModelError(kind.device_error(g, op))
        out = op.outputs[0]
        if op.kind == "recurrent":  # each column block's owner writes its units (`codegen.recurrent`)
            from ..quant.recurrent import unit_blocks
            lm, shape = mapping.layers[op.name], g.values[out].shape
            plan.producers[out] = [(lm.owner(c), u0, u0 + n) for c, (u0, n) in enumerate(unit_blocks(op))] \
                if shape[1:] == (1, 1) else [(lm.owner(0), 0, hwc(shape)[2])]  # strided: one producer
        elif op.is_crossbar:
            lm = mapping.layers[op.name]
            plan.producers[out] = [(lm.owner(c, r), *lm.group(c, r)[0].cols) for r in range(lm.replicas)
                                   for c in range(lm.col_blocks)]
            for r in range(lm.replicas):
                for c in range(lm.col_blocks):
                    plan.bands[(out, lm.owner(c, r))] = lm.group(c, r)[0].out_rows
        elif kind.device == "vector":
            c, step = hwc(g.values[out].shape)[2], vector_chunk(g, op, hw)
            plan.producers[out] = [(mapping.vector[op.name], lo, min(c, lo + step)) for lo in range(0, c, step)]
        for i in op.inputs:
            plan.readers[i].extend(c for c in cores_of(mapping, op) if c not in plan.readers[i])
    plan.graph_inputs = {v.name for v in g.inputs}
    for v in g.inputs:
        if not plan.readers[v.name]:
            raise ModelError(f"graph input '{v.name}' is not read by any device op")
        plan.producers[v.name] = [(plan.readers[v.name][0], 0, -1)]
    plan.out_core = {o: _first_producer(g, plan, o) for o in g.outputs}


def _first_producer(g: Graph, plan: CommPlan, value: str) -> Core:
    """The core producing graph output ``value``; for an output a concat forms (a view, no core of its own), the
    core producing its first part: the other parts are sent to that core's tile, which holds the output."""
    op = g.producer(value)
    if not plan.producers.get(value) and op is not None and kind_of(op).device == "view":
        return _first_producer(g, plan, op.inputs[0])
    if not plan.producers.get(value):
        what = f"a {op.kind} ('{op.name}')" if op is not None else "no device op"
        raise ModelError(f"graph output '{g.external_name(value)}' is formed by {what} with no core of its own")
    return plan.producers[value][0][0]


def _concat_holders(g: Graph) -> dict[str, set[str]]:
    """For each value, the concat outputs whose buffer holds it, directly or through a chain of concats (a
    DenseNet block: cat3 holds the stem and c0..c3; a reader of cat3 needs every one of them on its tile)."""
    holders: dict[str, set[str]] = defaultdict(set)
    for op in g.ops:  # topological order: an input's holders are known before the concat that reads it
        if kind_of(op).device == "view":
            for i in op.inputs:
                holders[i].add(op.outputs[0])
    changed = True
    while changed:  # close transitively: what holds a holder holds its parts too
        changed = False
        for v in list(holders):
            more = set().union(*(holders[h] for h in holders[v] if h in holders)) - holders[v]
            if more:
                holders[v] |= more
                changed = True
    return holders


def _buffers(g: Graph, st: Storage, plan: CommPlan, mem: TileMemory) -> None:
    """Tiles needing each value (its readers, the readers of every concat holding it, its output tile); a buffer
    copy per tile."""
    tiles: dict[str, set[int]] = defaultdict(set)  # tiles holding a copy of a root's buffer
    holders = plan.holders = _concat_holders(g)
    plan.order = {o: k for k, op in enumerate(g.ops) for o in op.outputs}
    for v in g.values:
        root = st.root(v)
        plan.need[v] = {c[0] for w in {v, root} | holders[v] for c in plan.readers[w]}
        plan.need[v] |= {plan.out_core[w][0] for w in {v} | holders[v] if w in plan.out_core}
        tiles[root] |= {c[0] for c, _, _ in plan.producers.get(v, [])} | plan.need[v]
    for root, ts in tiles.items():
        for t in sorted(ts):
            st.buffers[root].bases[t] = mem.alloc(t, st.buffers[root].words_on(t), f"tensor '{root}'",
                                                  buffer_shape(st.buffers[root], t))


def _streams(g: Graph, plan: CommPlan, channels: _Channels) -> None:
    inputs = {i.name for i in g.inputs}
    for v, prods in plan.producers.items():
        if v in inputs:
            continue
        for src, c0, c1 in prods:
            for t in sorted(plan.need[v] - {src[0]}):
                s = Stream(v, src, c0, c1, t, channels.take(src[0], t), plan.bands.get((v, src)))
                plan.sends[(v, src, c0)].append(s)
                plan.streams.append(s)


def _partials_and_bias(mapping: Mapping, op: Op, biased: bool, plan: CommPlan, channels: _Channels,
                       mem: TileMemory) -> None:
    """Scratch for every block away from its owner core (and its copy on the owner's tile when that is another
    tile); then, per replica and core, a bias vector per column block the core owns."""
    lm = mapping.layers[op.name]
    owners = lm.owners()
    if lm.chain:
        _chain_links(lm, op, plan, channels, mem)
    scratch = {b: mem.alloc(b.tile, b.cols[1] - b.cols[0], f"partial sums of '{op.name}'") for b in lm.blocks
               if b.where != owners[b.c, b.rep] and not lm.chain}
    for b, addr in scratch.items():
        owner = owners[b.c, b.rep]
        remote = None
        if owner[0] != b.tile:  # the partial sum travels to the owner's tile
            ch = channels.take(b.tile, owner[0])
            remote = (mem.alloc(owner[0], b.cols[1] - b.cols[0], f"partial sums of '{op.name}'"), ch)
        plan.partials[b] = Partial(addr, remote)
    if not biased:
        return
    for rep in range(lm.replicas):
        index = BlockIndex([b for b in lm.blocks if b.rep == rep])
        for core in index.by_core:
            for c in index.owned[core]:
                lo, hi = index.by_col[c][0].cols
                plan.bias[(op.name, core, c)] = mem.alloc(core[0], hi - lo, f"bias of '{op.name}'")


def chain_cores(group: list[Block]) -> list[Core]:
    """The cores of a column block's row blocks in row order (each holds a run of consecutive rows)."""
    return list(dict.fromkeys(b.where for b in group))


def _chain_links(lm: LayerMap, op: Op, plan: CommPlan, channels: _Channels, mem: TileMemory) -> None:
    """A chained layer (`LayerMap.chain`): every column block held by several cores passes one running sum on,
    core to core in row order, and the last core passes the whole sum back to the owner (the first), so each
    core holds one sum of the block's width (and, when the next core is on another tile, that tile one more)
    instead of the owner holding one per row block."""
    for rep in range(lm.replicas):
        for c, group in BlockIndex([b for b in lm.blocks if b.rep == rep]).by_col.items():
            cores = chain_cores(group)
            n = group[0].cols[1] - group[0].cols[0]
            for k, src in enumerate(cores if len(cores) > 1 else []):
                dst = cores[(k + 1) % len(cores)]
                addr = mem.alloc(src[0], n, f"running sums of '{op.name}'")
                remote = None
                if dst[0] != src[0]:
                    ch = channels.take(src[0], dst[0])
                    remote = (mem.alloc(dst[0], n, f"running sums of '{op.name}'"), ch)
                plan.links[(op.name, rep, c, src)] = Partial(addr, remote)


def _affine_consts(g: Graph, mapping: Mapping, st: Storage, plan: CommPlan, mem: TileMemory) -> None:
    """The constants of every vector op that keeps some in tile memory (its kind's ``const_words``: e.g. an
    affine op's scale and shift, rule AFFINE), on its core's tile, like a crossbar layer's bias."""
    for op in g.ops:
        words = kind_of(op).const_words(g, op, st.fmt)
        if words:
            tile = mapping.layers[op.name].blocks[0].tile if op.is_crossbar else mapping.vector[op.name][0]
            plan.consts[op.name] = mem.alloc(tile, words, f"constants of '{op.name}'")


def owned_columns(blocks: list[Block], core: Core) -> list[int]:
    """The column blocks that ``core`` accumulates among ``blocks`` (one replica): those whose row block 0 it
    holds, in the order of its blocks."""
    return BlockIndex(blocks).owned.get(core, [])


class BlockIndex:
    """The blocks of one replica of a layer by core and by column block (each in block order), and the column
    blocks each core owns (`owned_columns`), built in one pass: a per-core scan of every block is quadratic
    (VGG-16's fc1 has 6,272 blocks on 1,568 cores)."""

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.by_core: dict[Core, list[Block]] = {}
        self.by_col: dict[int, list[Block]] = {}
        for b in blocks:
            self.by_core.setdefault(b.where, []).append(b)
            self.by_col.setdefault(b.c, []).append(b)
        self.owned: dict[Core, list[int]] = {}
        for core, mine in self.by_core.items():
            cols = dict.fromkeys(b.c for b in mine)
            self.owned[core] = [c for c in cols if self.by_col[c][0].where == core]


def _inputs(g: Graph, st: Storage, plan: CommPlan, channels: _Channels) -> None:
    """Graph inputs: the host writes the whole padded buffer on the home tile; the home core sends all of it
    (border included) to every other tile that needs it, in messages of at most `MAX_MSG` words."""
    for v in g.inputs:
        buf, home = st.buffer(v.name), plan.producers[v.name][0][0]
        for t in sorted(plan.need[v.name] - {home[0]}):
            rcv = plan.receiver(st, v.name, t)
            for lo in range(0, buf.words, MAX_MSG):
                n = min(MAX_MSG, buf.words - lo)
                plan.inputs.append(InputTransfer(v.name, home, rcv, lo, n, channels.take(home[0], t)))
