"""Deadlock-free line buffers: readers of one tensor that join later (a residual add reads x when the branch has
produced the same row, about two rows after the branch's first conv read it) need its band to hold the rows in
between, else the producer of x waits for the add to free a row the add reaches only after the branch, which waits
for x. `settle_bands` runs the program's row-level schedule (`RowSchedule`) and grows the band of the tensor
whose stores block (to the next `rowops.band_height`) until the schedule completes (a band as tall as the image
becomes a whole tensor again).

The schedule is the program's at row granularity: each op (all its cores as one unit) computes its output rows in
order; a row needs the input rows its windows and frees reach on every tile of the op (received rows: by the
receiving core, in its row loop, before the row; whole tensors: in the receiving core's head, one stream after
the other), and, for a line-buffered output, the slot of the row freed by every reader on the producer's tile
(sends consume at once); it frees the input rows no later row reads. Ops that are not row ops
(`rowops.row_windows`) compute once, when their inputs are complete. Every wait in the program is one of these
(stores on invalid words, loads and receives on valid ones, both stable until the waiting core acts), and the
program's cores are finer-grained than the schedule's rows, so a schedule that completes means a program that
does not deadlock."""

from __future__ import annotations

from collections import defaultdict

from ..ir import Graph, Op
from ..mapping import Mapping
from ..ops import kind_of
from .plan import CommPlan, cores_of
from .rowops import Window, band_height, global_average, sweep_rows, sweep_units
from .storage import Storage, hwc


