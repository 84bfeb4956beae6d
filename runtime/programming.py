"""Reprogramming: the ``prog`` instruction and the load-time rule on programmed MVMUs (docs/cost-model.md,
"Reprogramming rounds").

``prog mask=M`` writes the image of each selected MVMU of the core (``image.npz``, held in the off-chip weight
buffer) into its crossbars. An MVMU that some prog of its core selects holds no weights before the first such
prog in code order, so an ``mvm`` that fires it earlier faults (`unprogrammed`); an MVMU no prog selects is
programmed before the run, free, as in a program without prog. Images are bound at load time, so the handler
itself changes no state: its latency and its write energy (charged once per batch) come from the cost unit
``prog`` (`isa.costs`), its writes per crossbar from the accountant's ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from isa import Instr, ops

from .state import CoreState, Fault

if TYPE_CHECKING:
    from .handlers import DecodeContext


def decode_prog(i: ops.Prog, ctx: "DecodeContext") -> ops.Prog:
    """Check that every MVMU the prog selects exists and has an image to write."""
    hw = ctx.hw
    if i.mask >> hw.mvmus_per_core:
        raise Fault(f"prog mask {i.mask:#b} selects an MVMU >= {hw.mvmus_per_core} (MVMUs per core)")
    for k in range(hw.mvmus_per_core):
        if i.mask >> k & 1 and k not in ctx.kernels:
            raise Fault(f"prog selects MVMU {k} of tile {ctx.tile} core {ctx.core}, which has no image in the "
                        f"weight buffer")
    return i


def run_prog(c: CoreState, i: ops.Prog, lat: int) -> None:
    """The selected MVMUs now hold their images (bound at load time; the cost is the unit's)."""


def prog_mask(instrs: list[Instr]) -> int:
    """The MVMUs some prog of the code selects."""
    mask = 0
    for ins in instrs:
        if isinstance(ins, ops.Prog):
            mask |= ins.mask
    return mask


def unprogrammed(instrs: list[Instr]) -> dict[int, str]:
    """pc -> fault message for every mvm that fires, before the first prog selecting it in code order, an MVMU
    that a prog of this code programs."""
    later, done, faults = prog_mask(instrs), 0, {}
    for pc, ins in enumerate(instrs):
        if isinstance(ins, ops.Prog):
            done |= ins.mask
        elif isinstance(ins, ops.Mvm) and ins.mask & later & ~done:
            k = (ins.mask & later & ~done).bit_length() - 1
            faults[pc] = f"mvm fires MVMU {k} before the prog that writes its weights (it holds none yet)"
    return faults
