"""Trace replay: a program's schedule recorded once per batch size, then replayed as its data operations only.

Why it is legal. In a program whose branch operands and memory base registers are written only by scalar
``set``/``iaddi``/``iadd``/``isub``/``imul`` from such registers (`data_independent`: no loaded, received or
computed value ever reaches control flow or an address), everything the scheduler decides is a function of the
program and the batch size alone: which core runs when, where every core blocks, every address, every valid bit,
reader count and word time, every chunk fast mode batches (`runtime.loops`, `runtime.gangs`), the clocks and every
counter except the mvm's DAC pulses and driven cell levels, which come from the input digits. So the first run at a
batch size (fast mode, as always) records, in execution order, what changed values: every interpreted
instruction that completed (with its resolved address) and every batched chunk and gang chunk (with its
iterations and words), plus the state its counters ended in. Later runs at that batch size replay the records on
a fresh state, doing only the value work (register and memory values, messages, the mvm's products and its
data-dependent events), and take the clocks, counts, first issue and last completion per pc and busy intervals
from the recording. Outputs and every counter equal the recorded run's schedule applied to the new data, which
is what the interpreter computes (`tests/test_runtime_fast_replay.py` checks it against the reference
interpreter, integer for integer and counter for counter).

Not replayed (the run records or runs as before): reference mode, non-ideal devices (read noise drawn per
firing), a budget of fewer instructions than the recorded run executed, programs that fail `data_independent`,
and traces longer than ``MAX_ACTIONS`` steps (not kept).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from isa import NO_BASE, HardwareConfig, Instr, MemRef

from .loops import Flat, LoopPlan, Spans, replay_chunk
from .state import CoreState, MachineState

MAX_ACTIONS = 4_000_000  # a trace with more steps than this is dropped (its memory would grow with the program)
MAX_TRACES = 4  # batch sizes a machine keeps a trace for (the oldest is dropped first)

# step kinds
_HANDLER, _LOAD, _STORE, _SEND, _RECV, _CHUNK, _GANG, _SKIP = range(8)
_SCALAR = {"set", "iaddi", "iadd", "isub", "imul"}
_CONTROL = {"beq", "bne", "blt"}
_NO_VALUES = {"jmp", "beq", "bne", "blt", "halt", "prog", "free"}  # nothing a replay must redo
_KNOWN = {"mvm", "prog", "add", "sub", "mul", "min", "max", "addi", "muli", "mini", "maxi", "shli", "shri", "relu",
          "sig", "tanh", "rqnt", "copy", "load", "store", "peek", "free", "send", "recv"} | _SCALAR | _CONTROL | {
          "jmp", "halt"}


def mem_operand(i: Instr) -> MemRef | None:
    """The memory operand of ``i`` (None: it has none)."""
    for f in i.spec.fields:
        if f.kind == "mem":
            ref: MemRef = getattr(i, f.name)
            return ref
    return None


def _written(i: Instr, hw: HardwareConfig) -> range | list[int]:
    """The registers ``i`` writes."""
    if i.op == "mvm":
        mask = int(getattr(i, "mask"))
        return [r for k in range(hw.mvmus_per_core) if mask >> k & 1
                for r in range(hw.mvmu_out(k), hw.mvmu_out(k) + hw.xbar_cols)]
    names = {f.name for f in i.spec.fields}
    if "d" not in names:
        return []
    d, n = int(getattr(i, "d")), int(getattr(i, "n", 1))
    return range(d, d + n)


def data_independent(instrs: Sequence[Instr], hw: HardwareConfig) -> str | None:
    """None if no value computed from data can reach a branch operand or a memory base register of this core's
    code (module docstring), else why not. Flow-insensitive: a register is data if any instruction writing it
    is not a scalar op of non-data registers."""
    control: set[int] = set()
    for i in instrs:
        if i.op not in _KNOWN:
            return f"instruction {i.op!r} is not one the replay knows"
        if i.op in _CONTROL:
            control |= {int(getattr(i, "a")), int(getattr(i, "b"))}
        ref = mem_operand(i)
        if ref is not None and ref.base != NO_BASE:
            control.add(ref.base)
    tainted: set[int] = set()
    for i in instrs:
        if i.op not in _SCALAR:
            tainted.update(_written(i, hw))
    changed = True
    while changed:
        changed = False
        for i in instrs:
            if i.op in ("iaddi", "iadd", "isub", "imul"):
                srcs = {int(getattr(i, "a"))} | ({int(getattr(i, "b"))} if i.op != "iaddi" else set())
                d = int(getattr(i, "d"))
                if d not in tainted and srcs & tainted:
                    tainted.add(d)
                    changed = True
    hit = sorted(control & tainted)
    return None if not hit else f"register r{hit[0]} is a branch operand or memory base and may hold data"


def templates(instrs: Sequence[Instr], code: Sequence[tuple[Any, Any, int]]) -> list[tuple[Any, ...]]:
    """Per pc: how a replay redoes the instruction, less its resolved address (`Trace.step` adds it)."""
    out: list[tuple[Any, ...]] = []
    for i, (fn, ops, lat) in zip(instrs, code):
        op, n = i.op, int(getattr(i, "n", 1))
        if op in _NO_VALUES:
            out.append((_SKIP,))
        elif op in ("load", "peek"):
            out.append((_LOAD, int(getattr(i, "d")), n))
        elif op == "store":
            out.append((_STORE, int(getattr(i, "a")), n))
        elif op == "send":
            out.append((_SEND, n, None))  # the link is filled in by `Trace.step` (the core's tile)
        elif op == "recv":
            out.append((_RECV, n, None))
        else:
            out.append((_HANDLER, fn, ops, lat))
    return out


@dataclass
class CoreEnd:
    """A core's state at the end of a recorded run: clock and its meter's data-independent fields."""

    clock: int
    counts: list[int]
    first: list[int]
    last: list[int]
    busy_runs: list[int]
    run_start: int
    run_end: int


@dataclass
class Trace:
    """One recorded run at one batch size (module docstring): its steps in execution order, the tile memories'
    sizes and every core's end state."""

    batch: int
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    templates: list[list[tuple[Any, ...]]] = field(default_factory=list)
    ends: list[CoreEnd] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)
    instructions: int = 0
    batched: int = 0
    overflow: bool = False

    # ---- recording (called by Machine._run_core, runtime.loops._execute, runtime.gangs._try_gang) -------------
    def step(self, c: CoreState, pc: int, addr: int, instr: Instr) -> None:
        """Interpreted instruction ``pc`` of core ``c`` completed (``addr``: its memory operand's address)."""
        t = self.templates[c.index][pc]
        k = t[0]
        if k == _SKIP:
            return
        if k == _HANDLER:
            self._add((_HANDLER, c.index, pc, t[1], t[2], t[3]))
        elif k in (_LOAD, _STORE):
            self._add((k, c.index, t[1], addr, t[2]))
        else:
            link = (c.tile, int(getattr(instr, "tile")), int(getattr(instr, "ch")))
            if k == _RECV:
                link = (link[1], link[0], link[2])
            self._add((k, c.index, addr, t[1], link))

    def chunk(self, c: CoreState, lp: LoopPlan, flat: Flat, words: list[Spans], fwd: set[int]) -> None:
        """A lone batched chunk ran on ``c``."""
        self._add((_CHUNK, c.index, lp, flat, words, fwd))

    def gang(self, plan: Any, boxes_of: list[frozenset[int]],
             members: list[tuple[CoreState, LoopPlan, Flat, list[Spans], set[int]]]) -> None:
        """A gang's chunk ran (`runtime.gangs._try_gang`): its members' chunks and mailboxes."""
        self._add((_GANG, -1, plan, boxes_of, [(c.index, lp, flat, words, fwd) for c, lp, flat, words, fwd
                                                in members]))

    def _add(self, s: tuple[Any, ...]) -> None:
        if self.overflow:
            return
        if len(self.steps) >= MAX_ACTIONS:
            self.overflow, self.steps = True, []
            return
        self.steps.append(s)

    def finish(self, st: MachineState, batched: int) -> None:
        """Keep the end state of the recorded run ``st``."""
        for c in st.cores:
            m = c.meter
            assert m is not None, "a core without its cost listener"
            self.ends.append(CoreEnd(c.clock, list(m.counts), list(m.first), list(m.last), list(m.busy_runs),
                                     m._run_start, m._run_end))
        self.sizes = {t: len(mem.values) for t, mem in st.memories.items()}
        self.instructions = sum(sum(e.counts) for e in self.ends)
        self.batched = batched
        self.templates = []  # only needed while recording

    # ---- replaying -----------------------------------------------------------------------------------------------
    def replay(self, st: MachineState) -> None:
        """Redo the recorded run's value work on the fresh state ``st`` (same program and batch size, memories
        made by `Machine` of `sizes`, values only), then set every core's clock and counters to the recorded
        ones (the mvm's events accrue during the replay)."""
        cores, fifos = st.cores, st.fifos
        for s in self.steps:
            k = s[0]
            if k == _HANDLER:
                c = cores[s[1]]
                c.pc = s[2] + 1
                s[3](c, s[4], s[5])
            elif k == _CHUNK:
                replay_chunk(cores[s[1]], *s[2:])
            elif k == _LOAD:
                _, ci, d, a, n = s
                c = cores[ci]
                c.regs[d:d + n] = c.mem.values[a:a + n]
            elif k == _STORE:
                _, ci, r, a, n = s
                c = cores[ci]
                c.mem.values[a:a + n] = c.regs[r:r + n]
            elif k == _SEND:
                _, ci, a, n, link = s
                q = fifos.get(link)
                if q is None:
                    q = fifos[link] = deque()
                q.append((0, cores[ci].mem.values[a:a + n].copy()))
            elif k == _RECV:
                _, ci, a, n, link = s
                cores[ci].mem.values[a:a + n] = fifos[link].popleft()[1]
            else:
                _replay_gang(cores, s[2], s[3], s[4])
        for c, e in zip(cores, self.ends):
            c.clock, c.halted = e.clock, True
            m = c.meter
            assert m is not None, "a core without its cost listener"
            m.counts, m.first, m.last = list(e.counts), list(e.first), list(e.last)
            m.busy_runs, m._run_start, m._run_end = list(e.busy_runs), e.run_start, e.run_end


def _replay_gang(cores: list[CoreState], plan: Any, boxes_of: list[frozenset[int]],
                 members: list[tuple[int, LoopPlan, Flat, list[Spans], set[int]]]) -> None:
    """`runtime.gangs._try_gang`'s value work: members in producer order, mailbox values passed in arrays, each
    mailbox left with its last value."""
    boxes: list[dict[int, np.ndarray]] = [{} for _ in members]
    for i in plan.order:
        for b in plan.boxes:
            if b.consumer == i:
                boxes[i][b.load] = boxes[b.producer][b.store]
        ci, lp, flat, words, fwd = members[i]
        replay_chunk(cores[ci], lp, flat, words, fwd, dict.fromkeys(boxes_of[i]), boxes[i])
    for b in plan.boxes:
        ci, _, _, words, _ = members[b.producer]
        cons = cores[members[b.consumer][0]]
        cons.mem.values[words[b.store][0]] = boxes[b.producer][b.store][-1]
