"""Bit-line packing of one block (spatial and temporal mapping; the layout format is `isa.layout`).

A block of R rows x C columns at S slices has 2*S*C bit lines: the (+) and (-) line of every (slice, column).
Naive mapping gives each (slice, sign) its own crossbar. Packing keeps only the *live* lines (those with a
non-zero cell: the hollows varied quantization leaves, whole zero slices of a column, signs no weight of a column
uses, drop out) and lays them side by side on the physical bit lines -- the column permutation the digital path
undoes by shifting each conversion by its own slice's significance into its own output column. With ``steps``
k > 1 row groups (temporal scheduling), a physical bit line holds up to k lines on disjoint row ranges
[g*R, (g+1)*R), driven in k successive steps.

The packer fills step 0 of every array, then step 1, ...: with A arrays a step holds A*C_xbar lines, so A is
the smallest count for which the lines fit in k steps. Pairs are laid out column by column (all slices of a
column adjacent), which spreads every slice evenly over the steps, so dynamic quantization (SKIP) thins every
step alike. The (+)/(-) lines of a pair never straddle a step boundary (they are converted together).
"""

from __future__ import annotations

import numpy as np

from isa import numerics as nx
from isa.hardware import HardwareConfig
from isa.layout import UNPLACED


def live_lines(w: np.ndarray, bits: int, cell_bits: int, encoding: str) -> np.ndarray:
    """(S, 2, C) bool: which (slice, sign, column) bit lines of the integer block ``w`` hold a non-zero cell."""
    pos, neg = nx.weight_slices(w, bits, cell_bits, encoding)
    return np.stack([pos.any(axis=1), neg.any(axis=1)], axis=1)


def max_steps(rows: int, hw: HardwareConfig) -> int:
    """Row groups of ``rows`` rows that fit one crossbar."""
    return max(1, hw.xbar_rows // max(1, rows))


def _fill(sizes: list[int], cap: int, steps: int) -> list[tuple[int, int]] | None:
    """(step, first position) of each pair when steps hold ``cap`` lines each; None if they do not fit."""
    out, step, used = [], 0, 0
    for n in sizes:
        if used + n > cap:
            step, used = step + 1, 0
            if step == steps:
                return None
        out.append((step, used))
        used += n
    return out


def pack(live: np.ndarray, rows: int, hw: HardwareConfig, steps: int = 1) -> np.ndarray:
    """The layout (S, 2, C, 3) placing every live line of a block with ``rows`` rows in at most ``steps`` row
    groups on the fewest crossbars (see the module docstring)."""
    s, _, c = live.shape
    k = max(1, min(steps, max_steps(rows, hw)))
    layout = np.full((s, 2, c, 3), UNPLACED, dtype=np.int64)
    pairs = [(sl, col) for col in range(c) for sl in range(s) if live[sl, :, col].any()]
    if not pairs:
        return layout
    sizes = [int(live[sl, 0, col]) + int(live[sl, 1, col]) for sl, col in pairs]
    arrays = max(1, -(-sum(sizes) // (k * hw.xbar_cols)))
    while (places := _fill(sizes, arrays * hw.xbar_cols, k)) is None:
        arrays += 1
    for (sl, col), (step, first) in zip(pairs, places):
        for sign in (0, 1):
            if live[sl, sign, col]:
                layout[sl, sign, col] = (first // hw.xbar_cols, step, first % hw.xbar_cols)
                first += 1
    return layout
