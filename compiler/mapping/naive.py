"""Naive mapping of crossbar layers (dense, and conv as its im2col matrix): row blocks x column blocks of crossbar
size, one block per MVMU, placed on MVMUs, cores and tiles in order. Every layer starts on a fresh core; all row
blocks of one column block share a tile when it fits (their partial sums meet in that tile's memory; a larger group spans tiles and its partial sums
travel by send/receive). Vector-ALU ops (pooling,
element-wise) get a core each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from isa import numerics as nx
from isa.costs import MvmuShape, mvmu_cycles
from isa.errors import ModelError
from isa.hardware import HardwareConfig
from isa.layout import naive_arrays, summarize

from ..ir import Graph
from ..quant import LayerPrecision


@dataclass(frozen=True)
class Block:
    """One crossbar-sized block of a layer's weight matrix and the MVMU holding it."""

    layer: str
    r: int
    c: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    tile: int
    core: int
    mvmu: int
    rep: int = 0  # replica index (weights replicated to split a conv layer's output rows)
    out_rows: tuple[int, int] | None = None  # the output rows this replica computes (None: all)

    @property
    def where(self) -> tuple[int, int]:
        """(tile, core) of the block."""
        return self.tile, self.core


@dataclass
class LayerMap:
    """The blocks of one layer, by column block then row block."""

    name: str
    row_blocks: int
    col_blocks: int
    slices: int
    blocks: list[Block] = field(default_factory=list)
    layouts: list[np.ndarray] | None = None  # packed modes: the bit-line layout of each block (isa.layout)

    def layout(self, i: int) -> np.ndarray | None:
        """The layout of block ``i`` (None: naive, one crossbar per slice and sign)."""
        return None if self.layouts is None else self.layouts[i]

    @property
    def crossbars(self) -> int:
        """Physical crossbars: `naive_arrays` of every block (naive), or the arrays the layouts use."""
        if self.layouts is None:
            return naive_arrays(self.slices) * len(self.blocks)
        return sum(summarize(lay).arrays for lay in self.layouts)

    def group(self, c: int, rep: int = 0) -> list[Block]:
        """Blocks of column block ``c`` of replica ``rep`` in row order."""
        return [b for b in self.blocks if b.c == c and b.rep == rep]

    def owner(self, c: int, rep: int = 0) -> tuple[int, int]:
        """The core that accumulates column block ``c`` of replica ``rep`` (holder of row block 0)."""
        return self.group(c, rep)[0].where

    @property
    def replicas(self) -> int:
        """Copies of the layer's weights (each computes a band of output rows)."""
        return 1 + max((b.rep for b in self.blocks), default=0)

    def cores(self) -> list[tuple[int, int]]:
        """Cores used by the layer, in placement order."""
        return list(dict.fromkeys(b.where for b in self.blocks))


