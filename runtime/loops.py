"""Fast mode: a static loop body executed over all its remaining iterations at once.

A loop here is a backward ``blt cnt, bound, head`` whose body (head .. the blt) is straight-line code of vector
ALU ops, moves, scalar ops on data registers, mvm, load and store, where:

- every register the body reads before writing it is not written in the body (no loop-carried data), except the
  **induction registers**: written once per iteration by ``iaddi r, r, imm`` and read only as memory bases, by the
  closing blt (``cnt``) or by their own iaddi; the branch bound is not written;
- so control flow and addresses are affine in the iteration index k: the body runs n = ceil((bound - cnt) / step)
  times (lane 0, as branches read it) and every memory operand's address is base + k * step.

At the loop head (`Machine` asks, unless in reference mode) `run_batched` checks the dynamic conditions under
which the one-at-a-time interpreter would run every remaining iteration without blocking and with the same
memory effects: every loaded word is valid now and no load exhausts a reader count before its last read; every
stored word is invalid now, stored once, and not loaded in the batch; everything lies inside the tile memory; the
instruction budget allows it. Then the body runs once over a wide register file whose columns are (iteration,
batch lane) -- the unchanged handlers for ALU ops and mvm (one matmul over every iteration), index-array gathers
and scatters for loads and stores -- and the core's clock, the words' change times, the reader counts, every
instruction's count, first issue and last completion, and the mvm's DAC and cell-level events come out as the
interpreter's: the per-iteration clock follows the max-plus recurrence C[k+1] = L + max(C[k], E[k]) with L the
body's latency and E[k] the latest word time any memory op waits for, offset by its position, so
C[k] = k L + cummax(...). When a condition fails the interpreter runs one iteration and the head is tried again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from isa import NO_BASE, HardwareConfig, Instr, MemRef

from .handlers import HANDLERS, MvmPlan
from .state import I64, CoreState, TileMemory

_VEC3 = {"add", "sub", "mul", "min", "max"}
_VEC2 = {"addi", "muli", "mini", "maxi", "shli", "shri", "relu", "sig", "tanh", "rqnt", "copy"}
_SCALAR3 = {"iadd", "isub", "imul"}
WIDE_COLUMNS = 2048  # iterations x batch lanes of one batched chunk at most (more iterations: further chunks);
# past it the interpreter's per-instruction cost is amortized over the lanes and wide copies would only add


@dataclass
class MemOp:
    """A load or store of the body: its position, span, address base and (store) reader count."""

    pos: int
    load: bool
    reg: int  # load: destination register; store: source register
    n: int
    ref: MemRef
    count: int = 0


@dataclass
class LoopPlan:
    """The static analysis of one loop (see module docstring)."""

    head: int
    end: int  # pc of the closing blt
    counter: int
    bound: int
    steps: dict[int, tuple[int, int]]  # induction register -> (step, body position of its iaddi)
    mem: list[MemOp]
    alu: list[int]  # body positions executed by their handler on the wide register file
    invariant: np.ndarray  # registers read before written (broadcast into the wide file)
    written: np.ndarray  # registers written (their last iteration's values are copied back)
    rows: int  # registers [0, rows) are enough for the wide file
    lat: np.ndarray  # latency per body position
    offsets: np.ndarray  # start offset per body position without waiting
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Instructions per iteration."""
        return self.end - self.head + 1


