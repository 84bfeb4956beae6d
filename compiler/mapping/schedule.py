"""Temporal schedule: per layer, how far to trade crossbars for row-group steps.

Stacking a block's bit planes on one array's rows (``row_groups`` k > 1) saves physical crossbars and costs
steps: every input digit converts its slices in k successive steps instead of one. With the cost tables as they
are, stacking never lowers energy or delay (conversions are unchanged, steps only add time and ADC leakage), so
the energy-delay-optimal schedule is k = 1 everywhere (the spatial mapping), and packing is only worth it under
a crossbar budget. `fit_budget` packs the layers with the most crossbars saved per added cycle first, and only
as many as the budget needs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from isa.costs import MvmuShape, mvmu_cycles
from isa.errors import ModelError
from isa.hardware import HardwareConfig

from ..ir import Graph
from ..quant import LayerPrecision
from .naive import Mapping, _live_arrays


def _pixels(g: Graph, name: str) -> int:
    shape = g.values[g.op(name).outputs[0]].shape
    return shape[1] * shape[2] if len(shape) == 3 else 1


def _layer_cycles(mp: Mapping, name: str, p: LayerPrecision, hw: HardwareConfig, packed: bool) -> int:
    worst = 0
    for b in mp.layers[name].blocks:
        k = b.row_groups if packed else 1
        shape = MvmuShape(b.rows[1] - b.rows[0], b.cols[1] - b.cols[0], mp.layers[name].slices, None, None, k)
        worst = max(worst, mvmu_cycles(hw, shape, p.in_bits, p.adc_bits, p.skip))
    return worst


def fit_budget(g: Graph, mp: Mapping, prec: dict[str, LayerPrecision], weights: dict[str, np.ndarray],
               hw: HardwareConfig, budget: int) -> Mapping:
    """Unpack every layer of a temporal mapping, then pack layers (most crossbars saved per added cycle first)
    until the crossbar count fits ``budget``; fail with the smallest count reachable if it never does."""
    packed = {name: list(lm.blocks) for name, lm in mp.layers.items()}
    for lm in mp.layers.values():
        lm.blocks = [replace(b, row_groups=1) for b in lm.blocks]
    arrays = {n: _live_arrays(mp.layers[n], weights[n], prec[n], hw) for n in mp.layers}
    mp.arrays = dict(arrays)
    gains = []
    for name, blocks in packed.items():
        lm = mp.layers[name]
        saved = arrays[name] - _live_arrays(replace(lm, blocks=blocks), weights[name], prec[name], hw)
        cost = _pixels(g, name) * (_layer_cycles(replace(mp, layers=mp.layers | {name: replace(lm, blocks=blocks)}),
                                                 name, prec[name], hw, True)
                                   - _layer_cycles(mp, name, prec[name], hw, False))
        if saved > 0:
            gains.append((saved / max(1, cost), name, saved))
    for _, name, saved in sorted(gains, key=lambda t: (-t[0], t[1])):
        if mp.crossbars <= budget:
            break
        mp.layers[name].blocks = packed[name]
        mp.arrays[name] = arrays[name] - saved
    if mp.crossbars > budget:
        raise ModelError(f"the model needs at least {mp.crossbars} crossbars with every layer packed, over the "
                         f"budget of {budget}")
    return mp
