"""Pixel loops: a two-level loop over output pixels whose pointer registers advance by row and pixel strides,
so program size does not depend on the image size. Loop counters and pointers live at the top of the register
file (`LoopRegs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from isa import NO_BASE, Instr, MemRef, ops
from isa.hardware import HardwareConfig

Pointer = tuple[int, int, int]  # (start address, row step, pixel step)


#: The top registers of a core that loops use: 4 counters and bounds, 3 (pointer, row start) pairs (`LoopRegs`).
LOOP_REGS = 10


def required_data_regs(hw: HardwareConfig) -> int:
    """Data registers a core needs: a crossbar core holds the bias of each column block it owns (at most one per
    MVMU) and one partial sum, under the loop registers; a vector core needs two words besides those."""
    return (hw.mvmus_per_core + 1) * hw.xbar_cols + LOOP_REGS


@dataclass(frozen=True)
class LoopRegs:
    """Row and column counters, their limits, and (pointer, row start) register pairs for up to three pointers."""

    h: int
    w: int
    hm: int
    wm: int
    ptrs: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, hw: HardwareConfig) -> "LoopRegs":
        """The convention: the last registers of the file."""
        top = hw.core_regs
        regs = cls(top - 1, top - 2, top - 3, top - 4, tuple((top - 5 - 2 * i, top - 6 - 2 * i) for i in range(3)))
        assert top - min(r for pair in regs.ptrs for r in pair) == LOOP_REGS
        return regs


def pixel_loop(out: list[Instr], regs: LoopRegs, oh: int, ow: int, ptrs: list[Pointer],
               body: Callable[[list[MemRef]], None], spatial: bool = True, node: str | None = None) -> None:
    """Append to ``out`` a loop running ``body`` for each of oh x ow pixels; the body appends to ``out`` too and
    receives the current pointers as memory operands. Without ``spatial`` (a single pixel), no loop."""
    if not spatial:
        body([MemRef(NO_BASE, start) for start, _, _ in ptrs])
        return
    pairs = regs.ptrs[:len(ptrs)]
    out += [ops.set(d=regs.h, imm=0, node=node), ops.set(d=regs.hm, imm=oh, node=node),
            ops.set(d=regs.wm, imm=ow, node=node)]
    out += [ops.set(d=row, imm=0, node=node) for (_, row), _ in zip(pairs, ptrs)]
    top = len(out)
    out += [ops.iaddi(d=ptr, a=row, imm=0, node=node) for ptr, row in pairs]
    out.append(ops.set(d=regs.w, imm=0, node=node))
    inner = len(out)
    body([MemRef(ptr, start) for (ptr, _), (start, _, _) in zip(pairs, ptrs)])
    out += [ops.iaddi(d=ptr, a=ptr, imm=step, node=node) for (ptr, _), (_, _, step) in zip(pairs, ptrs)]
    out += [ops.iaddi(d=regs.w, a=regs.w, imm=1, node=node), ops.blt(a=regs.w, b=regs.wm, target=inner, node=node)]
    out += [ops.iaddi(d=row, a=row, imm=rstep, node=node) for (_, row), (_, rstep, _) in zip(pairs, ptrs)]
    out += [ops.iaddi(d=regs.h, a=regs.h, imm=1, node=node), ops.blt(a=regs.h, b=regs.hm, target=top, node=node)]
