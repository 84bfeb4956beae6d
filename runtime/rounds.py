"""Running a model compiled in reprogramming rounds (docs/cost-model.md, "Reprogramming rounds").

A model whose weights need more crossbars than the chip has is compiled as a sequence of programs, one per round,
each fitting the chip: its cores first ``prog`` their MVMUs with the round's weights, then run the round's layers.
`run_rounds` executes the rounds in order, each over the **whole batch** (so each round's writes are spent once per
batch and amortized over it): the tensors a round produces for later rounds are spilled to the off-chip buffer
(``offchip_pj_per_bit`` per bit written and per bit read back, over the off-chip link at ``offchip_bits_per_ns``)
and written into the next round's tile memories as its inputs. The tile memories start empty in every round.

The combined `Stats` add up the rounds: energy per component (with ``program`` for the crossbar writes and the
weight images read from the buffer, ``spill`` for the activations), per instruction and per layer (layer times
shifted by the rounds before); ``cycles`` is the latency of one inference through every round, programming and
one inference's spill transfers included; ``per_core_busy`` sums each physical core's busy cycles over the
rounds; ``rounds`` has one entry per round.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from isa import Program, TensorLoc, XbarcError

from .machine import Machine, RunResult
from .stats import Stats


def spill_cost(prog: Program, loc: TensorLoc, reads: int) -> tuple[float, int]:
    """(energy per inference in pJ, cycles) of spilling one inference's ``loc`` off chip and reading it back
    ``reads`` times: its values (border excluded) at ``loc.bits`` bits each way, over the off-chip link."""
    c = prog.hw.costs
    bits = int(np.prod(loc.shape)) * loc.bits
    moved = bits * (1 + reads)
    return moved * c.offchip_pj_per_bit, prog.hw.cycles(moved / c.offchip_bits_per_ns)


def _repack(src: TensorLoc, words: np.ndarray, dst: TensorLoc) -> np.ndarray:
    """Words stored at ``src`` -> the words of ``dst`` (same tensor, its own border), formats checked."""
    if (src.bits, src.frac, tuple(src.shape)) != (dst.bits, dst.frac, tuple(dst.shape)):
        raise XbarcError(f"rounds: tensor {dst.name!r} is stored as Q({src.bits}, {src.frac}) {tuple(src.shape)} "
                         f"but read as Q({dst.bits}, {dst.frac}) {tuple(dst.shape)}")
    return dst.pack(src.unpack(words))


def run_rounds(programs: list[Program], inputs: dict[str, np.ndarray], outputs: list[str] | None = None,
               **run_args: Any) -> RunResult:
    """Run ``programs`` (the rounds, in order) on a batch: ``inputs`` are the stored words of the first round's
    inputs (as `Machine.run` takes them); returns the ``outputs`` named (default: the last round's) and the
    combined statistics (module docstring). ``run_args`` go to every `Machine.run`."""
    if not programs:
        raise XbarcError("rounds: no program to run")
    held: dict[str, tuple[TensorLoc, np.ndarray]] = {}
    readers = {loc.name: sum(loc.name in {i.name for i in p.inputs} for p in programs) for p in programs
               for loc in p.outputs}
    parts: list[tuple[Stats, float, int]] = []
    for r, prog in enumerate(programs):
        missing = [loc.name for loc in prog.inputs if r and loc.name not in held]
        if missing:
            raise XbarcError(f"rounds: round {r} reads {missing}, which no earlier round produced")
        feeds = inputs if r == 0 else {loc.name: _repack(*held[loc.name], loc) for loc in prog.inputs}
        res = Machine(prog).run(feeds, **run_args)
        spill_pj, spill_cycles = 0.0, 0
        for loc in prog.outputs:
            held[loc.name] = (loc, res.outputs[loc.name])
            if readers.get(loc.name):
                pj, cyc = spill_cost(prog, loc, readers[loc.name])
                spill_pj, spill_cycles = spill_pj + pj, spill_cycles + cyc
        parts.append((res.stats, spill_pj, spill_cycles))
    names = outputs if outputs is not None else [loc.name for loc in programs[-1].outputs]
    absent = [n for n in names if n not in held]
    if absent:
        raise XbarcError(f"rounds: no round produces output(s) {absent}")
    return RunResult({n: held[n][1] for n in names}, combine(parts))


def combine(parts: list[tuple[Stats, float, int]]) -> Stats:
    """The statistics of rounds run one after the other: (round stats, spill energy, spill cycles) each."""
    out = Stats(batch=parts[0][0].batch)
    clock = 0
    for r, (s, spill_pj, spill_cycles) in enumerate(parts):
        for k, v in s.per_component.items():
            out.per_component[k] = out.per_component.get(k, 0.0) + v
        if spill_pj:
            out.per_component["spill"] = out.per_component.get("spill", 0.0) + spill_pj
        for op, d in s.per_instruction.items():
            acc = out.per_instruction.setdefault(op, {"count": 0, "energy_pj": 0.0, "cycles": 0})
            for k in acc:
                acc[k] += d[k]
        for layer, d in s.per_layer.items():
            _add_layer(out.per_layer, layer, d, clock)
        for core, c in s.per_core.items():
            out.per_core[f"r{r}:{core}"] = clock + c
        for core, b in s.per_core_busy.items():
            out.per_core_busy[core] = out.per_core_busy.get(core, 0) + b
        for key, row in s.writes.items():
            have = out.writes.setdefault(key, [])
            have.extend([0] * (len(row) - len(have)))
            for a, n in enumerate(row):
                have[a] += n
        out.cells_written += s.cells_written
        out.program_cycles += s.program_cycles
        out.dynamic_instructions += s.dynamic_instructions
        out.rounds.append({"round": r, "start": clock, "cycles": s.cycles, "program_cycles": s.program_cycles,
                           "spill_cycles": spill_cycles, "pipeline_interval": s.pipeline_interval,
                           "energy_pj": s.energy_pj + spill_pj,
                           "program_pj": s.per_component.get("program", 0.0), "spill_pj": spill_pj,
                           "cells_written": s.cells_written})
        clock += s.cycles + spill_cycles
    out.cycles = clock
    out.energy_pj = sum(out.per_component.values())
    return out


def _add_layer(per_layer: dict[str, dict[str, float]], layer: str, d: dict[str, float], offset: int) -> None:
    acc = per_layer.get(layer)
    if acc is None:
        per_layer[layer] = dict(d) | {"start": d["start"] + offset, "end": d["end"] + offset}
        return
    for k in ("energy_pj", "busy_cycles", "instructions"):
        acc[k] += d[k]
    acc["start"] = min(acc["start"], d["start"] + offset)
    acc["end"] = max(acc["end"], d["end"] + offset)
