"""Fast mode: a static loop body executed over all its remaining iterations at once.

A loop here is a backward ``blt cnt, bound, head`` whose body (head .. the blt) is straight-line code of vector
ALU ops, moves, scalar ops on data registers, mvm, load, store, send and recv, where:

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

A send queues one message per iteration (arrival = its completion + transit); a recv takes the queued
messages (the chunk stops before the first not yet sent or of the wrong length) and also waits for their
arrival. A read of words a count-0 store or recv wrote earlier in the same iteration never waits (the core is in
order). A fixed span written with reader count 1 and read once later in the same iteration (`_transients`: a
partial sum stored and sent, a message received and loaded) passes its values in registers; only its final
state is written. Memory operands are `Spans`: read and written through strided views when their starts step
evenly or in a grid of equal rows, through index arrays otherwise. Loops of several cores that pass values
through fixed mailboxes run together as a gang (`runtime.gangs`).

A **nest** (`NestPlan`: an outer loop whose body is scalar ``set``/``iaddi`` around one such loop, as a conv's
rows around its pixels) runs as one chunk over every (outer, inner) iteration: its scalar registers are simulated
in Python integers outer iteration by outer iteration, giving each inner iteration's base addresses, and the
prologue's and epilogue's latencies enter the recurrence between groups. Chunks are bounded by ``MAX_COLUMNS``
iterations x lanes and by ``WIDE_BYTES`` of wide registers and MVM temporaries; at large batches the interpreter's
per-instruction cost is amortized over the lanes anyway.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from isa import NO_BASE, HardwareConfig, Instr, MemRef

from .handlers import HANDLERS, MvmPlan, SendPlan
from .state import I64, CoreState, TileMemory

_VEC3 = {"add", "sub", "mul", "min", "max"}
_VEC2 = {"addi", "muli", "mini", "maxi", "shli", "shri", "relu", "sig", "tanh", "rqnt", "copy"}
_SCALAR3 = {"iadd", "isub", "imul"}
WIDE_BYTES = 1 << 28  # a batched chunk's wide register file and MVM temporaries at most (more: further chunks)
MAX_COLUMNS = 1 << 13  # iterations x lanes of one chunk at most (wider chunks measured slower: cache misses)
MIN_CHUNK = 8  # a chunk of fewer iterations than that (when more are left) is not worth batching
FIRST_WINDOW = 64  # iterations a loop head looks ahead at first (doubling after each full chunk)
MAX_SKIP = 1024  # visits a head that keeps failing is skipped at most (cores that alternate with a producer)
MAX_LANES = 128  # past this batch the interpreter's per-instruction cost is amortized over the lanes: batching
# iterations only adds wide copies (measured 0.3-0.6x of the reference at batch 360, 1.5-3x faster at 64)


@dataclass
class MemOp:
    """A load or store of the body: its position, span, address base and (store) reader count."""

    pos: int
    load: bool  # reads the words (load, send) or writes them (store, recv)
    reg: int  # load: destination register; store: source register; send/recv: -1 (no register)
    n: int
    ref: MemRef
    count: int = 0
    kind: str = ""  # the mnemonic
    link: tuple[int, int, int] = (-1, -1, -1)  # send/recv: the FIFO (source tile, destination tile, channel)
    transit: int = 0  # send: cycles its message spends on the network
    sized: bool = False  # recv: every send of the program on its FIFO has its length (no per-message check)


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
    col_bytes: int = 0  # bytes per wide column (registers touched, MVM temporaries): bounds a chunk
    forward: dict[int, int] = field(default_factory=dict)  # read op -> an earlier count-0 store/recv of its span
    transient: dict[int, int] = field(default_factory=dict)  # read op -> the write op whose value it takes

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


def _mvm_bytes(plan: MvmPlan, hw: HardwareConfig) -> int:
    """Bytes of an mvm's temporaries per batch column: inputs and products in float (exact), or digits, bit-line
    values and slice sums per input digit."""
    k, ibits = bin(plan.instr.mask).count("1"), plan.instr.ibits
    if plan.stack is not None and plan.stack.exact:
        return k * 24 * (hw.xbar_rows + hw.xbar_cols)
    return k * ibits * (12 * hw.xbar_rows + 24 * hw.max_slices * hw.xbar_cols)


def _mem_op(i: Instr, plan: object, pos: int, tile: int) -> MemOp:
    """The `MemOp` of a body's load, store, send (``plan`` its `SendPlan`) or recv on core tile ``tile``."""
    n, count = int(getattr(i, "n")), int(getattr(i, "count", 0))
    if i.op == "load":
        return MemOp(pos, True, i.d, n, i.src, count, "load")  # type: ignore[attr-defined]
    if i.op == "store":
        return MemOp(pos, False, i.a, n, i.dst, count, "store")  # type: ignore[attr-defined]
    if i.op == "send":
        assert isinstance(plan, SendPlan)
        return MemOp(pos, True, -1, n, i.src, 0, "send", (tile, i.tile, i.ch), plan.transit)  # type: ignore
    return MemOp(pos, False, -1, n, i.dst, count, "recv", (i.tile, tile, i.ch))  # type: ignore[attr-defined]