@dataclass
class Mapping:
    """Placement of every crossbar layer."""

    hw: HardwareConfig
    layers: dict[str, LayerMap]
    vector: dict[str, tuple[int, int]] = field(default_factory=dict)
    mode: str = "naive"

    @property
    def mvmus(self) -> int:
        """MVMUs holding a block."""
        return sum(len(lm.blocks) for lm in self.layers.values())

    def layer_crossbars(self, name: str) -> int:
        """Physical crossbars of one layer (`LayerMap.crossbars`)."""
        return self.layers[name].crossbars

    @property
    def crossbars(self) -> int:
        """Physical crossbars of every layer."""
        return sum(self.layer_crossbars(name) for name in self.layers)

    @property
    def tiles(self) -> int:
        """Tiles with at least one block."""
        return len({b.tile for lm in self.layers.values() for b in lm.blocks} | {t for t, _ in self.vector.values()})

    @property
    def cores(self) -> int:
        """Cores with at least one block."""
        return len({b.where for lm in self.layers.values() for b in lm.blocks} | set(self.vector.values()))

    def hollows(self, name: str, q: np.ndarray, p: LayerPrecision) -> dict[str, Any]:
        """Hollows of one layer's integer weights q (n_in, n_out): naive crossbars whose cells are all zero, the
        fraction of (column, slice) bit lines that are zero, live bit lines, non-zero cells, and the physical cell
        utilization (non-zero cells over the cells of the crossbars this mapping uses)."""
        idle = lines = cells = 0
        for b in self.layers[name].blocks:
            pos, neg = nx.weight_slices(q[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]], p.w_bits, self.hw.cell_bits,
                                        p.w_enc)
            idle += int((pos.reshape(len(pos), -1).max(axis=1) == 0).sum())
            idle += int((neg.reshape(len(neg), -1).max(axis=1) == 0).sum())
            lines += int(pos.any(axis=1).sum() + neg.any(axis=1).sum())
            cells += int((pos != 0).sum() + (neg != 0).sum())
        pos, neg = nx.weight_slices(q, p.w_bits, self.hw.cell_bits, p.w_enc)
        zero_lines = ((pos == 0) & (neg == 0)).all(axis=1)  # (S, n_out): a slice of a column with no charge
        per = self.hw.xbar_rows * self.hw.xbar_cols
        return {"idle_crossbars": idle, "zero_bitline_fraction": float(zero_lines.mean()), "live_bit_lines": lines,
                "nonzero_cells": cells, "cell_utilization": cells / max(1, self.layer_crossbars(name) * per),
                **self.mvm_latency(name, q, p)}

    def mvm_latency(self, name: str, q: np.ndarray, p: LayerPrecision) -> dict[str, int]:
        """Cycles of one MVM of the layer (its slowest block) as mapped, and with every block in one step: their
        difference is what the temporal steps cost per MVM after the pipeline has hidden what it can."""
        from .packing import live_lines, pack

        lm, hw = self.layers[name], self.hw

        def cycles(w: np.ndarray, layout: np.ndarray | None) -> int:
            shape = MvmuShape(*w.shape, lm.slices) if layout is None else \
                MvmuShape.packed(*w.shape, lm.slices, summarize(layout))
            return mvmu_cycles(hw, shape, p.in_bits, p.adc_bits, p.skip)

        mapped = single = 1
        for i, b in enumerate(lm.blocks):
            w, lay = q[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]], lm.layout(i)
            mapped = max(mapped, cycles(w, lay))
            one = None if lay is None else pack(live_lines(w, p.w_bits, hw.cell_bits, p.w_enc), w.shape[0], hw)
            single = max(single, cycles(w, one))
        return {"mvm_cycles": mapped, "mvm_cycles_one_step": single}

    def report(self, prec: dict[str, LayerPrecision],
               weights: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The mapping report: per layer and total crossbars, row-group steps, MVMUs, cores, tiles, block
        utilization (block cells over MVMU capacity) and, given the integer weights, the hollows and the
        physical cell utilization."""
        hw, layers = self.hw, []
        for lm in self.layers.values():
            cells = sum((b.rows[1] - b.rows[0]) * (b.cols[1] - b.cols[0]) for b in lm.blocks)
            steps = max((summarize(lay).steps for lay in lm.layouts or []), default=1)
            layers.append({"layer": lm.name, "row_blocks": lm.row_blocks, "col_blocks": lm.col_blocks,
                           "mvmus": len(lm.blocks), "slices": lm.slices, "crossbars": self.layer_crossbars(lm.name),
                           "steps": steps, "cores": len(lm.cores()), "tiles": sorted({b.tile for b in lm.blocks}),
                           "utilization": cells / (len(lm.blocks) * hw.xbar_rows * hw.xbar_cols),
                           "weight_bits": prec[lm.name].w_bits})
            if weights is not None:
                layers[-1].update(self.hollows(lm.name, weights[lm.name], prec[lm.name]))
        used = sum(x["utilization"] * x["mvmus"] for x in layers)
        out = {"mapping": self.mode, "crossbars": self.crossbars, "mvmus": self.mvmus, "cores": self.cores,
               "tiles": self.tiles, "utilization": used / max(1, self.mvmus), "layers": layers,
               "vector_ops": {k: list(v) for k, v in self.vector.items()}}
        if weights is not None:
            nonzero = sum(x["nonzero_cells"] for x in layers)
            out.update({"idle_crossbars": sum(x["idle_crossbars"] for x in layers), "nonzero_cells": nonzero,
                        "cell_utilization": nonzero / max(1, self.crossbars * hw.xbar_rows * hw.xbar_cols)})
        return out


VECTOR_KINDS = ("pool", "gap", "eltwise")


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


def _bands(g: Graph, name: str, replicate: int) -> list[tuple[int, int] | None]:
    """Output-row bands of the replicas of a conv layer (one band, None, when not replicated)."""
    shape = g.values[g.op(name).outputs[0]].shape
    if replicate <= 1 or g.op(name).kind != "conv" or shape[1] < 2:
        return [None]
    n = min(replicate, shape[1])
    q = -(-shape[1] // n)
    return [(lo, min(shape[1], lo + q)) for lo in range(0, shape[1], q)]


def map_naive(g: Graph, prec: dict[str, LayerPrecision], hw: HardwareConfig,
              weights: dict[str, np.ndarray] | None = None, mode: str = "naive",
              replicate: int = 1, budget: int | None = None) -> Mapping:
    """Place every crossbar layer (see module docstring); fail with what is needed if the chip is too small.

    ``mode`` "spatial" (hollow-aware, seed 003) needs the integer ``weights``: blocks whose cells are all zero
    are not allocated (row block 0 of each column block stays: it carries the bias), so they take no MVMU, no
    loads, no conversions and no partial-sum traffic; inside an MVMU, the live bit lines are packed densely
    onto the fewest crossbars and only they are read and converted (`packing.pack`, `isa.layout`). "temporal"
    adds temporal scheduling: bit lines of a short block share physical bit lines on disjoint row groups driven
    in successive steps, as far as that costs the layer no cycles; with ``budget`` (crossbars), layers trade
    cycles for crossbars until the model fits (0: as densely as the rows allow; `schedule.plan_layouts`).
    With ``hw.xbars_per_core`` > 0 a core holds blocks while their crossbars fit its pool (and its MVMU slots
    last), so packing lets more blocks share a core.

    ``replicate`` N > 1 copies every conv layer's weights N times (at most once per output row); replica k
    computes the k-th band of output rows, so the layer's pixel loop is N times shorter (ISAAC/PUMA-style
    replication: crossbars traded for latency and throughput)."""
    if mode not in MAPPINGS:
        raise ModelError(f"mapping '{mode}' is not one of {', '.join(MAPPINGS)}")
    if budget is not None and mode != "temporal":
        raise ModelError("a crossbar budget needs --mapping temporal")
    packed = mode != "naive" and weights is not None
    q = weights or {}
    ranges: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    for op in g.crossbar_ops():
        n_in, n_out = op.params["weight"].shape
        ranges[op.name] = [((r, min(n_in, r + hw.xbar_rows)), (c, min(n_out, c + hw.xbar_cols)))
                           for c in range(0, n_out, hw.xbar_cols) for r in range(0, n_in, hw.xbar_rows)
                           if not (packed and r and not q[op.name][r:r + hw.xbar_rows, c:c + hw.xbar_cols].any())]
    layouts: dict[str, list[np.ndarray]] = {}
    if packed:
        from .schedule import plan_layouts

        copies = {n: len(_bands(g, n, replicate)) for n in ranges}
        layouts = plan_layouts(g, prec, q, hw, ranges, mode == "temporal", budget, copies)
    cur, layers = _Cursor(hw), {}
    per_tile = hw.cores_per_tile * hw.mvmus_per_core
    vector: dict[str, tuple[int, int]] = {}
    for op in g.ops:
        if op.kind in VECTOR_KINDS:
            vector[op.name] = cur.take_core()
        if not op.is_crossbar:
            continue
        n_in, n_out = op.params["weight"].shape
        rb, cb = -(-n_in // hw.xbar_rows), -(-n_out // hw.xbar_cols)
        lm = LayerMap(op.name, rb, cb, nx.n_slices(prec[op.name].w_bits, hw.cell_bits, prec[op.name].w_enc))
        lays = layouts.get(op.name)
        sizes = [summarize(lay).arrays for lay in lays] if lays is not None else [naive_arrays(lm.slices)] * len(ranges[op.name])
        if hw.xbars_per_core and max(sizes, default=0) > hw.xbars_per_core:
            raise ModelError(f"layer {op.name}: a block needs {max(sizes)} crossbars but a core has "
                             f"{hw.xbars_per_core} (xbars_per_core); map it spatially or temporally, or give the "
                             f"cores more crossbars")
        lm.layouts = [] if lays is not None else None
        for rep, band in enumerate(_bands(g, op.name, replicate)):
            cur.fresh_core()
            for c in range(cb):
                mine = [i for i, (_, cols) in enumerate(ranges[op.name]) if cols[0] == c * hw.xbar_cols]
                if cur.free_on_tile() < min(len(mine), per_tile):  # a group that fits a tile stays on one tile
                    cur.next_tile()
                for i in mine:
                    rows, cols = ranges[op.name][i]
                    t, k, m = cur.take(sizes[i])
                    lm.blocks.append(Block(op.name, rows[0] // hw.xbar_rows, c, rows, cols, t, k, m, rep, band))
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
