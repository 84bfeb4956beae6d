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
    """(S, 2, C) bool: which (slice, sign, column) bit lines of the integer block ``w`` hold a non-zero cell.

    Plain and TC slices are bit fields, so a line is live exactly when the OR over the column's rows of the
    values it slices has a non-zero field there (one pass over the block instead of one per slice)."""
    w = np.asarray(w, dtype=nx.I64)
    if encoding == "sce":  # carries make digits depend on lower sub-words: slice for real
        pos, neg = nx.weight_slices(w, bits, cell_bits, encoding)
        return np.stack([pos.any(axis=1), neg.any(axis=1)], axis=1)
    count = nx.n_slices(bits, cell_bits, encoding)
    fields = (cell_bits * np.arange(count, dtype=nx.I64))[:, None]
    mask = nx.I64((1 << cell_bits) - 1)
    if encoding == "tc":
        low = np.bitwise_or.reduce(w + ((w < 0).astype(nx.I64) << nx.I64(bits - 1)), axis=0)
        neg = np.zeros((count, w.shape[1]), dtype=bool)
        neg[(bits - 1) // cell_bits] = (w < 0).any(axis=0)
        return np.stack([(low[None] >> fields) & mask != 0, neg], axis=1)
    ors = [np.bitwise_or.reduce(np.maximum(sign * w, 0), axis=0) for sign in (1, -1)]
    return np.stack([(o[None] >> fields) & mask != 0 for o in ors], axis=1)


def max_steps(rows: int, hw: HardwareConfig) -> int:
    """Row groups of ``rows`` rows that fit one crossbar."""
    return max(1, hw.xbar_rows // max(1, rows))


def _fill(sizes: np.ndarray, cap: int, steps: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(step, first position) of each pair, in order, when each step holds ``cap`` lines; None if they do not
    fit in ``steps`` steps. A step takes the longest prefix of the remaining pairs that fits."""
    step, first = np.zeros(len(sizes), dtype=np.int64), np.zeros(len(sizes), dtype=np.int64)
    i = 0
    for g in range(steps):
        if i == len(sizes):
            break
        ends = np.cumsum(sizes[i:])
        m = int(np.searchsorted(ends, cap, side="right"))
        step[i:i + m], first[i:i + m] = g, ends[:m] - sizes[i:i + m]
        i += m
    return (step, first) if i == len(sizes) else None


def _fill_gaps(sizes: np.ndarray, cap: int, steps: int) -> tuple[np.ndarray, np.ndarray] | None:
    """`_fill`, except that a step left with one free line by a pair takes the next single line from later in
    the order: every step is then full whenever the lines allow it, so the line count alone decides whether
    they fit (the in-order fill can waste one line per step and need an array more)."""
    step, first = np.zeros(len(sizes), dtype=np.int64), np.zeros(len(sizes), dtype=np.int64)
    todo = list(range(len(sizes)))
    for g in range(steps):
        used, rest = 0, []
        for j, i in enumerate(todo):
            if used + sizes[i] <= cap:
                step[i], first[i], used = g, used, used + int(sizes[i])
            else:
                rest = todo[j:]
                break
        if used == cap - 1:
            single = next((i for i in rest if sizes[i] == 1), None)
            if single is not None:
                step[single], first[single] = g, used
                rest.remove(single)
        todo = rest
        if not todo:
            return step, first
    return None


def pack(live: np.ndarray, rows: int, hw: HardwareConfig, steps: int = 1) -> np.ndarray:
    """The layout (S, 2, C, 3) placing every live line of a block with ``rows`` rows in at most ``steps`` row
    groups on the fewest crossbars (see the module docstring)."""
    s, _, c = live.shape
    k = max(1, min(steps, max_steps(rows, hw)))
    layout = np.full((s, 2, c, 3), UNPLACED, dtype=np.int16)  # every field < 2^15 (arrays, steps, columns)
    col, sl = np.nonzero(live.any(axis=1).T)  # pairs column by column, slices ascending within a column
    if not len(col):
        return layout
    pos_live, neg_live = live[sl, 0, col], live[sl, 1, col]
    sizes = pos_live.astype(np.int64) + neg_live
    arrays = max(1, -(-int(sizes.sum()) // (k * hw.xbar_cols)))
    while (places := _fill(sizes, arrays * hw.xbar_cols, k) or _fill_gaps(sizes, arrays * hw.xbar_cols, k)) is None:
        arrays += 1
    step, first = places
    for sign, on, at in ((0, pos_live, first), (1, neg_live, first + pos_live)):
        layout[sl[on], sign, col[on]] = np.stack([at[on] // hw.xbar_cols, step[on], at[on] % hw.xbar_cols], axis=1)
    return layout
