"""Reprogramming rounds: a model whose weights need more crossbars than the chip has runs as a sequence of rounds,
each a set of consecutive ops (in the graph's topological order) whose placement fits the chip
(docs/cost-model.md, "Reprogramming rounds").

`partition` closes a round when adding the next op would need more tiles than the chip has; each round becomes a
sub-graph (`Round.graph`) whose inputs are the tensors it reads from earlier rounds (or the graph inputs) and whose
outputs are the tensors later rounds read (or the graph outputs). The tensors keep the formats of the whole graph,
so the rounds compute exactly what the whole graph computes (the functional model of the whole graph is the
reference). A round's outputs are spilled to the off-chip buffer and read back by the rounds that need them
(`runtime.rounds`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa.errors import ModelError
from isa.hardware import HARDWARE_FIELDS, HardwareConfig

from ..ir import Graph, Op
from ..quant import LayerPrecision
from .model import Mapping
from .placement import place_layers

#: The most tiles a trial placement may use (the hardware limit of the tile field): a round is measured on a chip
#: this large, then checked against the real one.
VIRTUAL_TILES = int(HARDWARE_FIELDS["tiles"].hi or 4096)


@dataclass
class Round:
    """One round: its ops, the sub-graph they form and their placement on the chip."""

    index: int
    graph: Graph
    mapping: Mapping

    @property
    def ops(self) -> list[str]:
        """Names of the round's ops, in order."""
        return [op.name for op in self.graph.ops]


def top_tile(m: Mapping) -> int:
    """Tiles a placement spans (the highest tile used, plus one)."""
    tiles = [b.tile for lm in m.layers.values() for b in lm.blocks] + [t for t, _ in m.vector.values()]
    return max(tiles, default=0) + 1


def subgraph(g: Graph, ops: list[Op], index: int) -> Graph:
    """The graph of ``ops`` (consecutive ops of ``g``): inputs are the values they read that they do not produce,
    outputs the values they produce that later ops read or that are outputs of ``g``."""
    produced = {v for op in ops for v in op.outputs}
    names = {op.name for op in ops}
    inputs = list(dict.fromkeys(v for op in ops for v in op.inputs if v not in produced))
    later = {v for op in g.ops if op.name not in names for v in op.inputs}
    outputs = [v for op in ops for v in op.outputs if v in later or v in g.outputs]
    return Graph(f"{g.name}.round{index}", [g.values[v] for v in inputs], list(ops), outputs, g.values,
                 output_names={k: v for k, v in g.output_names.items() if k in outputs}, qdq=g.qdq)


def _check_cut(g: Graph, ops: list[Op], index: int) -> None:
    """ModelError for what a round cannot read from an earlier one: a concat part (concat parts are views into the
    concat's buffer, written in place by their producers) or a graph input no first-round op reads."""
    produced = {v for op in ops for v in op.outputs}
    for op in ops:
        if op.kind == "concat":
            outside = [v for v in op.inputs if v not in produced]
            if outside:
                raise ModelError(f"rounds: concat '{op.name}' joins {outside}, produced in an earlier round; a "
                                 f"concat and the producers of its parts must share a round (the chip is too "
                                 f"small to hold them together)")
    if index:
        late = [v for op in ops for v in op.inputs if v in {i.name for i in g.inputs}]
        if late:
            raise ModelError(f"rounds: graph input(s) {sorted(set(late))} are read in round {index}; only the first "
                             f"round may read graph inputs")


def partition(g: Graph, prec: dict[str, LayerPrecision], hw: HardwareConfig, weights: dict[str, np.ndarray],
              mode: str = "spatial", replicate: int = 1, budget: int | None = None) -> list[Round]:
    """Rounds of consecutive ops, each placed on ``hw`` (module docstring); one round when the model fits.
    ModelError when one op alone needs more tiles than the chip has."""
    virtual = hw.with_changes(tiles=VIRTUAL_TILES)

    def trial(ops: list[Op]) -> Mapping:
        return place_layers(subgraph(g, ops, len(groups)), prec, virtual, weights, mode, replicate, budget)

    groups: list[list[Op]] = []
    current: list[Op] = []
    for op in g.ops:
        if top_tile(trial(current + [op])) <= hw.tiles:
            current.append(op)
            continue
        alone = trial([op])
        if top_tile(alone) > hw.tiles:
            raise ModelError(f"rounds: op '{op.name}' alone needs {top_tile(alone)} tiles ({alone.mvmus} MVMUs, "
                             f"{alone.crossbars} crossbars) but the chip has {hw.tiles}; a layer is not split "
                             f"across rounds: use a chip with more tiles or a lower precision")
        groups.append(current)
        current = [op]
    groups.append(current)
    rounds = []
    for k, ops in enumerate(groups):
        _check_cut(g, ops, k)
        sub = subgraph(g, ops, k)
        rounds.append(Round(k, sub, place_layers(sub, prec, hw, weights, mode, replicate, budget)))
    return rounds
