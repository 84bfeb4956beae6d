"""The precision-independent costs of a program, read from the program itself instead of a runtime run
(issue 20, part 6; docs/search.md, "Cost model").

The compiler's control flow is affine: loop counters and addresses live in registers set by ``set`` and moved
by ``iadd``/``iaddi``/``isub``/``imul``, and every branch compares such registers. `execution_counts` follows
that flow per core without touching any data (a register written by a vector, memory or MVM instruction is
unknown, and a branch reading one is an error), so it finds how often each instruction runs; a loop whose body
is straight-line code with only ``iaddi r, r, imm`` induction updates is skipped over in closed form. The cost
table (`isa.costs.instr_cost`) then gives each instruction's latency and energy, all static except the MVMs',
which `CostModel` computes from the precision. `program_profile` sums them per node (the ONNX node or the
tensor an instruction moves) and core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from isa import ops
from isa.costs import CostContext, instr_cost
from isa.errors import XbarcError
from isa.program import CoreCode, Instr, Program

_SCALAR = (ops.Set, ops.Iadd, ops.Iaddi, ops.Isub, ops.Imul, ops.Copy)
_BRANCH = (ops.Beq, ops.Bne, ops.Blt)
_WAITS = (ops.Load, ops.Peek, ops.Free, ops.Send, ops.Recv)  # may wait for words another core writes
MAX_STEPS = 50_000_000  # instructions one core may walk (a loop that never ends is a compiler bug)


class StaticFlowError(XbarcError):
    """A program whose control flow depends on data (cannot be counted statically)."""


def _writes(i: Instr) -> range:
    """Registers an instruction writes (its ``d`` field, n lanes wide where it has ``n``)."""
    names = [f.name for f in i.spec.fields]
    if "d" not in names:
        return range(0)
    d = int(getattr(i, "d"))
    return range(d, d + (int(getattr(i, "n")) if "n" in names else 1))


def _scalar(i: Instr, regs: dict[int, int | None]) -> None:
    """Apply one scalar instruction to the known register values (None: unknown)."""
    if isinstance(i, ops.Set):
        regs[i.d] = int(i.imm)
        return
    if isinstance(i, ops.Copy):
        vals = [regs.get(i.a + k, 0) for k in range(i.n)]
        for k, v in enumerate(vals):
            regs[i.d + k] = v
        return
    a = regs.get(i.a, 0)
    b: int | None = int(i.imm) if isinstance(i, ops.Iaddi) else regs.get(getattr(i, "b"), 0)
    if a is None or b is None:
        regs[i.d] = None
    elif isinstance(i, (ops.Iadd, ops.Iaddi)):
        regs[i.d] = a + b
    elif isinstance(i, ops.Isub):
        regs[i.d] = a - b
    else:
        regs[i.d] = a * b


def _taken(i: Instr, regs: dict[int, int | None], where: str) -> bool:
    a, b = regs.get(i.a, 0), regs.get(i.b, 0)  # type: ignore[attr-defined]
    if a is None or b is None:
        raise StaticFlowError(f"{where}: branch on a data register: the program's control flow is not static")
    if isinstance(i, ops.Beq):
        return a == b
    if isinstance(i, ops.Bne):
        return a != b
    return a < b


@dataclass(frozen=True)
class _Loop:
    """A closed-form loop ``head .. blt``: its induction registers and their steps."""

    steps: dict[int, int]


def _simple_loop(code: Sequence[Instr], head: int, end: int) -> _Loop | None:
    """The loop ``head .. end`` (``end`` its closing ``blt cnt, bound``) if it is straight-line code whose
    scalar updates are ``iaddi r, r, imm`` only, its counter is one of them (step > 0) and nothing in it
    writes the bound."""
    blt = code[end]
    steps: dict[int, int] = {}
    written: set[int] = set()
    for i in code[head:end]:
        if isinstance(i, _BRANCH + (ops.Jmp, ops.Halt)):
            return None
        if isinstance(i, _SCALAR):
            if not (isinstance(i, ops.Iaddi) and i.d == i.a) or i.d in steps:
                return None
            steps[i.d] = int(i.imm)
        else:
            written.update(_writes(i))
    cnt, bound = blt.a, blt.b  # type: ignore[attr-defined]
    if steps.get(cnt, 0) <= 0 or bound in steps or bound in written or written & set(steps):
        return None
    return _Loop(steps)


def execution_counts(core: CoreCode, where: str = "") -> list[int]:
    """How often each instruction of ``core`` runs (see the module docstring)."""
    code = core.instrs
    counts = [0] * len(code)
    regs: dict[int, int | None] = {}
    loops: dict[tuple[int, int], _Loop | None] = {}
    pc, steps = 0, 0
    while 0 <= pc < len(code):
        i = code[pc]
        counts[pc] += 1
        steps += 1
        if steps > MAX_STEPS:
            raise StaticFlowError(f"{where}: more than {MAX_STEPS} instructions walked; a loop that never ends?")
        if isinstance(i, ops.Halt):
            break
        if isinstance(i, ops.Jmp):
            pc = i.target
            continue
        if isinstance(i, _BRANCH):
            if not _taken(i, regs, f"{where} pc {pc}"):
                pc += 1
                continue
            target = int(i.target)
            if isinstance(i, ops.Blt) and target <= pc:
                key = (target, pc)
                if key not in loops:
                    loops[key] = _simple_loop(code, target, pc)
                lp = loops[key]
                if lp is not None:  # the remaining iterations at once
                    cnt, bound = regs.get(i.a, 0), regs.get(i.b, 0)
                    step = lp.steps[i.a]
                    m = -(-(bound - cnt) // step)  # type: ignore[operator]
                    for k in range(target, pc + 1):
                        counts[k] += m
                    for r, s in lp.steps.items():
                        v = regs.get(r, 0)
                        regs[r] = None if v is None else v + m * s
                    steps += m * (pc + 1 - target)
                    pc += 1
                    continue
            pc = target
            continue
        if isinstance(i, _SCALAR):
            _scalar(i, regs)
        else:
            for r in _writes(i):
                regs[r] = None
        pc += 1
    return counts


@dataclass
class Profile:
    """A program's static costs per inference, MVMs left out: busy cycles per (node, "T.C" core), the part of
    them spent before the core's first instruction that can wait for another core (``prologue``: it runs at
    once) and before its last one (``lead``: a dense layer loads its first inputs while the rest are still being
    computed), energy per component, and the MVM instructions each node's cores run (count per (node, core))."""

    busy: dict[tuple[str, str], float] = field(default_factory=dict)
    prologue: dict[tuple[str, str], float] = field(default_factory=dict)
    lead: dict[tuple[str, str], float] = field(default_factory=dict)  # before the core's last possible wait
    energy: dict[str, float] = field(default_factory=dict)
    mvms: dict[tuple[str, str], int] = field(default_factory=dict)

    def nodes(self) -> list[str]:
        """Every node with instructions, in first-seen order."""
        return list(dict.fromkeys(n for n, _ in list(self.busy) + list(self.mvms)))

    def node_busy(self, node: str) -> dict[str, float]:
        """Busy cycles of ``node`` per core."""
        return {c: v for (n, c), v in self.busy.items() if n == node}

    def node_prologue(self, node: str) -> dict[str, float]:
        """Prologue cycles of ``node`` per core."""
        return {c: v for (n, c), v in self.prologue.items() if n == node}

    def node_lead(self, node: str) -> dict[str, float]:
        """Cycles of ``node`` per core before the core's last instruction that can wait."""
        return {c: v for (n, c), v in self.lead.items() if n == node}


