"""Temporal schedule: per block, how far to trade crossbars for row-group steps.

Every block of a packed mapping has a few *options* (`block_options`): its live bit lines packed in k = 1, 2, ...
row-group steps on ever fewer crossbars, each with the MVM latency the cost model charges for it (`isa.costs`:
per input digit and step, the longer of a crossbar read and the ADC sweep of that step's conversions; the next
step's read overlaps the previous step's conversion -- the temporal pipeline). Conversions do not change with k
(the same pairs are converted, only in different steps), so energy moves only through latency (ADC leakage) and,
with the static crossbar model, array drives. Hence:

* `plan_layouts` (``--mapping temporal``): the energy-delay optimum. A layer's MVM takes as long as its slowest
  block, so every block stacks as far as it stays within that latency: fewer crossbars at no added cycle and
  (with the conductance crossbar model) no added energy; with the static model the drives per digit, arrays
  summed over steps, can differ by the rounding of arrays per step. Where a block's steps are ADC-bound,
  splitting them costs nothing; where they are read-bound (few conversions per step), every extra step costs a
  read and stacking stops.
* ``--crossbar-budget N`` (`plan_layouts` with ``budget``): beyond that, layers trade cycles for crossbars, the
  most crossbars saved per added cycle (x executions per inference) first, until the count fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa.costs import MvmuShape, mvmu_cycles
from isa.errors import ModelError
from isa.hardware import HardwareConfig
from isa.layout import summarize

from ..ir import Graph
from ..quant import LayerPrecision
from .packing import live_lines, max_steps, pack


@dataclass(frozen=True)
class Option:
    """One way to lay out a block: its layout, physical crossbars and MVM latency (cycles)."""

    layout: np.ndarray
    arrays: int
    cycles: int


def block_options(w: np.ndarray, p: LayerPrecision, hw: HardwareConfig, temporal: bool = True) -> list[Option]:
    """The Pareto options of the integer block ``w``: one step first, then each smaller crossbar count that more
    steps reach (at most 128 // rows steps)."""
    live = live_lines(w, p.w_bits, hw.cell_bits, p.w_enc)
    rows, lines = w.shape[0], int(live.sum())

    def option(k: int) -> Option:
        lay = pack(live, rows, hw, k)
        summ = summarize(lay)
        shape = MvmuShape.packed(rows, w.shape[1], live.shape[0], summ)
        return Option(lay, summ.arrays, mvmu_cycles(hw, shape, p.in_bits, p.adc_bits, p.skip))

    opts = [option(1)]
    if not temporal:
        return opts
    for target in range(opts[0].arrays - 1, 0, -1):
        k = -(-lines // (target * hw.xbar_cols))
        if k > max_steps(rows, hw):
            break
        o = option(k)
        if o.arrays < opts[-1].arrays:
            opts.append(o)
    return opts


Ranges = tuple[tuple[int, int], tuple[int, int]]  # a block's (rows, cols) ranges in the layer's weight matrix


def _within(opts: list[list[Option]], limit: int) -> list[Option]:
    """Each block's fewest-crossbar option whose latency is at most ``limit`` (its first option otherwise)."""
    return [min((o for o in bo if o.cycles <= limit), key=lambda o: (o.arrays, o.cycles), default=bo[0])
            for bo in opts]


def _pixels(g: Graph, name: str) -> int:
    shape = g.values[g.op(name).outputs[0]].shape
    return shape[1] * shape[2] if len(shape) == 3 else 1


def plan_layouts(g: Graph, prec: dict[str, LayerPrecision], weights: dict[str, np.ndarray], hw: HardwareConfig,
                 blocks: dict[str, list[Ranges]], temporal: bool, budget: int | None = None,
                 copies: dict[str, int] | None = None) -> dict[str, list[np.ndarray]]:
    """The layout of every block (``blocks``: per layer, the allocated blocks' ranges; ``copies``: replicas per
    layer, which multiply its crossbars).

    Spatial: one step. Temporal: the energy-delay optimum -- a layer's MVM takes as long as its slowest block, so
    every block stacks as far as it stays within that latency. With ``budget``: from there, layers take longer
    (each block then stacks as far as the layer's new latency allows), the most crossbars saved per added cycle
    (x executions per inference) first, until the total fits; 0 packs every block as far as its rows allow. A
    budget that cannot be met fails with the smallest count reachable."""
    copies = copies or {}
    opts = {n: [block_options(weights[n][r[0]:r[1], c[0]:c[1]], prec[n], hw, temporal) for r, c in rs]
            for n, rs in blocks.items()}
    limit = {n: max((bo[0].cycles for bo in o), default=0) for n, o in opts.items()}

    def choose(n: str, lim: int) -> list[Option]:
        return [_fit_core(bo, o, hw) for bo, o in zip(opts[n], _within(opts[n], lim))]

    def arrays(n: str, lim: int) -> int:
        return copies.get(n, 1) * sum(o.arrays for o in choose(n, lim))

    if budget == 0:
        return {n: [bo[-1].layout for bo in o] for n, o in opts.items()}  # the last option: the fewest arrays
    total = sum(arrays(n, limit[n]) for n in opts)
    while budget is not None and total > budget:
        moves = []
        for n, o in opts.items():
            base = arrays(n, limit[n])
            for lim in sorted({x.cycles for bo in o for x in bo if x.cycles > limit[n]}):
                saved = base - arrays(n, lim)
                if saved > 0:
                    moves.append((-saved / ((lim - limit[n]) * _pixels(g, n)), n, lim))
        if not moves:
            raise ModelError(f"the model needs at least {total} crossbars with every layer packed, over the "
                             f"budget of {budget}")
        _, n, lim = min(moves)
        total -= arrays(n, limit[n]) - arrays(n, lim)
        limit[n] = lim
    return {n: [o.layout for o in choose(n, limit[n])] for n in opts}


def _fit_core(options: list[Option], chosen: Option, hw: HardwareConfig) -> Option:
    """``chosen``, or the fastest option that fits a core's crossbar pool when ``chosen`` does not."""
    pool = hw.xbars_per_core
    if not pool or chosen.arrays <= pool:
        return chosen
    return min((o for o in options if o.arrays <= pool), key=lambda o: o.cycles, default=chosen)
