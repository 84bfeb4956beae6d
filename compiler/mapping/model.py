"""The result of mapping: crossbar-sized blocks of each layer's weight matrix, the MVMU, core and tile holding each
(`Block`, `LayerMap`), the cores of vector-ALU ops, and the mapping report (crossbars, utilization, hollows,
MVM latency as mapped). `placement.place_layers` builds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from isa import numerics as nx
from isa.costs import MvmuShape, mvmu_cycles
from isa.hardware import HardwareConfig
from isa.layout import LayoutSummary, naive_arrays, summarize, summarize_all

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
    idle: bool = False  # packed and all zero: no crossbar, no input, zero output (`isa.costs.MvmuShape.idle`)

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
    chain: bool = False  # partial sums pass core to core in row order, one running sum (`fit.chain_layers`)
    _summaries: list[tuple[np.ndarray, LayoutSummary]] = field(default_factory=list, init=False, repr=False,
                                                               compare=False)

    def layout(self, i: int) -> np.ndarray | None:
        """The layout of block ``i`` (None: naive, one crossbar per slice and sign)."""
        return None if self.layouts is None else self.layouts[i]

    def summaries(self) -> list[LayoutSummary]:
        """`summarize` of each layout (none: naive), computed once for the layouts held."""
        lays = self.layouts or []
        held = self._summaries
        if len(held) != len(lays) or any(a is not b for (a, _), b in zip(held, lays)):
            self._summaries = held = list(zip(lays, summarize_all(lays)))
        return [s for _, s in held]

    @property
    def crossbars(self) -> int:
        """Physical crossbars: `naive_arrays` of every block (naive), or the arrays the layouts use."""
        if self.layouts is None:
            return naive_arrays(self.slices) * len(self.blocks)
        return sum(s.arrays for s in self.summaries())

    def group(self, c: int, rep: int = 0) -> list[Block]:
        """Blocks of column block ``c`` of replica ``rep`` in row order."""
        return [b for b in self.blocks if b.c == c and b.rep == rep]

    def owner(self, c: int, rep: int = 0) -> tuple[int, int]:
        """The core that accumulates column block ``c`` of replica ``rep`` (holder of row block 0)."""
        return self.group(c, rep)[0].where

    def owners(self) -> dict[tuple[int, int], tuple[int, int]]:
        """`owner` of every (column block, replica), in one pass over the blocks."""
        out: dict[tuple[int, int], tuple[int, int]] = {}
        for b in self.blocks:
            out.setdefault((b.c, b.rep), b.where)
        return out

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
        for counts in self._block_line_cells(self.layers[name].blocks, q, p):  # (2 S, C) per block
            idle += int((counts.sum(axis=1) == 0).sum())
            lines += int((counts > 0).sum())
            cells += int(counts.sum())
        zero_lines = self._zero_lines(q, p)
        per = self.hw.xbar_rows * self.hw.xbar_cols
        return {"idle_crossbars": idle, "zero_bitline_fraction": float(zero_lines.mean()), "live_bit_lines": lines,
                "nonzero_cells": cells, "cell_utilization": cells / max(1, self.layer_crossbars(name) * per),
                **self.mvm_latency(name, q, p)}

    def _block_line_cells(self, blocks: list[Block], q: np.ndarray, p: LayerPrecision) -> list[np.ndarray]:
        """`_line_cells` of every block of ``q``; blocks of one shape up to 64 at a time (one histogram)."""
        if p.w_bits > nx.MAX_TABLE_BITS or (q.size and (int(q.min()) < -nx.qmax(p.w_bits)
                                                         or int(q.max()) > nx.qmax(p.w_bits))):
            return [self._line_cells(q[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]], p) for b in blocks]
        pos, neg = nx.value_slices(p.w_bits, self.hw.cell_bits, p.w_enc)
        table = np.concatenate([pos != 0, neg != 0]).astype(np.float64).T  # (V, 2 S)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, b in enumerate(blocks):
            by_shape.setdefault((b.rows[1] - b.rows[0], b.cols[1] - b.cols[0]), []).append(i)
        out: list[np.ndarray | None] = [None] * len(blocks)
        for ids in by_shape.values():
            for lo in range(0, len(ids), 64):
                part = ids[lo:lo + 64]
                w = np.stack([q[blocks[i].rows[0]:blocks[i].rows[1], blocks[i].cols[0]:blocks[i].cols[1]]
                              for i in part])
                hist = nx.column_histogram(w, p.w_bits).astype(np.float64)  # BLAS; counts <= rows: exact
                counts = np.rint(hist @ table).astype(np.int64).transpose(0, 2, 1)  # (K, 2 S, C)
                for i, c in zip(part, counts):
                    out[i] = c
        return [c for c in out if c is not None]

    def _line_cells(self, w: np.ndarray, p: LayerPrecision) -> np.ndarray:
        """(2 S, C): the non-zero cells of each (+) then (-) slice's bit line of block ``w``, from its column
        histogram of values (`numerics.column_histogram`) when the weights are narrow, else by slicing it."""
        if p.w_bits <= nx.MAX_TABLE_BITS and (not w.size or -nx.qmax(p.w_bits) <= int(w.min())
                                              and int(w.max()) <= nx.qmax(p.w_bits)):
            pos, neg = nx.value_slices(p.w_bits, self.hw.cell_bits, p.w_enc)  # (S, V)
            table = np.concatenate([pos != 0, neg != 0]).astype(np.float64)
            hist = nx.column_histogram(w, p.w_bits).T.astype(np.float64)  # BLAS; counts <= rows: exact
            counts: np.ndarray = np.rint(table @ hist).astype(np.int64)
            return counts
        pos, neg = nx.weight_slices(w, p.w_bits, self.hw.cell_bits, p.w_enc)
        return np.concatenate([(pos != 0).sum(axis=1), (neg != 0).sum(axis=1)])

    def _zero_lines(self, q: np.ndarray, p: LayerPrecision) -> np.ndarray:
        """(S, n_out) bool: the (slice, column) bit lines with no charge in any row, computed one crossbar-high
        band of rows at a time (slicing a whole large layer at once takes S x its size in int64 per sign)."""
        live: np.ndarray | None = None
        for r0 in range(0, max(1, q.shape[0]), self.hw.xbar_rows):
            counts = self._line_cells(q[r0:r0 + self.hw.xbar_rows], p)
            band = (counts[:len(counts) // 2] > 0) | (counts[len(counts) // 2:] > 0)
            live = band if live is None else live | band
        assert live is not None
        zero: np.ndarray = ~live
        return zero

    def mvm_latency(self, name: str, q: np.ndarray, p: LayerPrecision) -> dict[str, int]:
        """Cycles of one MVM of the layer (its slowest block) as mapped, and with every block in one step: their
        difference is what the temporal steps cost per MVM after the pipeline has hidden what it can."""
        from .packing import live_lines, pack

        lm, hw = self.layers[name], self.hw

        def cycles(w: np.ndarray, summary: LayoutSummary | None) -> int:
            rows, cols = w.shape
            shape = MvmuShape(rows, cols, lm.slices) if summary is None else \
                MvmuShape.packed(rows, cols, lm.slices, summary)
            return mvmu_cycles(hw, shape, p.in_bits, p.adc_bits, p.skip)

        mapped = single = 1
        summaries = lm.summaries() if lm.layouts is not None else None
        for i, b in enumerate(lm.blocks):
            w, lay = q[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]], lm.layout(i)
            mapped = max(mapped, cycles(w, None if summaries is None else summaries[i]))
            one = None if lay is None else pack(live_lines(w, p.w_bits, hw.cell_bits, p.w_enc), w.shape[0], hw)
            single = max(single, cycles(w, None if one is None else summarize(one)))
        return {"mvm_cycles": mapped, "mvm_cycles_one_step": single}

    def report(self, prec: dict[str, LayerPrecision],
               weights: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The mapping report: per layer and total crossbars, row-group steps, MVMUs, cores, tiles, block
        utilization (block cells over MVMU capacity) and, given the integer weights, the hollows and the
        physical cell utilization."""
        hw, layers = self.hw, list[dict[str, Any]]()
        for lm in self.layers.values():
            cells = sum((b.rows[1] - b.rows[0]) * (b.cols[1] - b.cols[0]) for b in lm.blocks)
            steps = max((s.steps for s in lm.summaries()), default=1)
            layers.append({"layer": lm.name, "row_blocks": lm.row_blocks, "col_blocks": lm.col_blocks,
                           "mvmus": len(lm.blocks), "slices": lm.slices, "crossbars": self.layer_crossbars(lm.name),
                           "steps": steps, "cores": len(lm.cores()), "tiles": sorted({b.tile for b in lm.blocks}),
                           "utilization": cells / (len(lm.blocks) * hw.xbar_rows * hw.xbar_cols),
                           "weight_bits": prec[lm.name].w_bits})
            if weights is not None:
                layers[-1].update(self.hollows(lm.name, weights[lm.name], prec[lm.name]))
        used = sum(x["utilization"] * x["mvmus"] for x in layers)
        out: dict[str, Any] = {"mapping": self.mode, "crossbars": self.crossbars, "mvmus": self.mvmus,
                               "cores": self.cores, "tiles": self.tiles, "utilization": used / max(1, self.mvmus),
                               "layers": layers, "vector_ops": {k: list(v) for k, v in self.vector.items()}}
        if weights is not None:
            nonzero = sum(x["nonzero_cells"] for x in layers)
            out.update({"idle_crossbars": sum(x["idle_crossbars"] for x in layers), "nonzero_cells": nonzero,
                        "cell_utilization": nonzero / max(1, self.crossbars * hw.xbar_rows * hw.xbar_cols)})
        return out