class RowSchedule:
    """The row-level schedule of a planned graph (see module docstring); `run` says which tensors block."""

    def __init__(self, g: Graph, mapping: Mapping, st: Storage, plan: CommPlan,
                 windows: dict[str, dict[int, Window] | None]) -> None:
        self.g, self.st, self.plan, self.windows = g, st, plan, windows
        self.ops = [op for op in g.ops if kind_of(op).device != "view"]
        self.producer = {o: op for op in g.ops for o in op.outputs}
        self.units = {op.name: sweep_units(g, st, op) if windows[op.name] else 1 for op in self.ops}
        self.sweep = {op.name: sweep_rows(g, op) * self.units[op.name] if windows[op.name] else 1
                      for op in self.ops}  # units: rows, or pixel groups (`rowops.sweep_group`)
        self.averages = {op.name for op in self.ops if windows[op.name] and global_average(g, op)}
        self.cores = {op.name: cores_of(mapping, op) for op in self.ops}
        self.op_of = {c: op.name for op in self.ops for c in self.cores[op.name]}
        self.rows = {v: st.buffer(v).units if st.buffer(v).band else hwc(info.shape)[0]
                     for v, info in g.values.items()}  # rows, or pixel groups for a line buffer held in groups
        self.home = {v: {c[0] for c, _, _ in prods} for v, prods in plan.producers.items()}
        self.readers_on: dict[tuple[str, int], set[str]] = defaultdict(set)
        for v, cores in plan.readers.items():
            for c in cores:
                self.readers_on[(v, c[0])].add(self.op_of[c])
        self.heads: dict[str, list[str]] = defaultdict(list)  # op -> values its cores receive whole, in order
        self.inline: dict[str, list[tuple[str, int]]] = defaultdict(list)  # op -> (value, tile) it receives by row
        self.receivers: set[tuple[str, int]] = set()  # (line buffer, tile) it is received on
        for s in plan.streams:
            rcv = plan.receiver(st, s.value, s.tile)
            if st.buffer(s.value).band:
                self.receivers.add((s.value, s.tile))
                if (s.value, s.tile) not in self.inline[self.op_of[rcv]]:
                    self.inline[self.op_of[rcv]].append((s.value, s.tile))
            elif any(rcv in plan.readers[o] for o in {s.value} | plan.holders.get(s.value, set())):
                self.heads[self.op_of[rcv]].append(s.value)  # (a graph output received in the tail: no reader)
        for v in (v.name for v in g.inputs if st.buffer(v.name).band):  # through the input port: row by row
            for t in sorted(plan.need[v]):
                self.receivers.add((v, t))
                self.inline[self.op_of[plan.receiver(st, v, t)]].append((v, t))

    def run(self) -> list[str]:
        """Run the schedule; when it stops before every op is done, the line-buffered tensors whose stores or
        receives wait for a slot on the cycle of waits that stops it (empty when it completes)."""
        self.made = {v.name: self.rows[v.name] for v in self.g.inputs}
        self.got: dict[tuple[str, int], int] = defaultdict(int)
        self.freed: dict[tuple[str, str], int] = defaultdict(int)
        self.next = {op.name: 0 for op in self.ops}
        self.late: dict[str, dict[str, int]] = defaultdict(dict)  # op -> line buffer -> rows it frees unread to
        self.wait: dict[str, tuple[set[str], str | None]] = {}  # op -> (the ops it waits for, the slot's tensor)
        self.full: dict[str, set[int]] = defaultdict(set)  # line buffer -> the tiles where a slot was waited for
        progress = True
        while progress:
            progress = False
            for op in self.ops:
                self.moved = False
                while not self._done(op) and self._step(op):
                    progress = True
                progress |= self.moved
        return [] if all(self._done(op) for op in self.ops) else self._cycle()

    def _cycle(self) -> list[str]:
        """The tensors of the slot waits on a cycle of waits among the stopped ops (every stopped op waits for
        another stopped op, so following the waits from one of them closes a cycle)."""
        stuck = {op.name for op in self.ops if not self._done(op)}
        path: list[str] = []
        node = min(stuck, key=[op.name for op in self.ops].index)
        while node not in path:
            path.append(node)
            nxt = sorted(self.wait.get(node, (set(), None))[0] & stuck)
            if not nxt:
                return []
            node = nxt[0]
        cycle = path[path.index(node):]
        return sorted({v for n in cycle for v in [self.wait[n][1]] if v is not None})

    def _block(self, op: str, on: set[str], slot: str | None = None, tiles: tuple[int, ...] = ()) -> bool:
        """Record what ``op`` waits for (``slot``: the line buffer whose slot it waits for on ``tiles``); False."""
        self.wait[op] = (on, slot)
        if slot is not None:
            self.full[slot] = set(tiles)
        return False

    def _source(self, v: str, tile: int) -> set[str]:
        """The ops that bring rows of ``v`` to ``tile``: its receiver there while received rows lag the made
        ones, else its producers (a concat's parts' producers)."""
        prod = self.producer.get(v)
        if prod is None:
            return set()
        if kind_of(prod).device == "view":
            return set().union(*(self._source(i, tile) for i in prod.inputs))
        if (v, tile) in self.receivers and self.got[(v, tile)] < self.made.get(v, 0):
            return {self.op_of[self.plan.receiver(self.st, v, tile)]}
        return {prod.name}

    def _slow(self, v: str, tile: int, row: int) -> set[str]:
        """The readers of ``v`` on ``tile`` that have not freed the row a band before ``row``."""
        band = self.st.buffer(v).band_on(tile)
        return {o for o in self.readers_on.get((v, tile), set()) if row >= band + self.freed[(v, o)]}

    def _done(self, op: Op) -> bool:
        return self.next[op.name] >= self.sweep[op.name] and not self.late[op.name]

    def _free_late(self, op: Op) -> bool:
        """Free the next row that ``op``'s last unit frees unread (below its window, `rowops.Window.rows`) once it
        is there on each of its tiles (receiving it on the way); False when it waits."""
        name, tiles = op.name, {c[0] for c in self.cores[op.name]}
        v, upto = next(iter(self.late[name].items()))
        r = self.freed[(v, name)]
        for t in tiles:
            if (v, t) in self.inline.get(name, []) and self.got[(v, t)] <= r < self.made.get(v, 0):
                if not self._slot(v, t, self.got[(v, t)]):
                    return self._block(name, self._slow(v, t, self.got[(v, t)]), v, (t,))
                self.got[(v, t)] += 1
                self.moved = True
        short = [t for t in tiles if self._avail(v, t) <= r]
        if short:
            return self._block(name, set().union(*(self._source(v, t) for t in short)))
        self.freed[(v, name)] = r + 1
        if r + 1 >= upto:
            del self.late[name][v]
        return True

    def _avail(self, v: str, tile: int) -> int:
        """Rows of ``v`` present on ``tile`` (a concat's: the fewest of its parts')."""
        prod = self.producer.get(v)
        if prod is not None and kind_of(prod).device == "view":
            return min(self._avail(i, tile) for i in prod.inputs)
        made = self.made.get(v, 0)
        if self.st.buffer(v).band and (v, tile) in self.receivers:
            return self.got[(v, tile)]
        if prod is None or self.home[v] == {tile}:
            return made
        rcv = self.plan.receiver(self.st, v, tile) if tile not in self.home[v] else None
        queue = self.heads.get(self.op_of[rcv], []) if rcv is not None else []
        before = queue[:queue.index(v)] if v in queue else []
        if any(self.made.get(u, 0) < self.rows[u] for u in before):
            return 0  # the receiving core takes its streams one after the other
        return made if len(self.plan.producers[v]) == 1 else (made if made == self.rows[v] else 0)

    def _slot(self, v: str, tile: int, row: int) -> bool:
        """Whether row ``row`` of line buffer ``v`` may be written on ``tile``: every reader there freed the row
        a band earlier (on the producer's tile, sends consume at once)."""
        readers = self.readers_on.get((v, tile), set())
        return not readers or row < self.st.buffer(v).band_on(tile) + min(self.freed[(v, o)] for o in readers)

    def _step(self, op: Op) -> bool:
        """Compute the next row of ``op`` if it can (receiving what it may on the way), after the rows the last
        one frees unread."""
        if self.late[op.name]:
            return self._free_late(op)
        name, oy = op.name, self.next[op.name]
        tiles = {c[0] for c in self.cores[name]}
        heads = [u for u in self.heads.get(name, []) if self.made.get(u, 0) < self.rows[u]]
        if oy == 0 and heads:
            return self._block(name, set().union(*(self._source(u, -1) for u in heads)))
        wins = self.windows[name]
        if not wins:  # computes once, from complete inputs
            short = [(i, t) for i in op.inputs for t in tiles if self._avail(i, t) < self.rows[i]]
            if short:
                return self._block(name, set().union(*(self._source(i, t) for i, t in short)))
            self.made.update({o: self.rows[o] for o in op.outputs})
            self.next[name] = 1
            return True
        units = self.units[name]
        oh, row, last = self.sweep[name] // units, oy // units, oy % units == units - 1
        reach = {op.inputs[k]: w.unit_rows(oy, units, oh, self.rows[op.inputs[k]],
                                           bool(self.st.buffer(op.inputs[k]).group)) for k, w in wins.items()}
        for v, t in self.inline.get(name, []):
            while self.got[(v, t)] < reach[v][1] and self.got[(v, t)] < self.made.get(v, 0):
                if not self._slot(v, t, self.got[(v, t)]):
                    return self._block(name, self._slow(v, t, self.got[(v, t)]), v, (t,))
                self.got[(v, t)] += 1
        short = [(v, t) for v, r in reach.items() for t in tiles if self._avail(v, t) < r[1]]
        if short:
            return self._block(name, set().union(*(self._source(v, t) for v, t in short)))
        out = op.outputs[0]
        grouped = bool(self.st.buffer(out).group)
        slot = oy if grouped else row  # the output row (group) the unit writes
        full = [t for t in self.home[out] if not self._slot(out, t, slot)] if self.st.buffer(out).band else []
        if full:
            return self._block(name, set().union(*(self._slow(out, t, slot) for t in full)), out, tuple(full))
        done = oy + 1 if grouped else row + int(last)
        self.made[out] = int(oy == self.sweep[name] - 1) if name in self.averages else done  # an average: at the end
        for v, (_, needs, upto) in reach.items():
            if self.st.buffer(v).band:
                self.freed[(v, name)] = max(self.freed[(v, name)], min(upto, needs))
                if upto > self.freed[(v, name)]:
                    self.late[name][v] = upto  # below its window: freed unread, one row after the other
        self.next[name] = oy + 1
        return True


