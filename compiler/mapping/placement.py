"""Placement of a graph's crossbar layers (dense, and conv as its im2col matrix) onto MVMUs, cores and tiles,
in one of three mapping modes, optionally with conv replication (`place_layers`).

Every layer is cut into row blocks x column blocks of crossbar size, one block per MVMU, placed in order. Every
layer starts on a fresh core; all row blocks of one column block share a tile when it fits (their partial sums
meet in that tile's memory; a larger group spans tiles and its partial sums travel by send/receive). Vector-ALU
ops (pooling, element-wise) get a core each.

* **naive**: every block and every (slice, sign) crossbar is allocated (`isa.layout.naive_arrays`);
* **spatial** (hollow-aware, seed 003): all-zero blocks are not allocated and the live bit lines of each MVMU
  are packed densely (`packing.py`);
* **temporal**: bit lines of different significance also share physical bit lines in successive row-group
  steps (`schedule.py`), optionally down to a crossbar budget;
* **replication**: N copies of a conv layer's weights split its output rows (`replicate`, or the layer's own
  `LayerPrecision.replicate`; `replicas`).
"""

from __future__ import annotations

import numpy as np

from isa import numerics as nx
from isa.errors import ModelError
from isa.hardware import HardwareConfig
from isa.layout import naive_arrays, summarize

from ..ir import Graph
from ..ops import kind_of
from ..quant import LayerPrecision
from .model import Block, LayerMap, Mapping


class _Cursor:
    """The next free MVMU slot; with ``hw.xbars_per_core`` > 0 also the crossbars left on the current core."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw, self.tile, self.core, self.mvmu, self.arrays = hw, 0, 0, 0, 0

    def fresh_core(self) -> None:
        if self.mvmu:
            self.core, self.mvmu, self.arrays = self.core + 1, 0, 0
            if self.core == self.hw.cores_per_tile:
                self.tile, self.core = self.tile + 1, 0

    def free_on_tile(self) -> int:
        return (self.hw.cores_per_tile - self.core) * self.hw.mvmus_per_core - self.mvmu

    def take_core(self) -> tuple[int, int]:
        """A whole fresh core (for vector-ALU ops)."""
        self.fresh_core()
        where = (self.tile, self.core)
        self.mvmu = 1
        self.fresh_core()
        return where

    def fresh_tile(self) -> None:
        """Move to the next tile unless nothing is placed on this one yet."""
        if self.core or self.mvmu:
            self.next_tile()

    def next_tile(self) -> None:
        self.tile, self.core, self.mvmu, self.arrays = self.tile + 1, 0, 0, 0

    def take(self, arrays: int) -> tuple[int, int, int]:
        """An MVMU slot for a block using ``arrays`` crossbars (on a fresh core if this one has too few left)."""
        pool = self.hw.xbars_per_core
        if pool and self.arrays + arrays > pool:
            self.fresh_core()
        slot = (self.tile, self.core, self.mvmu)
        self.mvmu += 1
        self.arrays += arrays
        if self.mvmu == self.hw.mvmus_per_core:
            self.fresh_core()
        return slot


MAPPINGS = ("naive", "spatial", "temporal")


def row_bands(g: Graph, name: str, replicate: int) -> list[tuple[int, int] | None]:
    """Output-row bands of ``replicate`` replicas of layer ``name`` (one band, None, when not replicated or not
    a conv): bands of ceil(rows / N) rows, so fewer than N when that divides the rows into fewer."""
    shape = g.values[g.op(name).outputs[0]].shape
    if replicate <= 1 or g.op(name).kind != "conv" or shape[1] < 2:
        return [None]
    n = min(replicate, shape[1])
    q = -(-shape[1] // n)
    return [(lo, min(shape[1], lo + q)) for lo in range(0, shape[1], q)]


def replicas(prec: dict[str, LayerPrecision], name: str, replicate: int = 1) -> int:
    """The replicas asked for layer ``name``: its own ``replicate`` when > 1, else the mapping's ``replicate``."""
    own = prec[name].replicate
    return own if own > 1 else replicate


