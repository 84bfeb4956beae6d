"""Bit-line layouts of packed MVMUs (spatial and temporal mapping; docs/cost-model.md, "Packed MVMUs").

A programmed MVMU holds S weight slices of a rows x cols block, each as a (+) and a (-) bit line per column. The
naive MVMU gives every (slice, sign) a whole physical crossbar. A *packed* MVMU carries a layout instead: an int
array of shape (S, 2, cols, 3) giving each bit line's place ``(array, step, column)`` -- which physical crossbar,
which row group (driven in time step ``step``, rows ``[step*rows, (step+1)*rows)``), which physical bit line --
or ``-1`` everywhere when the line is not placed (it must then be all zero). Columns of a block's slices are
thus permuted freely over the physical bit lines (the digital path shifts each conversion by its own slice's
significance and adds it into its own output column), and lines of different significance may share a physical
bit line in different steps (temporal scheduling).

Invariants (`check_layout`, enforced when the runtime loads an image):

* every line with a non-zero cell is placed; unplaced lines are all zero;
* no two lines share a physical cell: (array, step, column) is unique, and step * rows + rows <= crossbar rows;
* the (+) and (-) lines of one (slice, column) pair are converted together: if both are placed, in one step.

One A/D conversion is made per placed pair and input digit (unless SKIP removes it); every array that holds a line
of step g is driven in step g.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import XbarcError
from .hardware import HardwareConfig

UNPLACED = -1
SIGNS = 2  # bit lines per (slice, column): a (+) and a (-) one; a naive MVMU gives each its own crossbar


def naive_arrays(slices: int) -> int:
    """Physical crossbars of a naive (unpacked) MVMU of ``slices`` weight slices: one per slice and sign."""
    return SIGNS * slices


@dataclass(frozen=True)
class LayoutSummary:
    """What the cost model needs from a layout: physical arrays, drives per digit and conversions per step."""

    arrays: int
    array_steps: int  # (array, step) pairs: physical array drives per input digit
    step_counts: tuple[tuple[int, ...], ...]  # [step][slice]: converted (slice, column) pairs

    @property
    def steps(self) -> int:
        """Row-group steps per input digit."""
        return len(self.step_counts)


def summarize(layout: np.ndarray) -> LayoutSummary:
    """Arrays, drives and per-step conversion counts of a (checked) layout."""
    layout = np.asarray(layout, dtype=np.int64)
    slices = layout.shape[0]
    placed = layout[..., 0] >= 0  # (S, 2, C)
    arr, step = layout[..., 0][placed], layout[..., 1][placed]
    pair_placed = placed.any(axis=1)  # (S, C)
    pair_step = np.where(placed[:, 0], layout[:, 0, :, 1], layout[:, 1, :, 1])  # (S, C)
    steps = int(step.max()) + 1 if step.size else 0
    counts = np.zeros((steps, slices), dtype=np.int64)
    s_idx, _ = np.nonzero(pair_placed)
    np.add.at(counts, (pair_step[pair_placed], s_idx), 1)
    drives = len(np.unique(arr * max(1, steps) + step))
    return LayoutSummary(len(np.unique(arr)), drives, tuple(tuple(int(v) for v in row) for row in counts.tolist()))


def check_layout(layout: np.ndarray, pos: np.ndarray, neg: np.ndarray, hw: HardwareConfig, where: str) -> None:
    """Raise `XbarcError` naming ``where`` unless ``layout`` satisfies the invariants of the module docstring for
    the slices ``pos``/``neg`` (each (S, rows, cols))."""
    s, rows, cols = pos.shape
    lay = np.asarray(layout, dtype=np.int64)
    if lay.shape != (s, 2, cols, 3):
        raise XbarcError(f"{where}: layout shape {lay.shape} is not ({s}, 2, {cols}, 3) "
                         f"(slices, signs, columns, [array, step, column])")
    placed = lay[..., 0] >= 0
    if not np.array_equal(placed, (lay >= 0).all(axis=-1)) or ((lay < 0) & (lay != UNPLACED)).any():
        raise XbarcError(f"{where}: a layout entry is partly placed (use -1 for all three fields)")
    live = np.stack([pos.any(axis=1), neg.any(axis=1)], axis=1)  # (S, 2, C)
    lost = live & ~placed
    if lost.any():
        sl, sign, col = (int(v) for v in np.argwhere(lost)[0])
        raise XbarcError(f"{where}: bit line (slice {sl}, {'+-'[sign]}, column {col}) has non-zero cells but no "
                         f"place in the layout")
    p = lay[placed]
    if p.size:
        if p[:, 2].max() >= hw.xbar_cols:
            raise XbarcError(f"{where}: layout column {int(p[:, 2].max())} outside the {hw.xbar_cols} bit lines")
        if (p[:, 1].max() + 1) * rows > hw.xbar_rows:
            raise XbarcError(f"{where}: {int(p[:, 1].max()) + 1} row-group steps of {rows} rows exceed the "
                             f"{hw.xbar_rows} crossbar rows")
        keys = p[:, 0] * (hw.xbar_rows * hw.xbar_cols) + p[:, 1] * hw.xbar_cols + p[:, 2]
        if len(np.unique(keys)) != len(keys):
            raise XbarcError(f"{where}: two bit lines share one physical cell range (array, step, column)")
    both = placed[:, 0] & placed[:, 1]
    if (lay[:, 0, :, 1][both] != lay[:, 1, :, 1][both]).any():
        raise XbarcError(f"{where}: the (+) and (-) lines of a (slice, column) pair sit in different steps")


# ---- many layouts at once (the runtime's load of thousands of MVMU images) ----------------------------------------
def layouts_ok(layouts: np.ndarray, live: np.ndarray, rows: int, hw: HardwareConfig) -> np.ndarray:
    """(N,) bool: whether each of N layouts (N, S, 2, C, 3) satisfies `check_layout` for its live bit lines
    ``live`` (N, S, 2, C) (the lines with a non-zero cell) on ``rows``-row blocks. A screen, exactly as strict as
    `check_layout`: the caller runs `check_layout` on the images it rejects, for the message."""
    lay = np.asarray(layouts, dtype=np.int64)
    n = len(lay)
    placed = lay[..., 0] >= 0
    ok_part = (placed == (lay >= 0).all(axis=-1)).all(axis=(1, 2, 3)) & \
        ~((lay < 0) & (lay != UNPLACED)).any(axis=(1, 2, 3, 4))
    flat = placed.reshape(n, -1)
    ok_live = ~(live & ~placed).reshape(n, -1).any(axis=1)
    col = np.where(placed, lay[..., 2], -1).reshape(n, -1).max(axis=1, initial=-1)
    step = np.where(placed, lay[..., 1], -1).reshape(n, -1).max(axis=1, initial=-1)
    ok_range = (col < hw.xbar_cols) & ((step + 1) * rows <= hw.xbar_rows)
    keys = lay[..., 0] * (hw.xbar_rows * hw.xbar_cols) + lay[..., 1] * hw.xbar_cols + lay[..., 2]
    keys = np.where(flat, keys.reshape(n, -1), -1 - np.arange(flat.shape[1]))  # unplaced: distinct negatives
    keys.sort(axis=1)
    ok_unique = ~(keys[:, 1:] == keys[:, :-1]).any(axis=1)
    both = placed[:, :, 0] & placed[:, :, 1]
    ok_pair = ~(both & (lay[:, :, 0, :, 1] != lay[:, :, 1, :, 1])).reshape(n, -1).any(axis=1)
    result: np.ndarray = ok_part & ok_live & ok_range & ok_unique & ok_pair
    return result


def summarize_all(layouts: list[np.ndarray]) -> list[LayoutSummary]:
    """`summarize` of each layout of a list (any shapes), layouts of one shape in one `summarize_many`."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, lay in enumerate(layouts):
        by_shape.setdefault(np.shape(lay), []).append(i)
    out: list[LayoutSummary | None] = [None] * len(layouts)
    for ids in by_shape.values():
        for i, s in zip(ids, summarize_many(np.stack([np.asarray(layouts[i]) for i in ids]))):
            out[i] = s
    return [s for s in out if s is not None]