def program_profile(program: Program) -> Profile:
    """The `Profile` of ``program`` (every core's `execution_counts` times the cost table)."""
    hw = program.hw
    out = Profile()
    for core in program.cores:
        name = f"{core.tile}.{core.core}"
        ctx = CostContext(hw, core.tile, {})
        counts = execution_counts(core, f"{program.filename}: core {name}")
        waits = [pc for pc, i in enumerate(core.instrs) if counts[pc] and isinstance(i, _WAITS)]
        first, last = (waits[0], waits[-1]) if waits else (len(counts), len(counts))
        for pc, (i, n) in enumerate(zip(core.instrs, counts)):
            if not n:
                continue
            key = (i.node or "-", name)
            if isinstance(i, ops.Mvm):
                out.mvms[key] = out.mvms.get(key, 0) + n
                continue
            cost = instr_cost(i, ctx)
            out.busy[key] = out.busy.get(key, 0.0) + n * cost.cycles
            if pc < first:  # straight-line code before the first wait (no loop reaches back over a wait)
                out.prologue[key] = out.prologue.get(key, 0.0) + n * cost.cycles
            if pc < last:
                out.lead[key] = out.lead.get(key, 0.0) + n * cost.cycles
            for k, v in cost.energy.items():
                out.energy[k] = out.energy.get(k, 0.0) + n * v
    return out