def settle_bands(g: Graph, mapping: Mapping, st: Storage, plan: CommPlan,
                 windows: dict[str, dict[int, Window] | None]) -> int:
    """Grow line buffers until the row-level schedule completes: of the tensors whose slots block on the cycle of
    waits that stops it, the one with the smallest rows, to the next `rowops.band_height` (as tall as its image: a
    whole tensor again); every band is dropped if no slot is on the cycle (never seen: whole tensors do not block).
    Returns the number of bands grown."""
    grown = 0
    while True:
        schedule = RowSchedule(g, mapping, st, plan, windows)
        blocking = schedule.run()  # anew: a band dropped changes the receives
        if not blocking:
            return grown
        if not any(st.buffer(v).band for v in blocking):
            for buf in st.buffers.values():
                buf.band = buf.group = 0
                buf.slots.clear()
            return grown
        v = min((v for v in blocking if st.buffer(v).band), key=lambda v: st.buffer(v).words // st.buffer(v).band)
        buf = st.buffer(v)
        for t in schedule.full[v]:  # the copies whose slots it waited for
            buf.slots[t] = min(band_height(buf.band_on(t) + 1), buf.units)
        buf.band = max(buf.band, *buf.slots.values())
        if buf.band >= buf.units and all(n >= buf.units for n in buf.slots.values()):
            buf.band, buf.group = 0, 0  # as tall as the image on every tile: a whole tensor again
            buf.slots.clear()
        grown += 1