def summarize_many(layouts: np.ndarray) -> list[LayoutSummary]:
    """`summarize` of each of N (checked) layouts (N, S, 2, C, 3), in a few array operations."""
    lay = np.asarray(layouts, dtype=np.int64)
    n, slices = lay.shape[:2]
    placed = lay[..., 0] >= 0  # (N, S, 2, C)
    arr = np.where(placed, lay[..., 0], 0)
    step = np.where(placed, lay[..., 1], -1)
    steps = step.reshape(n, -1).max(axis=1, initial=-1) + 1  # (N,)
    width, depth = int(arr.max(initial=0)) + 1, int(steps.max(initial=0)) + 1
    img = np.broadcast_to(np.arange(n).reshape(n, 1, 1, 1), placed.shape)[placed]
    used = np.zeros((n, width, depth), dtype=bool)  # which (image, array, step) are driven: marks, not a sort
    used[img, arr[placed], step[placed]] = True
    drives = used.sum(axis=(1, 2))
    arrays = used.any(axis=2).sum(axis=1)
    pair_placed = placed.any(axis=2)  # (N, S, C)
    pair_step = np.where(placed[:, :, 0], lay[:, :, 0, :, 1], lay[:, :, 1, :, 1])
    i_idx, s_idx, _ = np.nonzero(pair_placed)
    cells = (i_idx * max(1, depth) + pair_step[pair_placed]) * slices + s_idx
    counts = np.bincount(cells, minlength=n * max(1, depth) * slices).reshape(n, max(1, depth), slices)
    table = counts.tolist()
    return [LayoutSummary(int(arrays[i]), int(drives[i]), tuple(tuple(row) for row in table[i][:int(steps[i])]))
            for i in range(n)]