def _transients(mem: list[MemOp]) -> dict[int, int]:
    """Read op -> write op for every fixed-address span a body writes (store, recv) with reader count 1 and reads
    (load, send) once later in the same iteration, touched by no other op: a value that passes through memory
    within one iteration (a partial sum stored and sent, a message received and loaded)."""
    fixed = [(j, m) for j, m in enumerate(mem) if m.ref.base == NO_BASE]
    out = {}
    for j, w in fixed:
        if w.load or w.count != 1:
            continue
        lo, hi = w.ref.off, w.ref.off + w.n
        touching = [(i, m) for i, m in fixed if i != j and m.ref.off < hi and lo < m.ref.off + m.n]
        if len(touching) == 1:
            i, r = touching[0]
            if r.load and i > j and (r.ref.off, r.n) == (lo, w.n):
                out[i] = j
    return out  # based spans move with the iteration: `_Chunk.admissible` keeps them off these words


def analyze(instrs: Sequence[Instr], code: Sequence[tuple[Any, Any, int]], end: int,
            hw: HardwareConfig, tile: int = 0) -> LoopPlan | None:
    """The `LoopPlan` of the loop closed by the blt at ``end`` on a core of tile ``tile``, or None if it is not a
    static loop."""
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
        if i.op in ("load", "store", "send", "recv"):
            op = _mem_op(i, plan, p - head, tile)
            mem.append(op)
            if op.ref.base != NO_BASE:
                bases.add(op.ref.base)
            span = range(op.reg, op.reg + op.n) if op.reg >= 0 else range(0)
            reads, writes = ([], [span]) if i.op == "load" else ([span], []) if i.op == "store" else ([], [])
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
    links = [m.link for m in mem if m.kind in ("send", "recv")]
    if len(set(links)) != len(links):
        return None  # two messages of one FIFO per iteration: batched, they would be queued in another order
    forward = {j: i for j, r in enumerate(mem) if r.load for i, w in enumerate(mem[:j])
               if w.kind in ("store", "recv") and w.count == 0 and (w.ref, w.n) == (r.ref, r.n)}
    transient = _transients(mem)
    lat = np.array([code[p][2] for p in range(head, end + 1)], dtype=I64)
    offsets = np.concatenate([[0], np.cumsum(lat)[:-1]]).astype(I64)
    touched = int((reads_before | written).sum())
    mvm = [code[p][1] for p in body if isinstance(code[p][1], MvmPlan)]
    tmp = max((_mvm_bytes(pl, hw) for pl in mvm), default=0)
    return LoopPlan(head, end, cnt, bound, steps, mem, alu, np.flatnonzero(reads_before[:top]),
                    np.flatnonzero(written[:top]), max(top, 1), lat, offsets, 8 * touched + tmp, forward, transient)


@dataclass
class NestPlan:
    """An outer loop around one static inner loop: its body is scalar ``set``/``iaddi`` ops (the prologue), the
    inner loop, scalar ops and the closing blt (the epilogue). Its scalar registers are simulated in Python
    integers outer iteration by outer iteration; the inner body then runs once over every (outer, inner)
    iteration."""

    head: int
    end: int
    inner: LoopPlan
    pre: list[Instr]
    post: list[Instr]  # the closing blt last
    pre_lat: np.ndarray
    post_lat: np.ndarray
    regs: list[int]  # every scalar register the nest reads or writes (lane-uniform at entry)


def _scalar_only(i: Instr, fn: Any) -> bool:
    return fn is HANDLERS.get(i.op) and i.op in ("set", "iaddi")


def analyze_nest(instrs: Sequence[Instr], code: Sequence[tuple[Any, Any, int]], end: int,
                 inner: dict[int, LoopPlan]) -> NestPlan | None:
    """The `NestPlan` of the loop closed by the blt at ``end`` if it is a nest around one static inner loop."""
    head = instrs[end].target  # type: ignore[attr-defined]
    inside = [lp for lp in inner.values() if head < lp.head and lp.end < end]
    if not 0 <= head < end or len(inside) != 1:
        return None
    lp = inside[0]
    pre, post = list(range(head, lp.head)), list(range(lp.end + 1, end))
    if not all(_scalar_only(instrs[p], code[p][0]) for p in pre + post):
        return None
    regs = {lp.counter, lp.bound, *lp.steps, *(m.ref.base for m in lp.mem if m.ref.base != NO_BASE)}
    regs |= {instrs[end].a, instrs[end].b}  # type: ignore[attr-defined]
    for p in pre + post:
        i = instrs[p]
        regs |= {i.d} | ({i.a} if i.op == "iaddi" else set())  # type: ignore[attr-defined]
    data = set(lp.invariant.tolist()) | set(lp.written.tolist())
    if regs & data:
        return None  # a scalar of the nest is data of the inner body
    lat = [code[p][2] for p in range(head, end + 1)]
    return NestPlan(head, end, lp, [instrs[p] for p in pre], [instrs[p] for p in post + [end]],
                    np.array(lat[:len(pre)], dtype=I64), np.array(lat[len(pre) + lp.length:], dtype=I64),
                    sorted(regs))


def find_loops(instrs: Sequence[Instr], code: Sequence[tuple[Any, Any, int]],
               hw: HardwareConfig, tile: int = 0) -> dict[int, LoopPlan | NestPlan]:
    """Loop head pc -> `LoopPlan` for every static loop of a core's code, and `NestPlan` for every loop around
    exactly one of them."""
    inner: dict[int, LoopPlan] = {}
    blts = [pc for pc, i in enumerate(instrs) if i.op == "blt" and code[pc][0] is HANDLERS["blt"]]
    for pc in blts:
        lp = analyze(instrs, code, pc, hw, tile)
        if lp is not None and lp.head not in inner:
            inner[lp.head] = lp
    out: dict[int, LoopPlan | NestPlan] = dict(inner)
    for pc in blts:
        nest = analyze_nest(instrs, code, pc, inner)
        if nest is not None and nest.head not in out:
            out[nest.head] = nest
    return out