def _spans(i: Instr, plan: object, hw: HardwareConfig) -> tuple[list[range], list[range]] | None:
    """(read spans, written spans) of a body instruction, or None if it cannot run batched."""
    op = i.op
    n = int(getattr(i, "n", 1))
    if op in _VEC3:
        return [range(i.a, i.a + n), range(i.b, i.b + n)], [range(i.d, i.d + n)]  # type: ignore[attr-defined]
    if op in _VEC2:
        return [range(i.a, i.a + n)], [range(i.d, i.d + n)]  # type: ignore[attr-defined]
    if op in _SCALAR3:
        return [range(i.a, i.a + 1), range(i.b, i.b + 1)], [range(i.d, i.d + 1)]  # type: ignore[attr-defined]
    if op == "set":
        return [], [range(i.d, i.d + 1)]  # type: ignore[attr-defined]
    if op == "mvm" and isinstance(plan, MvmPlan):
        reads, writes = [], []
        for k in range(hw.mvmus_per_core):
            if plan.instr.mask >> k & 1:  # the stacked gather may read padding rows up to the MVMU's span
                reads.append(range(hw.mvmu_in(k), hw.mvmu_in(k) + hw.xbar_rows))
        for s in plan.idle:
            writes.append(range(s.start, s.stop))
        st = plan.stack
        if st is not None:
            for kern in st.kernels:
                writes.append(range(hw.mvmu_out(kern.mvmu), hw.mvmu_out(kern.mvmu) + kern.cols))
        return reads, writes
    return None


def analyze(instrs: Sequence[Instr], code: Sequence[tuple[Any, Any, int]], end: int,
            hw: HardwareConfig) -> LoopPlan | None:
    """The `LoopPlan` of the loop closed by the blt at ``end``, or None if it is not a static loop."""
    blt = instrs[end]
    head = blt.target  # type: ignore[attr-defined]
    if not 0 <= head < end:
        return None
    body = list(range(head, end))
    steps: dict[int, tuple[int, int]] = {}
    for p in body:  # induction candidates: iaddi r, r, imm
        i = instrs[p]
        if i.op == "iaddi" and i.d == i.a:  # type: ignore[attr-defined]
            if i.d in steps:  # type: ignore[attr-defined]
                return None
            steps[i.d] = (int(i.imm), p - head)  # type: ignore[attr-defined]
    cnt, bound = blt.a, blt.b  # type: ignore[attr-defined]
    if cnt not in steps or steps[cnt][0] <= 0 or bound in steps or bound == cnt:
        return None
    reads_before = np.zeros(hw.core_regs, dtype=bool)
    written = np.zeros(hw.core_regs, dtype=bool)
    mem, alu, top = [], [], 0
    bases: set[int] = set()
    for p in body:
        i, fn, plan = instrs[p], code[p][0], code[p][1]
        if fn is not HANDLERS.get(i.op):
            return None  # a fault handler, or a handler this module does not know
        if i.op == "iaddi" and i.d in steps:  # type: ignore[attr-defined]
            continue
        if i.op in ("load", "store"):
            ref = i.src if i.op == "load" else i.dst  # type: ignore[attr-defined]
            reg = i.d if i.op == "load" else i.a  # type: ignore[attr-defined]
            mem.append(MemOp(p - head, i.op == "load", reg, i.n, ref, getattr(i, "count", 0)))  # type: ignore
            if ref.base != NO_BASE:
                bases.add(ref.base)
            span = range(reg, reg + i.n)  # type: ignore[attr-defined]
            reads, writes = ([], [span]) if i.op == "load" else ([span], [])
        else:
            got = _spans(i, plan, hw)
            if got is None:
                return None
            reads, writes = got
            alu.append(p - head)
        for r in reads:
            seg = slice(r.start, r.stop)
            reads_before[seg] |= ~written[seg]
            top = max(top, r.stop)
        for w in writes:
            written[w.start:w.stop] = True
            top = max(top, w.stop)
    ind = np.zeros(hw.core_regs, dtype=bool)
    ind[list(steps)] = True
    if (reads_before & written).any() or (ind & (reads_before | written)).any() or written[bound]:
        return None  # loop-carried data, or an induction register used as data, or a moving bound
    if any(b not in steps and written[b] for b in bases):
        return None  # a base computed in the body is not affine
    lat = np.array([code[p][2] for p in range(head, end + 1)], dtype=I64)
    offsets = np.concatenate([[0], np.cumsum(lat)[:-1]]).astype(I64)
    return LoopPlan(head, end, cnt, bound, steps, mem, alu, np.flatnonzero(reads_before[:top]),
                    np.flatnonzero(written[:top]), max(top, 1), lat, offsets)


