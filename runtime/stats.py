"""Run statistics: cycles, energy per inference by component, instruction and layer, and per-core clocks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from isa import ops
from isa.costs import CoreMeter

#: The timeline keeps about this many intervals per core at most: idle gaps shorter than cycles / TIMELINE_SPAN
#: are merged into the busy intervals around them (what a picture of the run can show anyway).
TIMELINE_SPAN = 2000


@dataclass
class Stats:
    """What one run cost, per inference (all batch lanes execute the same instruction stream).

    ``per_instruction[mnemonic]`` = {count, energy_pj, cycles (busy cycles)}; ``per_layer[node]`` =
    {energy_pj, busy_cycles, start, end, instructions} with start/end the first issue and last completion over all
    cores (node ``-`` collects instructions without provenance); ``per_core["T.C"]`` = the core's final clock.
    Leakage is charged to ``per_component["leakage"]`` and the total only, not to instructions or layers.
    ``timeline["T.C"]`` = the core's busy intervals [start, end) in cycles, idle gaps shorter than
    ``timeline_resolution`` cycles merged (`busy_timeline`); ``traffic["S->D"]`` = words sent from tile S to
    tile D per inference (`tile_traffic`); ``per_layer_component[node][component]`` = energy per inference
    (leakage excluded, as for layers).
    """

    cycles: int = 0
    energy_pj: float = 0.0
    per_component: dict[str, float] = field(default_factory=dict)
    per_instruction: dict[str, dict[str, float]] = field(default_factory=dict)
    per_layer: dict[str, dict[str, float]] = field(default_factory=dict)
    per_core: dict[str, int] = field(default_factory=dict)
    dynamic_instructions: int = 0
    batch: int = 1
    per_core_busy: dict[str, int] = field(default_factory=dict)
    # reprogramming (prog): writes of each physical array of every programmed MVMU ("T.C.M" -> one count per
    # array), cells written and cycles spent programming over the run (once per batch), and, for a program
    # compiled in rounds, one entry per round (`runtime.rounds`)
    writes: dict[str, list[int]] = field(default_factory=dict)
    cells_written: int = 0
    program_cycles: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)
    timeline: dict[str, list[list[int]]] = field(default_factory=dict)
    timeline_resolution: int = 1
    traffic: dict[str, int] = field(default_factory=dict)
    per_layer_component: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def pipeline_interval(self) -> int:
        """Cycles between inferences when a stream of inputs flows through the cores as a pipeline (each core
        starts the next inference once it finished this one): the busiest core's busy cycles per inference.
        A bound: it ignores the memory and network contention that overlapping inferences would add. In
        reprogramming rounds each round streams the batch through its cores before the next is programmed: the
        sum of the rounds' intervals (programming excluded: once per batch)."""
        if self.rounds:
            return sum(int(r["pipeline_interval"]) for r in self.rounds)
        return max(self.per_core_busy.values(), default=self.cycles)

    def write_summary(self) -> dict[str, float]:
        """Endurance: crossbars written, the most and the mean writes per written crossbar, cells written."""
        counts = [n for row in self.writes.values() for n in row if n]
        return {"crossbars_written": len(counts), "max_writes_per_crossbar": max(counts, default=0),
                "mean_writes_per_crossbar": sum(counts) / len(counts) if counts else 0.0,
                "cells_written": self.cells_written}

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self) | {"pipeline_interval": self.pipeline_interval, "write_summary": self.write_summary()}

    def summary(self) -> str:
        """A few human-readable lines: totals, then components by energy."""
        lines = [f"cycles {self.cycles}, energy {self.energy_pj / 1e3:.3f} nJ per inference, "
                 f"{self.dynamic_instructions} instructions, batch {self.batch}"]
        total = self.energy_pj or 1.0
        for name, pj in sorted(self.per_component.items(), key=lambda kv: -kv[1]):
            if pj:
                lines.append(f"  {name:<12} {pj / 1e3:12.3f} nJ  {100 * pj / total:5.1f}%")
        return "\n".join(lines)


def merge_gaps(intervals: Iterable[Sequence[int]], resolution: int) -> list[list[int]]:
    """``intervals`` ([start, end), in time order) with every idle gap shorter than ``resolution`` cycles merged
    into the intervals around it."""
    out: list[list[int]] = []
    for start, end in intervals:
        if out and start - out[-1][1] < resolution:
            out[-1][1] = end
        else:
            out.append([int(start), int(end)])
    return out


def busy_timeline(meters: Sequence[CoreMeter], cycles: int) -> tuple[int, dict[str, list[list[int]]]]:
    """(resolution, busy intervals per core ``T.C``) of a run of ``cycles``: every core's busy intervals
    (`CoreMeter.busy_intervals`) with gaps under ``resolution`` = max(1, cycles // TIMELINE_SPAN) merged, so a
    core has at most about TIMELINE_SPAN intervals. Integer cycles, deterministic."""
    resolution = max(1, cycles // TIMELINE_SPAN)
    return resolution, {m.costs.name: merge_gaps(m.busy_intervals(), resolution) for m in meters}


def tile_traffic(meters: Sequence[CoreMeter]) -> dict[str, int]:
    """Words sent from tile to tile per inference (``"S->D"``, sorted): every executed ``send``'s length times
    its executions (all lanes run the same code, so the count is one inference's)."""
    words: dict[tuple[int, int], int] = {}
    for m in meters:
        for instr, count in zip(m.costs.instrs, m.counts):
            if count and isinstance(instr, ops.Send):
                key = (m.costs.tile, instr.tile)
                words[key] = words.get(key, 0) + instr.n * count
    return {f"{s}->{d}": n for (s, d), n in sorted(words.items())}