def mark_sized_recvs(loops: Sequence[dict[int, LoopPlan | NestPlan]], sends: dict[tuple[int, int, int], set[int]]
                     ) -> None:
    """Mark the batched recvs whose FIFO only ever carries messages of their length (``sends``: FIFO ->
    lengths of the program's sends on it): their chunks need not look at each message's length."""
    for plans in loops:
        for plan in plans.values():
            for m in (plan.inner if isinstance(plan, NestPlan) else plan).mem:
                if m.kind == "recv":
                    m.sized = sends.get(m.link) == {m.n}


def _trips(counter: int, bound: int, step: int) -> int:
    """Iterations of a do-while loop from a counter value (at least one)."""
    return max(1, -(-(bound - counter) // step))


@dataclass
class Flat:
    """The iterations one batched chunk runs: the inner body's iterations in order, grouped by outer iteration
    (one group without a nest), each base register's value at the inner head of every iteration, and what the
    nest adds (the prologue/epilogue latencies between groups; the scalar registers' values after the chunk)."""

    groups: list[int]
    bases: dict[int, np.ndarray]
    done: bool  # the chunk is all that was left (fall through) or not (back to the head)
    nest: NestPlan | None = None
    scalars: dict[int, int] = field(default_factory=dict)
    after: list[dict[int, int]] = field(default_factory=list)  # nest: the scalars after each group

    @property
    def n(self) -> int:
        """Iterations of the inner body."""
        return sum(self.groups)


class Spans:
    """The words one memory op of a chunk touches: rows ``start[k] .. start[k] + width`` for every iteration k.
    Read and written through a strided view of the memory arrays when the starts step evenly (a loop) or in a
    grid of evenly stepping rows (a nest of equal groups), through index arrays otherwise."""

    def __init__(self, start: np.ndarray, width: int) -> None:
        self.start, self.width = start, width
        self._grid: tuple[int, int, int, int] | None | bool = False  # (groups, per group, row step, step)
        self._hull: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, k: Any) -> Any:
        """Row ``k`` (its word indices), or the `Spans` of a slice of the iterations."""
        if isinstance(k, slice):
            return Spans(self.start[k], self.width)
        s = int(self.start[k])
        return np.arange(s, s + self.width, dtype=I64)

    @property
    def shape(self) -> tuple[int, int]:
        """(iterations, words per iteration)."""
        return len(self.start), self.width

    def hull(self) -> tuple[int, int]:
        """[lowest word, highest word + 1)."""
        if self._hull is None:
            self._hull = int(self.start.min()), int(self.start.max()) + self.width
        return self._hull

    def same(self, other: "Spans") -> bool:
        """Whether both touch the same words in every iteration."""
        return self.width == other.width and bool(np.array_equal(self.start, other.start))

    def index(self) -> np.ndarray:
        """(n, width) word indices."""
        return self.start[:, None] + np.arange(self.width, dtype=I64)[None, :]

    def grid(self) -> tuple[int, int, int, int] | None:
        """(groups, iterations per group, word step between groups, between iterations) if the starts form
        such a grid with non-negative steps, else None."""
        if self._grid is False:
            self._grid = _grid_of(self.start)
        return self._grid  # type: ignore[return-value]

    def view(self, a: np.ndarray) -> np.ndarray | None:
        """A (groups, per group, width, ...) strided view of array ``a`` (words first), or None."""
        g = self.grid()
        if g is None:
            return None
        groups, per, row, step = g
        s0, st = int(self.start[0]), a.strides[0]
        shape, strides = (groups, per, self.width) + a.shape[1:], (row * st, step * st, st) + a.strides[1:]
        if a.flags.c_contiguous:  # the tile memory's arrays: a view straight on their buffer (cheaper)
            return np.ndarray(shape, a.dtype, buffer=a, offset=s0 * st, strides=strides)
        return as_strided(a[s0:], shape=shape, strides=strides, writeable=True)

    def reduce(self, a: np.ndarray, op: np.ufunc) -> np.ndarray:
        """``op`` over each row's words of 1-d array ``a``: (n,)."""
        v = self.view(a)
        out: np.ndarray = op.reduce(a[self.index()], axis=1) if v is None else op.reduce(v, axis=2).reshape(-1)
        return out

    def read(self, a: np.ndarray) -> np.ndarray:
        """(n, width, ...) values of ``a`` (a copy)."""
        v = self.view(a)
        out: np.ndarray = a[self.index()] if v is None else v.reshape((len(self.start), self.width) + a.shape[1:])
        if v is not None and np.may_share_memory(out, a):  # the reshape kept the view: a batched send's messages
            out = out.copy()  # must not change when the words are stored again before they are received
        return out

    def load_into(self, a: np.ndarray, dst: np.ndarray) -> None:
        """Copy the rows of (words, B) array ``a`` into ``dst`` (width, n * B), the wide-register layout."""
        v = self.view(a)
        if v is None:
            v = a[self.index()][None]
        np.copyto(dst.reshape((self.width,) + v.shape[:2] + a.shape[1:]), v.transpose(2, 0, 1, 3))  # words first

    def store_from(self, a: np.ndarray, src: np.ndarray) -> None:
        """Write ``src`` (width, n * B), the wide-register layout, into the rows of (words, B) array ``a``."""
        n, b = len(self.start), a.shape[1]
        v = self.view(a)
        if v is None:
            a[self.index()] = src.reshape(self.width, n, b).transpose(1, 0, 2)
            return
        np.copyto(v, src.reshape((self.width,) + v.shape[:2] + (b,)).transpose(1, 2, 0, 3))

    def store_rows(self, a: np.ndarray, vals: np.ndarray) -> None:
        """Write ``vals`` (n, width, B), one row of words per iteration, into the rows of (words, B) array ``a``."""
        v = self.view(a)
        if v is None:
            a[self.index()] = vals
        else:
            v[...] = vals.reshape(v.shape)

    def fill(self, a: np.ndarray, values: Any) -> None:
        """Set each row's words of 1-d array ``a`` to ``values`` (a scalar, or (n,) one per iteration)."""
        v = self.view(a)
        per = np.asarray(values)
        if v is None:
            a[self.index()] = per[:, None] if per.ndim else per
        else:
            v[...] = per.reshape(v.shape[:2] + (1,)) if per.ndim else per


def _grid_of(start: np.ndarray) -> tuple[int, int, int, int] | None:
    """`Spans.grid` of a start array."""
    n = len(start)
    if n == 1:
        return 1, 1, 0, 0
    d = start[1:] - start[:-1]
    step = int(d[0])
    if step < 0:
        return None
    breaks = np.flatnonzero(d != step)
    if not breaks.size:
        return 1, n, 0, step
    per = int(breaks[0]) + 1
    if n % per:
        return None
    g = start.reshape(n // per, per)
    if per > 1 and not (g[:, 1:] - g[:, :-1] == step).all():
        return None
    rows = g[1:, 0] - g[:-1, 0]
    row = int(rows[0])
    if row < 0 or not (rows == row).all():
        return None
    return n // per, per, row, step


def _inner_flat(c: CoreState, lp: LoopPlan, cols: int) -> Flat | None:
    left = _trips(int(c.regs[lp.counter, 0]), int(c.regs[lp.bound, 0]), lp.steps[lp.counter][0])
    n = min(left, cols)
    if n < 2 or (n < left and n < MIN_CHUNK):
        return None
    k = np.arange(n, dtype=I64)
    bases = {}
    for m in lp.mem:
        r = m.ref.base
        if r != NO_BASE and r not in bases:
            bases[r] = int(c.regs[r, 0]) + k * lp.steps.get(r, (0, 0))[0]
    return Flat([n], bases, n == left)


def _nest_flat(c: CoreState, nest: NestPlan, cols: int, hard: int) -> Flat | None:
    """Simulate the nest's scalar registers outer iteration by outer iteration (lane 0: they are uniform): the
    groups that fit ``cols`` iterations, or the first alone if it is larger but fits ``hard``."""
    rows = c.regs[nest.regs]
    if not (rows == rows[:, :1]).all():
        return None
    vals = dict(zip(nest.regs, rows[:, 0].tolist()))
    lp, blt = nest.inner, nest.post[-1]
    bases = sorted({m.ref.base for m in lp.mem if m.ref.base != NO_BASE})
    groups: list[int] = []
    entry: list[list[int]] = []
    after: list[dict[int, int]] = []
    total, done = 0, False
    while True:
        snapshot = dict(vals)
        for i in nest.pre:
            vals[i.d] = i.imm if i.op == "set" else vals[i.a] + i.imm  # type: ignore[attr-defined]
        n = _trips(vals[lp.counter], vals[lp.bound], lp.steps[lp.counter][0])
        if total + n > cols and (groups or n > hard):
            vals = snapshot
            break
        groups.append(n)
        entry.append([vals[r] for r in bases])
        total += n
        for r, (step, _) in lp.steps.items():
            vals[r] += n * step
        for i in nest.post[:-1]:
            vals[i.d] = i.imm if i.op == "set" else vals[i.a] + i.imm  # type: ignore[attr-defined]
        after.append(dict(vals))
        if not vals[blt.a] < vals[blt.b]:  # type: ignore[attr-defined]
            done = True
            break
    if not groups:
        return None
    sizes = np.array(groups, dtype=I64)
    ki = np.arange(total, dtype=I64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    start = np.repeat(np.array(entry, dtype=I64).reshape(len(groups), len(bases)), sizes, axis=0)
    arrays = {r: start[:, j] + ki * lp.steps.get(r, (0, 0))[0] for j, r in enumerate(bases)}
    return Flat(groups, arrays, done, nest, vals, after)


def _prefix(flat: Flat, k: int) -> Flat | None:
    """The first ``k`` iterations of a chunk (a nest: its whole groups among them), or None if too few."""
    if flat.nest is None:
        return None if k < 2 else Flat([k], {r: a[:k] for r, a in flat.bases.items()}, False)
    ends = np.cumsum(flat.groups)
    g = int(np.searchsorted(ends, k, side="right"))  # groups that end at or before k
    if g < 1:
        return None
    n = int(ends[g - 1])
    return Flat(flat.groups[:g], {r: a[:n] for r, a in flat.bases.items()}, False, flat.nest, flat.after[g - 1],
                flat.after[:g])


def run_batched(c: CoreState, plan: LoopPlan | NestPlan, budget: int) -> int:
    """Run a loop's (or nest's) remaining iterations at once, chunk by chunk, if the dynamic conditions hold
    (module docstring); returns the instructions executed (0: nothing done, interpret instead).

    Retry policy (``c.backoff[head]`` = visits to skip, next skip, look-ahead window): a head that failed (or
    could batch fewer than ``MIN_CHUNK`` iterations: a producer only just ahead) is skipped for a doubling number
    of visits, up to ``MAX_SKIP``; a chunk looks ahead at most ``window`` iterations, doubled after each full chunk and
    reset after a short one, so a consumer trailing its producer costs O(iterations), not O(iterations^2)."""
    b = int(c.regs.shape[1])
    if c.devices is not None or b > MAX_LANES:
        return 0  # non-ideal devices draw read noise per firing: batched, the draws would come in another order
    skip, grow, window = c.backoff.get(plan.head, (0, 1, FIRST_WINDOW))
    if skip:
        c.backoff[plan.head] = (skip - 1, grow, window)
        return 0
    count, full = _try_batched(c, plan, budget, window)
    if not count:
        c.backoff[plan.head] = (grow, min(2 * grow, MAX_SKIP), FIRST_WINDOW)
    else:
        c.backoff[plan.head] = (0, 1, 2 * window if full else FIRST_WINDOW)
    return count


def _try_batched(c: CoreState, plan: LoopPlan | NestPlan, budget: int, window: int) -> tuple[int, bool]:
    """`run_batched` without its retry policy: (instructions executed, whether no iteration was held back)."""
    ch = _plan_chunk(c, plan, *_columns(c, plan, window))
    if ch is None:
        return 0, False
    held_back = ch.ok < ch.flat.n
    if held_back and not ch.cut(ch.ok):
        return 0, False
    count = ch.admissible(budget)
    if not count:
        return 0, False
    _execute(c, ch.lp, ch.flat, ch.words, ch.fwd, live=ch.live)
    return count, not held_back


def _columns(c: CoreState, plan: LoopPlan | NestPlan, window: int) -> tuple[int, int]:
    """(iterations a chunk of ``plan`` on ``c`` looks ahead: the window within the hard bound, the hard bound:
    columns and bytes of its wide registers and MVM temporaries)."""
    lp = plan.inner if isinstance(plan, NestPlan) else plan
    hard = min(MAX_COLUMNS, WIDE_BYTES // max(1, lp.col_bytes)) // int(c.regs.shape[1])
    return min(window, hard), hard


@dataclass
class _Chunk:
    """The iterations a batched chunk would run on one core and its memory operands' words, before the checks
    that it may (`admissible`). ``skip``: memory ops another core's chunk pairs with (a gang's mailboxes),
    left out of the checks; ``ok``: iterations before the first that would block."""

    c: CoreState
    plan: LoopPlan | NestPlan
    lp: LoopPlan
    flat: Flat
    words: list[Spans]  # the words of every memory op
    fwd: set[int]
    skip: frozenset[int]
    ok: int
    live: set[int] = field(default_factory=set)  # (`admissible`) the reads of words with reader counts

    def cut(self, k: int) -> bool:
        """Keep the first ``k`` iterations (a nest: whole groups); False if too few remain."""
        short = _prefix(self.flat, k)
        if short is None:
            return False
        self.flat = short
        self.words = [w[:short.n] for w in self.words]
        return True

    def admissible(self, budget: int) -> int:
        """The chunk's instruction count if it may run as the interpreter would (module docstring), else 0."""
        lp, mem, n, plan = self.lp, self.c.mem, self.flat.n, self.plan
        count = n * lp.length
        if isinstance(plan, NestPlan):
            count += len(self.flat.groups) * (len(plan.pre) + len(plan.post))
        if count > budget:
            return 0
        passing = set(lp.transient) | set(lp.transient.values())
        ignore = self.fwd | self.skip | passing
        reads = [j for j, m in enumerate(lp.mem) if m.load and j not in ignore]
        loads = [self.words[j] for j in reads]
        stores = [w for j, (m, w) in enumerate(zip(lp.mem, self.words))
                  if not m.load and j not in self.skip and j not in passing]
        if passing and (loads or stores):
            fixed = [self.words[j].hull() for j in lp.transient.values()]
            if any(lo < b and a < hi for w in loads + stores for a, b in [w.hull()] for lo, hi in fixed):
                return 0  # another op of the body may touch a transient span
        if any(not w.reduce(mem.valid, np.logical_and).all() for w in loads):
            return 0
        if stores and not _stores_free(mem, stores, loads):
            return 0
        self.live = {j for j in reads if self.words[j].reduce(mem.readers, np.maximum).max() > 0}
        counted = [self.words[j] for j in self.live]
        if counted:
            hits = np.concatenate([w.index().reshape(-1) for w in counted])
            hits = hits[mem.readers[hits] > 0]
            uniq, times = np.unique(hits, return_counts=True)
            if (times > mem.readers[uniq]).any():
                return 0  # a word would become invalid before its last read: the interpreter would block
        return count


def _plan_chunk(c: CoreState, plan: LoopPlan | NestPlan, cols: int, hard: int,
                skip: frozenset[int] = frozenset()) -> _Chunk | None:
    """The `_Chunk` of at most ``cols`` iterations of ``plan`` from ``c``'s state (a nest: or its first group,
    up to ``hard``), or None if none can run."""
    lp = plan.inner if isinstance(plan, NestPlan) else plan
    flat = _nest_flat(c, plan, cols, hard) if isinstance(plan, NestPlan) else _inner_flat(c, plan, cols)
    if flat is None:
        return None
    n, mem = flat.n, c.mem
    words: list[Spans] = []  # the words of every memory op
    for m in lp.mem:
        if m.ref.base == NO_BASE:
            start = np.full(n, m.ref.off, dtype=I64)
        else:
            step = lp.steps.get(m.ref.base, (0, m.pos))
            start = flat.bases[m.ref.base] + (m.ref.off + (step[0] if step[1] < m.pos else 0))
        w = Spans(start, m.n)
        lo, hi = w.hull()
        if lo < 0 or hi > mem.words:
            return None  # the interpreter faults at the exact instruction
        words.append(w)
    fwd = {j for j, i in lp.forward.items() if words[j].same(words[i])}
    ok = np.ones(n, dtype=bool)  # the iterations that would not block: loaded words valid, stored invalid
    if words:
        mem.check(0, max(w.hull()[1] for w in words), c.tile)
        writes = set(lp.transient.values())
        for j, (m, w) in enumerate(zip(lp.mem, words)):
            if j in fwd or j in skip or j in lp.transient:
                continue  # stored earlier in the same iteration, or a gang's mailbox
            if j in writes:  # a transient span: only the first write can find it valid (later ones follow a read)
                if mem.valid[w[0]].any():
                    ok[:] = False
            else:
                ok &= w.reduce(mem.valid, np.logical_and) if m.load else ~w.reduce(mem.valid, np.logical_or)
            if m.kind == "recv":  # the messages must have been sent, with the length the recv expects
                fifo = c.fifos.get(m.link, ())
                ok[len(fifo):] = False
                sizes = [] if m.sized else [len(vals) for _, vals in islice(fifo, n)]
                if sizes.count(m.n) != len(sizes):
                    ok[next(k for k, size in enumerate(sizes) if size != m.n):] = False  # the recv faults there
    return _Chunk(c, plan, lp, flat, words, fwd, skip, n if ok.all() else int(np.argmin(ok)))


def _stores_free(mem: TileMemory, stores: list[Spans], loads: list[Spans]) -> bool:
    """Whether every stored word is invalid now, stored once in the batch and not loaded in it (interval hulls
    first: the common case needs no set operation)."""
    if any(w.reduce(mem.valid, np.logical_or).any() for w in stores):
        return False
    if not _disjoint(stores):
        st = np.concatenate([w.index().reshape(-1) for w in stores])
        if np.unique(st).size != st.size:
            return False
    hulls = [w.hull() for w in stores]
    near = [w for w in loads if any(lo < b and a < hi for a, b in [w.hull()] for lo, hi in hulls)]
    if near:
        st = np.concatenate([w.index().reshape(-1) for w in stores])
        return not np.isin(st, np.concatenate([w.index().reshape(-1) for w in near])).any()
    return True


def _disjoint(spans: list[Spans]) -> bool:
    """Whether the rows of several ops' spans are pairwise disjoint, shown cheaply: within each op the rows
    ascend without overlap, and the ops' hulls do not meet (False: not shown)."""
    hulls = []
    for w in spans:
        first = w.start
        if len(first) > 1 and not (np.diff(first) >= w.width).all():
            return False
        hulls.append((int(first[0]), int(first[-1]) + w.width))
    hulls.sort()
    return all(a[1] <= b[0] for a, b in zip(hulls, hulls[1:]))


NEVER = np.iinfo(I64).min // 4  # a wait that never binds


def _waits(c: CoreState, lp: LoopPlan, flat: Flat, words: list[Spans], fwd: set[int],
           given: dict[int, np.ndarray] | None = None) -> list[np.ndarray]:
    """T[m, k] - o[m] per memory op m and iteration k: the time its words (a recv: also its message) are ready,
    less the op's offset in the body. A forwarded read (``fwd``) never waits: its words became valid at the store
    before it on the same core; ``given``: ready times a gang computed (its mailboxes)."""
    n = flat.n
    wait = []
    writes = set(lp.transient.values())
    for j, (m, w) in enumerate(zip(lp.mem, words)):
        if given is not None and j in given:
            t = given[j]
        elif j in fwd or j in lp.transient:
            t = np.full(n, NEVER, dtype=I64)
        elif j in writes:  # a transient span is free again at its read, before the next iteration starts
            t = np.full(n, NEVER, dtype=I64)
            t[0] = c.mem.time[w[0]].max()
        else:
            t = w.reduce(c.mem.time, np.maximum)
        if m.kind == "recv":
            q = c.fifos[m.link]
            t = np.maximum(t, np.fromiter((at for at, _ in islice(q, n)), dtype=I64, count=n))
        wait.append(t - lp.offsets[m.pos])
    return wait


def _gaps(lp: LoopPlan, flat: Flat) -> tuple[np.ndarray, int]:
    """(latency from each iteration's start to the next's without waits (n,), the prologue's latency): the
    body, and in a nest the epilogue and next prologue after a group's last iteration."""
    n = flat.n
    pre = int(flat.nest.pre_lat.sum()) if flat.nest else 0
    post = int(flat.nest.post_lat.sum()) if flat.nest else 0
    gap = np.zeros(n, dtype=I64)
    ends = np.cumsum(flat.groups) - 1
    gap[ends] = pre + post
    gap[-1] = post
    return gap, pre


def _timeline(c: CoreState, lp: LoopPlan, flat: Flat, words: list[Spans], fwd: set[int],
              given: dict[int, np.ndarray] | None = None
              ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray], int]:
    """Clocks of the chunk: (clock at the start of every iteration and after the last (n+1,), the start of every
    body position in every iteration, the gap after every iteration, the waits (`_waits`), the prologue's
    latency)."""
    n, length = flat.n, lp.length
    wait = _waits(c, lp, flat, words, fwd, given)
    gap, pre = _gaps(lp, flat)
    lat = int(lp.lat.sum()) + gap
    s = np.concatenate([[0], np.cumsum(lat)]).astype(I64)  # S[j]: latency before iteration j
    e = np.max(wait, axis=0) if wait else np.full(n, NEVER, dtype=I64)
    g = np.maximum.accumulate(np.concatenate([[c.clock + pre], e - s[:n]]))
    clock = g + s
    run = clock[:n].copy()
    starts: list[np.ndarray] = []
    mi = 0
    for p in range(length):
        while mi < len(lp.mem) and lp.mem[mi].pos == p:
            run = np.maximum(run, wait[mi])
            mi += 1
        starts.append(run + lp.offsets[p])
    return clock, starts, gap, wait, pre


def _execute(c: CoreState, lp: LoopPlan, flat: Flat, words: list[Spans], fwd: set[int],
             given: dict[int, np.ndarray] | None = None, boxes: dict[int, np.ndarray] | None = None,
             live: set[int] | None = None) -> None:
    """Run a chunk (conditions checked by `run_batched`; ``fwd``: the reads of words stored before them in the
    same iteration). In a gang (`runtime.gangs`), the memory ops in ``given`` are mailboxes: their ready times
    are given, a mailbox store leaves every iteration's values (n, words, B) in ``boxes`` instead of memory and
    a mailbox load takes them from there (the gang sets the mailbox words' final state). ``live``: the reads
    whose words have reader counts (None: look)."""
    if c.trace is not None and given is None:  # recording a trace (`runtime.replay`; a gang records itself)
        c.trace.chunk(c, lp, flat, words, fwd)
    timed = _timeline(c, lp, flat, words, fwd, given)
    _data(c, lp, flat, words, fwd, given, boxes, live, timed)


def replay_chunk(c: CoreState, lp: LoopPlan, flat: Flat, words: list[Spans], fwd: set[int],
                 mail: dict[int, None] | None = None, boxes: dict[int, np.ndarray] | None = None) -> None:
    """A recorded chunk's values only (`runtime.replay`): the registers, memory values and messages `_execute`
    leaves, without clocks, word states, reader counts or counters but the mvm's data-dependent events."""
    _data(c, lp, flat, words, fwd, mail, boxes, None, None)


Timed = tuple[np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray], int]


def _data(c: CoreState, lp: LoopPlan, flat: Flat, words: list[Spans], fwd: set[int],
          given: dict[int, Any] | None, boxes: dict[int, np.ndarray] | None, live: set[int] | None,
          timed: Timed | None) -> None:
    """`_execute` given its timeline ``timed`` (`_timeline`), or only the values if ``timed`` is None."""
    mem, b, length, n = c.mem, c.regs.shape[1], lp.length, flat.n
    clock, starts, gap, wait, pre = timed if timed is not None else (None, None, None, None, 0)
    mail = given or {}
    writes = set(lp.transient.values())
    passing: dict[int, np.ndarray] = {}  # transient write op -> its (n, words, B) values
    wide = np.empty((lp.rows, n * b), dtype=I64)  # every row the body reads is an invariant or written first
    if lp.invariant.size:
        wide[lp.invariant] = np.tile(c.regs[lp.invariant], (1, n))
    proxy = CoreState(c.tile, c.core, wide, mem, c.fifos, c.epoch, c.code, meter=c.meter, batch=b)
    alu = set(lp.alu)
    counted: list[tuple[Spans, np.ndarray]] = []  # (words, completion times) of every load
    mi = 0
    for p in range(length - 1):
        pc = lp.head + p
        if p in alu:
            fn, ops, lat = c.code[pc]
            proxy.pc = pc + 1
            fn(proxy, ops, lat)
        elif mi < len(lp.mem) and lp.mem[mi].pos == p:
            m, w = lp.mem[mi], words[mi]
            end = starts[p] + lp.lat[p] if starts is not None else None
            if mi in lp.transient:  # the value its write left in this iteration
                vals = passing[lp.transient[mi]]
                if m.kind == "send":
                    _post(c, m, end, vals)
                else:
                    wide[m.reg:m.reg + m.n] = vals.transpose(1, 0, 2).reshape(m.n, n * b)
                if end is None:
                    mem.values[w[0]] = vals[-1]
                else:
                    _leave(mem, w[0], vals[-1], int(end[-1]))
            elif mi in writes:
                if m.kind == "recv":
                    fifo = c.fifos[m.link]
                    passing[mi] = _messages(fifo, n, m.n, b)
                else:
                    passing[mi] = wide[m.reg:m.reg + m.n].reshape(m.n, n, b).transpose(1, 0, 2)
            elif mi in mail:
                assert boxes is not None
                if m.load:
                    wide[m.reg:m.reg + m.n] = boxes[mi].transpose(1, 0, 2).reshape(m.n, n * b)
                else:
                    boxes[mi] = wide[m.reg:m.reg + m.n].reshape(m.n, n, b).transpose(1, 0, 2).copy()
            elif m.load:
                if m.kind == "send":
                    _post(c, m, end, w.read(mem.values))
                else:
                    w.load_into(mem.values, wide[m.reg:m.reg + m.n])
                if end is not None and mi not in fwd and (live is None or mi in live):
                    counted.append((w, end))
            else:
                if m.kind == "recv":
                    fifo = c.fifos[m.link]
                    w.store_rows(mem.values, _messages(fifo, n, m.n, b))
                else:
                    w.store_from(mem.values, wide[m.reg:m.reg + m.n])
                if end is not None:
                    w.fill(mem.valid, True)
                    w.fill(mem.readers, m.count)
                    w.fill(mem.time, end)
            mi += 1
    if lp.written.size:
        c.regs[lp.written] = wide[lp.written, (n - 1) * b:]
    if clock is None or starts is None or gap is None:  # values only (a replay): the registers' final state
        if flat.nest is None:
            for r, (step, _) in lp.steps.items():
                c.regs[r] += I64(n * step)
        else:
            for r, v in flat.scalars.items():
                c.regs[r] = v
        return
    _consume(mem, counted)
    c.epoch[c.tile] += n * len(lp.mem)
    meter = c.meter
    if meter is not None:
        for p in range(length):
            _note(meter, lp.head + p, n, int(starts[p][0]), int(starts[p][-1] + lp.lat[p]))
    if flat.nest is None:
        for r, (step, _) in lp.steps.items():
            c.regs[r] += I64(n * step)
        c.pc = lp.end + 1 if flat.done else lp.head  # a partial chunk ends with the blt taken
    else:
        nest = flat.nest
        for r, v in flat.scalars.items():
            c.regs[r] = v
        if meter is not None:
            ends = np.cumsum(flat.groups)
            firsts = ends - np.array(flat.groups)
            g0, g1 = int(clock[firsts[0]]) - pre, int(clock[firsts[-1]]) - pre  # outer iterations' starts
            for q, lat in enumerate(nest.pre_lat.tolist()):
                off = int(nest.pre_lat[:q].sum())
                _note(meter, nest.head + q, len(flat.groups), g0 + off, g1 + off + lat)
            e0 = int(clock[ends[0]] - gap[ends[0] - 1])  # end of the first and last groups' inner loops
            e1 = int(clock[ends[-1]] - gap[ends[-1] - 1])
            for q, lat in enumerate(nest.post_lat.tolist()):
                off = int(nest.post_lat[:q].sum())
                _note(meter, lp.end + 1 + q, len(flat.groups), e0 + off, e1 + off + lat)
        c.pc = nest.end + 1 if flat.done else nest.head
    if meter is not None:
        _busy(meter, lp, flat, starts, clock, gap, pre)
    c.clock = int(clock[n])


def _messages(fifo: deque[tuple[int, np.ndarray]], n: int, words: int, b: int) -> np.ndarray:
    """The next ``n`` messages of ``fifo`` (taken off it) as one (n, words, B) array."""
    out = np.empty((n, words, b), dtype=I64)
    pop = fifo.popleft
    for k in range(n):
        out[k] = pop()[1]
    return out


def _post(c: CoreState, m: MemOp, end: np.ndarray | None, vals: np.ndarray) -> None:
    """Queue a batched send's messages (one per iteration, ``vals`` (n, words, B), issued ending at ``end``; None:
    a replay, whose arrival times are never read)."""
    q = c.fifos.get(m.link)
    if q is None:
        q = c.fifos[m.link] = deque()
    q.extend(zip((end + m.transit).tolist() if end is not None else [0] * len(vals), vals))
    c.epoch[m.link[1]] += len(vals)


def _leave(mem: TileMemory, w: np.ndarray, last: np.ndarray, time: int) -> None:
    """A fixed span after a chunk passed a value through it every iteration: the last value, read (reader count
    0), invalid since ``time``."""
    mem.values[w] = last
    mem.valid[w] = False
    mem.readers[w] = 0
    mem.time[w] = time


def _busy(meter: Any, lp: LoopPlan, flat: Flat, starts: list[np.ndarray], clock: np.ndarray, gap: np.ndarray,
          pre: int) -> None:
    """Tell the meter when every instruction of the chunk ran (its busy intervals, `CoreMeter.spans`): each body
    position of each iteration, and in a nest each outer iteration's instructions before and after its inner
    loop, at the times the counts above are noted at."""
    lat = np.asarray(lp.lat, dtype=I64)
    s = [np.stack(starts, axis=1).reshape(-1)]  # iteration-major: the order the interpreter issues them in
    e = [s[0] + np.tile(lat, flat.n)]
    if flat.nest is not None:
        ends = np.cumsum(flat.groups)
        firsts = ends - np.array(flat.groups)
        for offsets, lats, at in ((flat.nest.pre_lat, flat.nest.pre_lat, clock[firsts] - pre),
                                  (flat.nest.post_lat, flat.nest.post_lat, clock[ends] - gap[ends - 1])):
            off = np.concatenate([[0], np.cumsum(offsets)[:-1]]).astype(I64)
            grid = (at[:, None] + off[None, :]).reshape(-1)
            s.append(grid)
            e.append(grid + np.tile(np.asarray(lats, dtype=I64), len(at)))
    st, en = np.concatenate(s), np.concatenate(e)
    if flat.nest is None:  # iteration-major is issue order already
        meter.spans(st, en)
        return
    order = np.argsort(st, kind="stable")
    meter.spans(st[order], en[order])


def _note(meter: Any, pc: int, times: int, first: int, last: int) -> None:
    """Tell the meter that ``pc`` ran ``times`` times, first issued at ``first``, last completed at ``last``."""
    meter.counts[pc] += times
    if meter.first[pc] < 0:
        meter.first[pc] = first
    meter.last[pc] = last


def _consume(mem: TileMemory, loads: list[tuple[Spans, np.ndarray]]) -> None:
    """The reader counts of the batch's loads: each read of a word with a positive count decrements it; a word
    reaching 0 becomes invalid at its last read's completion (`run_batched` made sure no read comes later)."""
    live_loads = [(w, t) for w, t in loads if w.reduce(mem.readers, np.maximum).max() > 0]
    if not live_loads:
        return
    w = np.concatenate([x.index().reshape(-1) for x, _ in live_loads])
    t = np.concatenate([np.repeat(y, x.width) for x, y in live_loads])
    live = mem.readers[w] > 0
    w, t = w[live], t[live]
    uniq, inv = np.unique(w, return_inverse=True)
    hits = np.bincount(inv, minlength=uniq.size)
    latest = np.full(uniq.size, np.iinfo(I64).min, dtype=I64)
    np.maximum.at(latest, inv, t)
    mem.readers[uniq] -= hits
    gone = mem.readers[uniq] == 0
    mem.valid[uniq[gone]] = False
    mem.time[uniq[gone]] = latest[gone]
