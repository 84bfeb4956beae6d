"""Reprogramming rounds: a model whose weights need more crossbars than the chip has runs as a sequence of rounds,
each a set of consecutive ops (in the graph's topological order) whose placement fits the chip
(docs/cost-model.md, "Reprogramming rounds").

`partition` first splits every crossbar layer larger than the chip into column parts (`split_layer`), then closes
a round when adding the next op would need more tiles than the chip has; each round becomes a
sub-graph (`Round.graph`) whose inputs are the tensors it reads from earlier rounds (or the graph inputs) and whose
outputs are the tensors later rounds read (or the graph outputs). The tensors keep the formats of the whole graph,
so the rounds compute exactly what the whole graph computes (the functional model of the whole graph is the
reference). A round's outputs are spilled to the off-chip buffer and read back by the rounds that need them
(`runtime.rounds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from isa.errors import ModelError
from isa.hardware import HARDWARE_FIELDS, HardwareConfig

from ..ir import Graph, Op, Value
from ..quant import LayerPrecision
from .model import Mapping
from .fit import place_to_fit
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


def subgraph(g: Graph, ops: list[Op], index: int, parts: frozenset[str] = frozenset()) -> Graph:
    """The graph of ``ops`` (consecutive ops of ``g``): inputs are the values they read that they do not produce,
    outputs the values they produce that later ops read, that are outputs of ``g`` or that are ``parts`` (column
    parts of a split layer, joined in the off-chip buffer)."""
    produced = {v for op in ops for v in op.outputs}
    names = {op.name for op in ops}
    inputs = list(dict.fromkeys(v for op in ops for v in op.inputs if v not in produced))
    later = {v for op in g.ops if op.name not in names for v in op.inputs}
    outputs = [v for op in ops for v in op.outputs if v in later or v in g.outputs or v in parts]
    return Graph(f"{g.name}.round{index}", [g.values[v] for v in inputs], list(ops), outputs, g.values,
                 output_names={k: v for k, v in g.output_names.items() if k in outputs}, qdq=g.qdq)


def _check_cut(ops: list[Op]) -> None:
    """ModelError for what a round cannot read from an earlier one: a concat part (concat parts are views into the
    concat's buffer, written in place by their producers)."""
    produced = {v for op in ops for v in op.outputs}
    for op in ops:
        if op.kind == "concat":
            outside = [v for v in op.inputs if v not in produced]
            if outside:
                raise ModelError(f"rounds: concat '{op.name}' joins {outside}, produced in an earlier round; a "
                                 f"concat and the producers of its parts must share a round (the chip is too "
                                 f"small to hold them together)")


@dataclass
class Plan:
    """The rounds of a model and what they cut: the graph with every layer too large for the chip split into
    column parts (`split_layer`), the precision, integer weights and formats extended to the parts, and which
    value each part's outputs join into (along channels, in the off-chip buffer)."""

    graph: Graph
    prec: dict[str, LayerPrecision]
    weights: dict[str, np.ndarray]
    fmt: dict[str, tuple[int, int]]
    joins: dict[str, list[str]]
    rounds: list[Round]
    splits: dict[str, list[tuple[str, int]]]  # layer -> (part name, first column) of each part


def part_op(g: Graph, op: Op, i: int, c0: int, c1: int) -> tuple[Op, Value]:
    """Part ``i`` of crossbar layer ``op``: its weight columns (output channels) [c0, c1), same attributes."""
    v = op.outputs[0]
    params = {"weight": op.params["weight"][:, c0:c1]}
    if "bias" in op.params:
        params["bias"] = op.params["bias"][c0:c1]
    out = Value(f"{v}.part{i}", (c1 - c0,) + tuple(g.values[v].shape[1:]))
    return Op(op.kind, f"{op.name}.part{i}", list(op.inputs), [out.name], dict(op.attrs), params), out


def split_layer(g: Graph, op: Op, prec: dict[str, LayerPrecision], fits: Callable[[Op], bool],
                cols: int) -> list[tuple[Op, Value, int]]:
    """Column parts of ``op``, each as many whole crossbar column blocks (of ``cols``) as ``fits``: (op, value,
    first column) each. Every output column is computed as in the whole layer (columns are independent: the
    row blocks of a column block accumulate alike), so the parts joined are the layer's output bit for bit.
    ModelError when one column block does not fit, or the weights are quantized per channel or by a codebook
    (their levels depend on the whole matrix)."""
    p = prec[op.name]
    if p.w_scheme != "uniform":
        raise ModelError(f"rounds: layer '{op.name}' needs more tiles than the chip has and would be split by "
                         f"output channels, which its '{p.w_scheme}' weight scheme does not allow (use uniform)")
    n_out = op.params["weight"].shape[1]
    blocks = -(-n_out // cols)
    lo, hi = 0, blocks  # the most column blocks per part that fit: in (lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(part_op(g, op, 0, 0, min(n_out, mid * cols))[0]):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        raise ModelError(f"rounds: layer '{op.name}': one column block of {cols} output channels already needs "
                         f"more tiles than the chip has; use a chip with more tiles or a lower precision")
    width = lo * cols
    return [(*part_op(g, op, i, c0, min(n_out, c0 + width)), c0) for i, c0 in enumerate(range(0, n_out, width))]


#: The words each tile of a round's placement holds: ``memory(round graph, precision, mapping, formats)``
#: (the code generator's plan, `codegen.memory.plan_memory`).
Memory = Callable[[Graph, dict[str, LayerPrecision], Mapping, dict[str, tuple[int, int]]], dict[int, int]]


def partition(g: Graph, prec: dict[str, LayerPrecision], hw: HardwareConfig, weights: dict[str, np.ndarray],
              fmt: dict[str, tuple[int, int]], mode: str = "spatial", replicate: int = 1,
              budget: int | None = None, memory: Memory | None = None) -> Plan:
    """Rounds of consecutive ops, each placed on ``hw`` (module docstring); one round when the model fits. A
    crossbar layer too large for the chip is split into column parts (`split_layer`), each in rounds of its own
    kind; the round holding a layer's last part closes with it (its readers need the joined value). With
    ``memory``, each round is placed so that its tiles hold what they can (`fit.place_to_fit`, on the tiles the
    round leaves free)."""
    virtual = hw.with_changes(tiles=VIRTUAL_TILES)
    prec, weights, fmt = dict(prec), dict(weights), dict(fmt)
    values = dict(g.values)
    joins: dict[str, list[str]] = {}
    splits: dict[str, list[tuple[str, int]]] = {}
    work = Graph(g.name, g.inputs, [], g.outputs, values, output_names=g.output_names, qdq=g.qdq)

    def trial(ops: list[Op]) -> Mapping:
        return place_layers(subgraph(work, ops, 0), prec, virtual, weights, mode, replicate, budget)

    def part_fits(part: Op, layer: Op) -> bool:
        """Whether a trial part (the first columns of ``layer``) fits, with its integer weights and precision."""
        cols = part.params["weight"].shape[1]
        weights[part.name] = weights[layer.name][:, :cols]
        prec[part.name] = prec[layer.name]
        values[part.outputs[0]] = Value(part.outputs[0], (cols,) + tuple(g.values[layer.outputs[0]].shape[1:]))
        return top_tile(trial([part])) <= hw.tiles

    for op in g.ops:
        if not op.is_crossbar or top_tile(trial([op])) <= hw.tiles:
            work.ops.append(op)
            continue
        if op.outputs[0] in g.outputs:
            raise ModelError(f"rounds: output layer '{op.name}' needs more tiles than the chip has; it is not split "
                             f"(use a chip with more tiles or a lower precision)")
        for part, value, c0 in split_layer(g, op, prec, partial(part_fits, layer=op), hw.xbar_cols):
            prec[part.name] = prec[op.name]
            weights[part.name] = weights[op.name][:, c0:c0 + value.shape[0]]
            fmt[value.name] = fmt[op.outputs[0]]
            values[value.name] = value
            joins.setdefault(op.outputs[0], []).append(value.name)
            splits.setdefault(op.name, []).append((part.name, c0))
            work.ops.append(part)
    last_parts = {names[-1] for names in joins.values()}
    part_values = frozenset(v for names in joins.values() for v in names)
    groups: list[list[Op]] = []
    current: list[Op] = []
    for op in work.ops:
        if not current or top_tile(trial(current + [op])) <= hw.tiles:
            current.append(op)
        else:
            groups.append(current)
            current = [op]
        if op.outputs[0] in last_parts:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    rounds = []
    for k, ops in enumerate(groups):
        _check_cut(ops)
        sub = subgraph(work, ops, k, part_values)
        place = partial(place_layers, sub, prec, hw, weights, mode, replicate, budget)
        if memory is None:
            rounds.append(Round(k, sub, place()))
            continue
        need = partial(memory, sub, prec)
        rounds.append(Round(k, sub, place_to_fit(place, lambda m: need(m, fmt), hw.tile_mem_words)))
    return Plan(work, prec, weights, fmt, joins, rounds, splits)