def find_loops(instrs: Sequence[Instr], code: Sequence[tuple[Any, Any, int]],
               hw: HardwareConfig) -> dict[int, LoopPlan]:
    """Loop head pc -> `LoopPlan` for every static loop of a core's code."""
    out: dict[int, LoopPlan] = {}
    for pc, i in enumerate(instrs):
        if i.op == "blt" and code[pc][0] is HANDLERS["blt"]:
            lp = analyze(instrs, code, pc, hw)
            if lp is not None and lp.head not in out:
                out[lp.head] = lp
    return out


def trip_count(c: CoreState, lp: LoopPlan) -> int:
    """Iterations left when the core stands at the loop head (a do-while: at least one)."""
    a0, bound = int(c.regs[lp.counter, 0]), int(c.regs[lp.bound, 0])
    step = lp.steps[lp.counter][0]
    return max(1, -(-(bound - a0) // step))


def _addresses(c: CoreState, lp: LoopPlan, m: MemOp, n: int) -> np.ndarray:
    """(n,) first word of memory op ``m`` in each iteration."""
    if m.ref.base == NO_BASE:
        return np.full(n, m.ref.off, dtype=I64)
    base = int(c.regs[m.ref.base, 0]) + m.ref.off
    step = lp.steps.get(m.ref.base)
    if step is None:
        return np.full(n, base, dtype=I64)
    k = np.arange(n, dtype=I64)
    return base + (k + (1 if step[1] < m.pos else 0)) * step[0]


def run_batched(c: CoreState, lp: LoopPlan, budget: int) -> int:
    """Run the loop's remaining iterations at once if the dynamic conditions hold (module docstring); returns
    the instructions executed (0: nothing done, interpret one iteration instead)."""
    left = trip_count(c, lp)
    if left < 2 or left * lp.length > budget:
        return 0
    b = int(c.regs.shape[1])
    n = min(left, WIDE_COLUMNS // b)
    if n < 2:
        return 0
    mem = c.mem
    words: list[np.ndarray] = []  # (n, m.n) word indices per memory op
    for m in lp.mem:
        start = _addresses(c, lp, m, n)
        if start.min() < 0 or int(start.max()) + m.n > mem.words:
            return 0  # the interpreter faults at the exact instruction
        words.append(start[:, None] + np.arange(m.n, dtype=I64)[None, :])
    if words:
        mem.check(0, int(max(w.max() for w in words)) + 1, c.tile)
    loads = [w for m, w in zip(lp.mem, words) if m.load]
    stores = [w for m, w in zip(lp.mem, words) if not m.load]
    hits = np.concatenate([w.reshape(-1) for w in loads]) if loads else np.zeros(0, dtype=I64)
    if hits.size and not mem.valid[hits].all():
        return 0
    if stores and not _stores_free(mem, stores, hits):
        return 0
    counted = hits[mem.readers[hits] > 0] if hits.size else hits
    if counted.size:
        uniq, times = np.unique(counted, return_counts=True)
        if (times > mem.readers[uniq]).any():
            return 0  # a word would become invalid before its last read: the interpreter would block
    _execute(c, lp, n, words, n == left)
    return n * lp.length


def _stores_free(mem: TileMemory, stores: list[np.ndarray], hits: np.ndarray) -> bool:
    """Whether every stored word is invalid now, stored once in the batch and not loaded in it (interval hulls
    first: the common case needs no set operation)."""
    st = np.concatenate([w.reshape(-1) for w in stores])
    if mem.valid[st].any():
        return False
    strided = len(stores) == 1 and (len(stores[0]) < 2 or abs(int(stores[0][1, 0] - stores[0][0, 0])) >= stores[0].shape[1])
    if not strided and np.unique(st).size != st.size:
        return False
    if hits.size and not (int(st.max()) < int(hits.min()) or int(hits.max()) < int(st.min())):
        return not np.isin(st, hits).any()
    return True


def _execute(c: CoreState, lp: LoopPlan, n: int, words: list[np.ndarray], done_all: bool) -> None:
    """Run n iterations (conditions checked by `run_batched`); ``done_all``: they are all that is left."""
    mem, b, length = c.mem, c.regs.shape[1], lp.length
    wait = [mem.time[w].max(axis=1) - lp.offsets[m.pos] for m, w in zip(lp.mem, words)]  # T[m, k] - o[m]
    total = int(lp.lat.sum())
    k = np.arange(n, dtype=I64)
    e = np.max(wait, axis=0) if wait else np.full(n, np.iinfo(I64).min // 4, dtype=I64)
    g = np.maximum.accumulate(np.concatenate([[c.clock], e - k * total]))
    clock = g[:n] + k * total  # clock at the start of each iteration
    # start of each body position: its offset + max(clock, latest wait among the memory ops up to it)
    run = clock.copy()
    starts: list[np.ndarray] = []
    mi = 0
    for p in range(length):
        while mi < len(lp.mem) and lp.mem[mi].pos == p:
            run = np.maximum(run, wait[mi])
            mi += 1
        starts.append(run + lp.offsets[p])
    wide = np.empty((lp.rows, n * b), dtype=I64)  # every row the body reads is an invariant or written first
    if lp.invariant.size:
        wide[lp.invariant] = np.tile(c.regs[lp.invariant], (1, n))
    proxy = CoreState(c.tile, c.core, wide, mem, c.fifos, c.epoch, c.code, meter=c.meter, batch=b)
    alu = set(lp.alu)
    counted: list[tuple[np.ndarray, np.ndarray]] = []  # (words, completion times) of every load
    mi = 0
    for p in range(length - 1):
        pc = lp.head + p
        if p in alu:
            fn, ops, lat = c.code[pc]
            proxy.pc = pc + 1
            fn(proxy, ops, lat)
        elif mi < len(lp.mem) and lp.mem[mi].pos == p:
            m, w = lp.mem[mi], words[mi]
            end = starts[p] + lp.lat[p]
            if m.load:
                vals = mem.values[w]  # (n, words, B)
                wide[m.reg:m.reg + m.n] = vals.transpose(1, 0, 2).reshape(m.n, n * b)
                counted.append((w, np.broadcast_to(end[:, None], w.shape)))
            else:
                vals = wide[m.reg:m.reg + m.n].reshape(m.n, n, b).transpose(1, 0, 2)
                flat = w.reshape(-1)
                mem.values[flat] = vals.reshape(n * m.n, b)
                mem.valid[flat] = True
                mem.readers[flat] = m.count
                mem.time[flat] = np.repeat(end, m.n)
            mi += 1
    _consume(mem, counted)
    c.epoch[c.tile] += n * len(lp.mem)
    last = slice((n - 1) * b, n * b)
    if lp.written.size:
        c.regs[lp.written] = wide[lp.written, last]
    for r, (step, _) in lp.steps.items():
        c.regs[r] += I64(n * step)
    meter = c.meter
    if meter is not None:
        for p in range(length):
            pc = lp.head + p
            meter.counts[pc] += n
            if meter.first[pc] < 0:
                meter.first[pc] = int(starts[p][0])
            meter.last[pc] = int(starts[p][-1] + lp.lat[p])
    c.clock = int(g[n] + n * total)
    c.pc = lp.end + 1 if done_all else lp.head  # a partial chunk ends with the blt taken


def _consume(mem: TileMemory, loads: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The reader counts of the batch's loads: each read of a word with a positive count decrements it; a word
    reaching 0 becomes invalid at its last read's completion (`run_batched` made sure no read comes later)."""
    if not loads:
        return
    w = np.concatenate([x.reshape(-1) for x, _ in loads])
    t = np.concatenate([y.reshape(-1) for _, y in loads])
    live = mem.readers[w] > 0
    if not live.any():
        return
    w, t = w[live], t[live]
    uniq, inv = np.unique(w, return_inverse=True)
    hits = np.bincount(inv, minlength=uniq.size)
    latest = np.full(uniq.size, np.iinfo(I64).min, dtype=I64)
    np.maximum.at(latest, inv, t)
    mem.readers[uniq] -= hits
    gone = mem.readers[uniq] == 0
    mem.valid[uniq[gone]] = False
    mem.time[uniq[gone]] = latest[gone]
