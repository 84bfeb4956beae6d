"""Running a model compiled in reprogramming rounds (docs/cost-model.md, "Reprogramming rounds").

A model whose weights need more crossbars than the chip has is compiled as a sequence of programs, one per round,
each fitting the chip: its cores first ``prog`` their MVMUs with the round's weights, then run the round's layers.
`run_rounds` executes the rounds in order, each over the **whole batch** (so each round's writes are spent once per
batch and amortized over it): the tensors a round produces for later rounds are spilled to the off-chip buffer
(``offchip_pj_per_bit`` per bit written and per bit read back, over the off-chip link at ``offchip_bits_per_ns``)
and written into the tile memories of the rounds that read them (graph inputs too, which the first round gets
from the host); the column parts of a layer split across rounds are joined there. The tile memories start empty in every round.

The combined `Stats` add up the rounds: energy per component (with ``program`` for the crossbar writes and the
weight images read from the buffer, ``spill`` for the activations), per instruction and per layer (layer times
shifted by the rounds before); ``cycles`` is the latency of one inference through every round, programming and
one inference's spill transfers included (a tensor the round's program takes in or sends out through the host port
costs the buffer access's energy here and its time in the round, `isa.inport`); ``per_core_busy`` sums each physical core's busy cycles over the
rounds; ``rounds`` has one entry per round.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from isa import Program, TensorLoc, XbarcError

from .machine import Machine, RunResult
from .stats import Stats


def transfer_cost(prog: Program, loc: TensorLoc) -> tuple[float, int]:
    """(energy per inference in pJ, cycles) of moving one inference's ``loc`` to or from the off-chip buffer: its
    values (border excluded) at ``loc.bits`` bits over the off-chip link."""
    c = prog.hw.costs
    bits = int(np.prod(loc.shape)) * loc.bits
    return bits * c.offchip_pj_per_bit, prog.hw.cycles(bits / c.offchip_bits_per_ns)


def _repack(held: list[tuple[TensorLoc, np.ndarray]], dst: TensorLoc) -> np.ndarray:
    """The words of ``dst`` from the words stored at the ``held`` locations: one, the same tensor with its own
    border, or the column parts of a split layer, joined along channels (axis 1 of the ONNX layout); formats
    checked."""
    parts = []
    for src, words in held:
        if (src.bits, src.frac, tuple(src.shape[1:])) != (dst.bits, dst.frac, tuple(dst.shape[1:])):
            raise XbarcError(f"rounds: tensor {dst.name!r} is read as Q({dst.bits}, {dst.frac}) "
                             f"{tuple(dst.shape)} but {src.name!r} is stored as Q({src.bits}, {src.frac}) "
                             f"{tuple(src.shape)}")
        parts.append(src.unpack(words))
    x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    if tuple(x.shape[1:]) != tuple(dst.shape):
        raise XbarcError(f"rounds: tensor {dst.name!r} joins to shape {tuple(x.shape[1:])}, not {tuple(dst.shape)}")
    return dst.pack(x)


def run_rounds(programs: list[Program], inputs: dict[str, np.ndarray], outputs: list[str] | None = None,
               joins: dict[str, list[str]] | None = None, reference: bool = False, **run_args: Any) -> RunResult:
    """Run ``programs`` (the rounds, in order) on a batch: ``inputs`` are the stored words of the first round's
    inputs (as `Machine.run` takes them); returns the ``outputs`` named (default: the last round's) and the
    combined statistics (module docstring). ``joins`` names the column parts a value is joined from (a layer
    split across rounds); ``reference``: one instruction at a time (`Machine`); ``run_args`` go to every
    `Machine.run`."""
    if not programs:
        raise XbarcError("rounds: no program to run")
    joins = joins or {}
    joined = {part: value for value, names in joins.items() for part in names}
    held: dict[str, tuple[TensorLoc, np.ndarray]] = {loc.name: (loc, inputs[loc.name]) for loc in programs[0].inputs
                                                    if loc.name in inputs}
    parts: list[tuple[Stats, float, int]] = []
    for r, prog in enumerate(programs):
        sources = {loc.name: joins.get(loc.name, [loc.name]) for loc in prog.inputs}
        missing = [n for names in sources.values() for n in names if r and n not in held]
        if missing:
            raise XbarcError(f"rounds: round {r} reads {missing}, which no earlier round produced")
        feeds = inputs if r == 0 else {loc.name: _repack([held[n] for n in sources[loc.name]], loc)
                                       for loc in prog.inputs}
        res = Machine(prog, reference=reference, once=True).run(feeds, **run_args)
        read_later = {i.name for p in programs[r + 1:] for i in p.inputs}
        moved = ([loc for loc in prog.inputs] if r else []) + \
            [loc for loc in prog.outputs if joined.get(loc.name, loc.name) in read_later]
        # a tensor the port streams in or out (`isa.inport`) moves within the round's own clock: its buffer
        # access costs energy here, its time is the port's
        costs = [(e, 0 if loc.port else c) for loc in moved for e, c in [transfer_cost(prog, loc)]]
        for loc in prog.outputs:
            held[loc.name] = (loc, res.outputs[loc.name])
        parts.append((res.stats, sum(c[0] for c in costs), sum(c[1] for c in costs)))
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