def place_layers(g: Graph, prec: dict[str, LayerPrecision], hw: HardwareConfig,
              weights: dict[str, np.ndarray] | None = None, mode: str = "naive",
              replicate: int = 1, budget: int | None = None, breaks: frozenset[str] = frozenset()) -> Mapping:
    """Place every crossbar layer (see module docstring); fail with what is needed if the chip is too small.

    ``mode`` "spatial" (hollow-aware, seed 003) needs the integer ``weights``: blocks whose cells are all zero
    are not allocated, so they take no MVMU, no loads, no conversions and no partial-sum traffic; the first
    allocated block of a column block owns it (accumulates, adds the bias, stores), and a column block with no
    non-zero cell at all keeps row block 0 as an *idle* block (an MVMU slot with no crossbar whose zero outputs
    are the accumulator the bias goes into: `Block.idle`); inside an MVMU, the live bit lines are packed densely
    onto the fewest crossbars and only they are read and converted (`packing.pack`, `isa.layout`). "temporal"
    adds temporal scheduling: bit lines of a short block share physical bit lines on disjoint row groups driven
    in successive steps, as far as that costs the layer no cycles; with ``budget`` (crossbars), layers trade
    cycles for crossbars until the model fits (0: as densely as the rows allow; `schedule.plan_layouts`).
    With ``hw.xbars_per_core`` > 0 a core holds blocks while their crossbars fit its pool (and its MVMU slots
    last), so packing lets more blocks share a core.

    ``replicate`` N > 1 copies every conv layer's weights N times (at most once per output row; a layer whose
    precision has its own ``replicate`` > 1 takes that instead); replica k computes the k-th band of output rows
    (`row_bands`), so the layer's pixel loop is N times shorter (ISAAC/PUMA-style replication: crossbars traded
    for latency and throughput).

    Every op in ``breaks`` starts on a fresh tile (`fit.place_to_fit` chooses them so that no tile holds more
    than its memory)."""
    if mode not in MAPPINGS:
        raise ModelError(f"mapping '{mode}' is not one of {', '.join(MAPPINGS)}")
    if budget is not None and mode != "temporal":
        raise ModelError("a crossbar budget needs --mapping temporal")
    packed = mode != "naive" and weights is not None
    q = weights or {}
    ranges: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    idle: set[tuple[str, int, int]] = set()  # (layer, first row, first column) of the idle blocks
    for op in g.crossbar_ops():
        n_in, n_out = op.params["weight"].shape
        ranges[op.name] = []
        for c in range(0, n_out, hw.xbar_cols):
            cols = (c, min(n_out, c + hw.xbar_cols))
            group = [((r, min(n_in, r + hw.xbar_rows)), cols) for r in range(0, n_in, hw.xbar_rows)]
            if packed:
                live = [b for b in group if q[op.name][b[0][0]:b[0][1], c:cols[1]].any()]
                if not live:
                    idle.add((op.name, 0, c))
                group = live or group[:1]
            ranges[op.name] += group
    layouts: dict[str, list[np.ndarray]] = {}
    if packed:
        from .schedule import plan_layouts

        copies = {n: len(row_bands(g, n, replicas(prec, n, replicate))) for n in ranges}
        layouts = plan_layouts(g, prec, q, hw, ranges, mode == "temporal", budget, copies)
    cur, layers = _Cursor(hw), {}
    per_tile = hw.cores_per_tile * hw.mvmus_per_core
    vector: dict[str, tuple[int, int]] = {}
    for op in g.ops:
        if op.name in breaks:
            cur.fresh_tile()
        if kind_of(op).device == "vector":
            vector[op.name] = cur.take_core()
        if not op.is_crossbar:
            continue
        n_in, n_out = op.params["weight"].shape
        rb, cb = -(-n_in // hw.xbar_rows), -(-n_out // hw.xbar_cols)
        lm = LayerMap(op.name, rb, cb, nx.n_slices(prec[op.name].w_bits, hw.cell_bits, prec[op.name].w_enc))
        lays = layouts.get(op.name)
        if lays is not None:
            sizes = [summarize(lay).arrays for lay in lays]
        else:
            sizes = [naive_arrays(lm.slices)] * len(ranges[op.name])
        if hw.xbars_per_core and max(sizes, default=0) > hw.xbars_per_core:
            fit = next((b for b in (16, 8, 4, 2) if naive_arrays(nx.n_slices(b, hw.cell_bits, "twos"))
                        <= hw.xbars_per_core), None)
            hint = f"use {fit}-bit weights (--precision {fit}bit: {naive_arrays(nx.n_slices(fit, hw.cell_bits, 'twos'))} " \
                   f"crossbars per naive block), " if fit and fit < prec[op.name].w_bits else ""
            raise ModelError(f"layer {op.name}: a block needs {max(sizes)} crossbars but a core has "
                             f"{hw.xbars_per_core} (xbars_per_core); {hint}map it spatially or temporally, or give "
                             f"the cores more crossbars")
        lm.layouts = [] if lays is not None else None
        for rep, band in enumerate(row_bands(g, op.name, replicas(prec, op.name, replicate))):
            cur.fresh_core()
            for c in range(cb):
                mine = [i for i, (_, cols) in enumerate(ranges[op.name]) if cols[0] == c * hw.xbar_cols]
                if cur.free_on_tile() < min(len(mine), per_tile):  # a group that fits a tile stays on one tile
                    cur.next_tile()
                for i in mine:
                    rows, cols = ranges[op.name][i]
                    t, k, m = cur.take(sizes[i])
                    lm.blocks.append(Block(op.name, rows[0] // hw.xbar_rows, c, rows, cols, t, k, m, rep, band,
                                           (op.name, rows[0], cols[0]) in idle))
                    if lm.layouts is not None and lays is not None:
                        lm.layouts.append(lays[i])
        layers[op.name] = lm
    mapping = Mapping(hw, layers, vector, mode)
    top = max([b.tile for lm in layers.values() for b in lm.blocks] + [t for t, _ in vector.values()],
              default=0) + 1
    if top > hw.tiles:
        raise ModelError(f"the model needs {top} tiles ({mapping.mvmus} MVMUs, {mapping.crossbars} crossbars) "
                         f"but the chip has {hw.tiles}; pass a hardware file with \"tiles\": {top} or more")
    return mapping
