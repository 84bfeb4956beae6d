"""Fast mode, gangs: the static loops of several cores of one tile that hand values through **mailboxes** run as
one batched chunk.

A mailbox is a span of tile memory that one core's loop stores at a fixed address with reader count 1 every
iteration and another core's loop loads at the same fixed address every iteration (a conv's partial sums: the
cores holding a layer's lower crossbar row blocks store them for the core that adds them up). Alone, neither
loop can batch: the store finds its previous value still valid, the load finds the next one not yet stored, so
the interpreter alternates the two cores iteration by iteration. A **gang** is a set of such loops connected by
mailboxes (`find_gangs`, at load time): when every member core stands at its loop's head with the same
iterations left (a member arriving first is parked until the others arrive: the order in which cores are stepped
changes neither results nor counters), `run_gang` runs one chunk of every member (`runtime.loops`), producers
first: a mailbox store leaves the chunk's values of every iteration, the load takes them, and no other memory
effect of a mailbox happens but its final one (invalid, with the last value, changed at the last load's end).

Timing: member clocks are coupled through their mailboxes: the load of iteration k waits for the store of
iteration k (the word becomes valid at its end), the store of iteration k for the load of iteration k - 1 (the
word becomes invalid at its end). One pass over the iterations in Python integers (`_coupled`) gives every
mailbox op's ready times; each member's chunk then runs with them as given waits (the max-plus recurrence of
`runtime.loops`), so clocks, word times, counts and busy spans are the interpreter's. Every other memory op of a
member is checked and executed as in a lone chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from isa import NO_BASE

from .loops import (FIRST_WINDOW, MAX_LANES, MAX_SKIP, NEVER, LoopPlan, NestPlan, _Chunk, _columns, _execute, _gaps,
                    _leave, _plan_chunk, _waits)
from .state import I64, CoreState

Plan = LoopPlan | NestPlan


@dataclass(frozen=True)
class Mailbox:
    """A mailbox of a gang: member ``producer``'s memory op ``store`` feeds member ``consumer``'s op ``load``."""

    producer: int
    store: int
    consumer: int
    load: int


@dataclass
class GangPlan:
    """A gang found at load time: member cores (indices into the machine's cores) with the head pc of their
    plan, the mailboxes, and an order of the members in which every producer comes before its consumers."""

    cores: list[int]
    heads: list[int]
    boxes: list[Mailbox]
    order: list[int]


def _body(plan: Plan) -> LoopPlan:
    return plan.inner if isinstance(plan, NestPlan) else plan


class _FixedOp(NamedTuple):
    """A fixed-address load or store of a loop body: core index, plan head, op index, whether a store."""

    core: int
    head: int
    op: int
    store: bool


def find_gangs(tiles: Sequence[int], loops: Sequence[dict[int, Plan]]) -> list[GangPlan]:
    """Every gang among the cores' static loops (core i on tile ``tiles[i]`` with plans ``loops[i]``): nests
    with nests, lone loops with lone loops (a nest's inner loop is a lone loop too)."""
    gangs: list[GangPlan] = []
    for level in (NestPlan, LoopPlan):
        nodes = [(i, head) for i, plans in enumerate(loops) for head, p in plans.items() if type(p) is level]
        fixed: dict[tuple[int, int, int], list[_FixedOp]] = {}  # (tile, off, n) -> the ops on that span
        spans: dict[int, list[tuple[int, int]]] = {}  # tile -> fixed spans (overlap check)
        for i, head in nodes:
            for j, m in enumerate(_body(loops[i][head]).mem):
                if m.ref.base == NO_BASE and m.kind in ("load", "store"):
                    fixed.setdefault((tiles[i], m.ref.off, m.n), []).append(_FixedOp(i, head, j, m.kind == "store"))
                    spans.setdefault(tiles[i], []).append((m.ref.off, m.n))
        edges: list[tuple[tuple[int, int], int, tuple[int, int], int]] = []
        for (tile, off, n), found in fixed.items():
            stores = [f for f in found if f.store]
            loads = [f for f in found if not f.store]
            if len(stores) != 1 or len(loads) != 1 or stores[0].core == loads[0].core:
                continue
            prod, cons = stores[0], loads[0]
            if _body(loops[prod.core][prod.head]).mem[prod.op].count != 1:
                continue
            if sum(1 for a, k in spans[tile] if a < off + n and off < a + k) != 2:
                continue  # another fixed span overlaps the mailbox
            edges.append(((prod.core, prod.head), prod.op, (cons.core, cons.head), cons.op))
        gangs += _components(edges, loops)
    return gangs


def _components(edges: list[tuple[tuple[int, int], int, tuple[int, int], int]],
                loops: Sequence[dict[int, Plan]]) -> list[GangPlan]:
    """The gangs the mailbox ``edges`` (producer node, store op, consumer node, load op) connect, keeping those
    whose members are distinct cores, store nothing else at a fixed address with readers and have no cycle."""
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def root(x: tuple[int, int]) -> tuple[int, int]:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for p, _, c, _ in edges:
        parent[root(p)] = root(c)
    groups: dict[tuple[int, int], list[tuple[tuple[int, int], int, tuple[int, int], int]]] = {}
    for e in edges:
        groups.setdefault(root(e[0]), []).append(e)
    out = []
    for es in groups.values():
        nodes = sorted({e[0] for e in es} | {e[2] for e in es})
        if len({i for i, _ in nodes}) != len(nodes):
            continue
        index = {node: k for k, node in enumerate(nodes)}
        boxes = [Mailbox(index[p], pj, index[c], cj) for p, pj, c, cj in es]
        paired = {(b.producer, b.store) for b in boxes}
        if any(m.ref.base == NO_BASE and m.kind == "store" and m.count > 0 and (k, j) not in paired
               for k, (i, head) in enumerate(nodes) for j, m in enumerate(_body(loops[i][head]).mem)):
            continue  # a member stores another fixed span with readers: it could not batch anyway
        order = _topological(len(nodes), [(b.producer, b.consumer) for b in boxes])
        if order is not None:
            out.append(GangPlan([i for i, _ in nodes], [h for _, h in nodes], boxes, order))
    return out


def _topological(n: int, arcs: list[tuple[int, int]]) -> list[int] | None:
    """Members 0..n-1 ordered so every arc's source precedes its target; None on a cycle."""
    into = [0] * n
    for _, b in arcs:
        into[b] += 1
    ready = [k for k in range(n) if not into[k]]
    order = []
    while ready:
        k = ready.pop()
        order.append(k)
        for a, b in arcs:
            if a == k:
                into[b] -= 1
                if not into[b]:
                    ready.append(b)
    return order if len(order) == n else None


@dataclass
class Gang:
    """A gang bound to one run's cores, with its retry state (`runtime.loops.run_batched`'s policy)."""

    plan: GangPlan
    members: list[tuple[CoreState, Plan]]
    skip: int = 0
    grow: int = 1
    window: int = FIRST_WINDOW
    off: bool = False  # parking deadlocked once: the members are interpreted for the rest of the run
    blocker: int = 0  # the member whose first iteration would have blocked at the last try
    boxes_of: list[frozenset[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes_of = [frozenset({b.store for b in self.plan.boxes if b.producer == k}
                                   | {b.load for b in self.plan.boxes if b.consumer == k})
                         for k in range(len(self.members))]


def bind_gangs(plans: Sequence[GangPlan], cores: Sequence[CoreState]) -> None:
    """Attach a fresh `Gang` per plan to its member cores (``core.gangs``: head pc -> gang)."""
    for gp in plans:
        members = [(cores[i], cores[i].loops[h]) for i, h in zip(gp.cores, gp.heads)]
        gang = Gang(gp, members)
        for (c, _), h in zip(members, gp.heads):
            c.gangs[h] = gang


def run_gang(gang: Gang, c: CoreState, budget: int) -> int:
    """Run a chunk of every member if all stand at their heads in step (``c`` is the one asking); returns the
    instructions executed (0: nothing done). Otherwise ``c`` is either behind (a value waits in a mailbox it
    loads: it goes on alone for an iteration), or ahead or early (a value it stored still waits, or another
    member has yet to come round to its head): then ``c.parked`` is set and the scheduler steps the others."""
    if gang.off:
        return 0
    if c.devices is not None or int(c.regs.shape[1]) > MAX_LANES:
        gang.off = True  # as `run_batched`: device noise is drawn per firing; wide batches gain nothing
        return 0
    if any(x.halted for x, _ in gang.members):
        gang.off = True
        return 0
    me = next(k for k, (x, _) in enumerate(gang.members) if x is c)
    boxes = gang.plan.boxes
    if any(b.consumer == me and _full(gang, b) for b in boxes):
        return 0
    if any(b.producer == me and _full(gang, b) for b in boxes) or any(
            x.pc != plan.head for x, plan in gang.members):
        c.parked = True
        return 0
    if gang.skip:
        gang.skip -= 1
        return 0
    count, full, blocked = _try_gang(gang, budget)
    if blocked:  # words or messages a member needs are not there yet: wait for the tile to change
        c.wait, c.wait_epoch = ("gang", c.tile, c.pc, 0), c.epoch[c.tile]
        return 0
    if not count:
        return _failed(gang)
    for x, _ in gang.members:
        x.parked, x.wait = False, None
    gang.skip, gang.grow = 0, 1
    gang.window = 2 * gang.window if full else FIRST_WINDOW
    return count


def _full(gang: Gang, b: Mailbox) -> bool:
    """Whether a stored value waits in mailbox ``b``."""
    x, plan = gang.members[b.producer]
    m = _body(plan).mem[b.store]
    return bool(x.mem.valid[m.ref.off:m.ref.off + m.n].any())


def _failed(gang: Gang) -> int:
    gang.skip, gang.grow, gang.window = gang.grow, min(2 * gang.grow, MAX_SKIP), FIRST_WINDOW
    return 0


def _try_gang(gang: Gang, budget: int) -> tuple[int, bool, bool]:
    """`run_gang` once every member is at its head: (instructions executed, whether no iteration was held back,
    whether nothing ran because a member's first iteration would block)."""
    bounds = [_columns(x, plan, gang.window) for x, plan in gang.members]
    cols, hard = min(b[0] for b in bounds), min(b[1] for b in bounds)
    planned: dict[int, _Chunk] = {}
    first = gang.blocker  # the member that blocked last time is asked first: usually it still does
    for i in [first] + [i for i in range(len(gang.members)) if i != first]:
        (x, plan), skip = gang.members[i], gang.boxes_of[i]
        ch = _plan_chunk(x, plan, cols, hard, skip)
        if ch is None or (planned and ch.flat.groups != next(iter(planned.values())).flat.groups):
            return 0, False, False
        if ch.ok == 0:
            gang.blocker = i
            return 0, False, True
        planned[i] = ch
    chunks = [planned[i] for i in range(len(gang.members))]
    n = chunks[0].flat.n
    k = min(ch.ok for ch in chunks)
    if k < n and not all(ch.cut(k) for ch in chunks):
        return 0, False, True  # too few iterations can run yet
    boxes_at = []
    for b in gang.plan.boxes:
        w = chunks[b.producer].words[b.store][0]
        if chunks[b.producer].c.mem.valid[w].any():
            return 0, False, False  # a value still waits in the mailbox: the members are not in step
        boxes_at.append((int(w[0]), int(w[-1]) + 1))
    for ch, mine in zip(chunks, gang.boxes_of):
        for j, w in enumerate(ch.words):
            lo, hi = w.hull()
            if j not in mine and any(a < hi and lo < z for a, z in boxes_at):
                return 0, False, False  # another op touches a mailbox: its words change only at the chunk's end
    total = 0
    for ch in chunks:
        count = ch.admissible(budget - total)
        if not count:
            return 0, False, False
        total += count
    trace = chunks[0].c.trace
    if trace is not None:  # recording a trace (`runtime.replay`): the gang's chunks as one step
        trace.gang(gang.plan, gang.boxes_of, [(ch.c, ch.lp, ch.flat, ch.words, ch.fwd) for ch in chunks])
    given, last = _coupled(gang, chunks)
    boxes: list[dict[int, np.ndarray]] = [{} for _ in chunks]
    for i in gang.plan.order:
        for b in gang.plan.boxes:
            if b.consumer == i:
                boxes[i][b.load] = boxes[b.producer][b.store]
        ch = chunks[i]
        _execute(ch.c, ch.lp, ch.flat, ch.words, ch.fwd, given[i], boxes[i], ch.live)
    for b in gang.plan.boxes:  # the mailbox after the chunk: its last value, read, invalid since that read
        _leave(chunks[b.consumer].c.mem, chunks[b.producer].words[b.store][0], boxes[b.producer][b.store][-1],
               last[(b.consumer, b.load)])
    return total, k == n, False


def _coupled(gang: Gang, chunks: list[_Chunk]
             ) -> tuple[list[dict[int, np.ndarray]], dict[tuple[int, int], int]]:
    """Ready times (absolute, per iteration) of every member's mailbox ops (module docstring), and the
    completion time of each mailbox load's last iteration (member, op) -> time."""
    n = chunks[0].flat.n
    ends: dict[tuple[int, int], list[int]] = {}
    feeds: dict[tuple[int, int], tuple[int, int, bool]] = {}  # (member, op) -> (member, op) it waits for
    for b in gang.plan.boxes:
        feeds[(b.consumer, b.load)] = (b.producer, b.store, True)
        feeds[(b.producer, b.store)] = (b.consumer, b.load, False)
    start: list[int] = []
    steps: list[list[int]] = []
    tails: list[list[int]] = []
    ops: list[list[tuple[int, list[int], int, int, int]]] = []  # per member: (op, static max before, o, lat, t0)
    for k, ch in enumerate(chunks):
        lp, mine = ch.lp, gang.boxes_of[k]
        wait = _waits(ch.c, lp, ch.flat, ch.words, ch.fwd, {j: np.full(n, NEVER, dtype=I64) for j in mine})
        static = [w for j, w in enumerate(wait) if j not in mine]
        tails.append((np.max(static, axis=0) if static else np.full(n, NEVER, dtype=I64)).tolist())
        gap, pre = _gaps(lp, ch.flat)
        steps.append((int(lp.lat.sum()) + gap).tolist())
        start.append(ch.c.clock + pre)
        row = []
        for j in sorted(mine, key=lambda j: lp.mem[j].pos):
            pos = lp.mem[j].pos
            before = [w for i, w in enumerate(wait) if i not in mine and lp.mem[i].pos < pos]
            pre_max = (np.max(before, axis=0) if before else np.full(n, NEVER, dtype=I64)).tolist()
            t0 = int(ch.c.mem.time[ch.words[j][0]].max())
            row.append((j, pre_max, int(lp.offsets[pos]), int(lp.lat[pos]), t0))
            ends[(k, j)] = [0] * n
        ops.append(row)
    clock = list(start)
    order = gang.plan.order
    for it in range(n):
        for k in order:
            run = clock[k]
            for j, pre_max, off, lat, t0 in ops[k]:
                v = pre_max[it]
                if v > run:
                    run = v
                src, sj, is_load = feeds[(k, j)]
                if is_load:
                    ready = ends[(src, sj)][it]
                else:
                    ready = ends[(src, sj)][it - 1] if it else t0
                if ready - off > run:
                    run = ready - off
                ends[(k, j)][it] = run + off + lat
            v = tails[k][it]
            if v > run:
                run = v
            clock[k] = run + steps[k][it]
    given: list[dict[int, np.ndarray]] = [{} for _ in chunks]
    for k, row in enumerate(ops):
        for j, _, _, _, t0 in row:
            src, sj, is_load = feeds[(k, j)]
            other = ends[(src, sj)]
            given[k][j] = np.array(other if is_load else [t0] + other[:-1], dtype=I64)
    return given, {(b.consumer, b.load): ends[(b.consumer, b.load)][-1] for b in gang.plan.boxes}
