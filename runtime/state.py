"""Machine state: tile memories (values + valid bit + reader count + change time), cores, MVMU kernels, FIFOs.

Every register word and memory word holds one int64 per batch element: arrays are laid out (words, batch) so a
vector of n words at address a is the numpy view ``array[a:a+n]`` of shape (n, batch).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from isa import HardwareConfig, MvmuImage, XbarcError
from isa import numerics as nx
from isa.costs import CoreMeter, MvmuShape, row_levels
from isa.layout import LayoutSummary, check_layout, summarize

I64 = np.int64
_F64_EXACT = float(1 << 53)


class Fault(Exception):
    """Raised by a handler; the machine wraps it into a `RuntimeFault` naming core, pc, source line and node."""


class TileMemory:
    """One tile's memory: values (words, batch), valid bits, reader counts and the time each word last changed
    state (became valid or invalid). A valid word with reader count 0 stays valid for any number of reads."""

    def __init__(self, words: int, batch: int) -> None:
        self.words = words
        # every array grows on demand (`check`, `write`) up to ``words``: a chip grown to hold whole ImageNet
        # tensors has millions of words per tile, most of them never touched
        first = min(words, 1024)
        self.values = np.zeros((first, batch), dtype=I64)
        self.valid = np.zeros(first, dtype=bool)
        self.readers = np.zeros(first, dtype=I64)
        self.time = np.zeros(first, dtype=I64)
        self.light = False  # `values_only`

    def check(self, addr: int, n: int, tile: int) -> None:
        """Fault unless words [addr, addr+n) exist; make sure their values are allocated."""
        end = addr + n
        if addr < 0 or end > self.words:
            raise Fault(f"memory words [{addr}, {end}) outside tile {tile} memory [0, {self.words})")
        if end > len(self.values):
            self._grow(end)

    def _grow(self, end: int) -> None:
        size = min(self.words, max(end, 2 * len(self.values)))
        self.values = _extended(self.values, size)
        if not self.light:
            self.valid, self.readers, self.time = (_extended(a, size) for a in (self.valid, self.readers,
                                                                                self.time))

    def values_only(self, size: int) -> None:
        """Hold only the values of ``size`` words, zero (a replay, `runtime.replay`: the size its recorded run
        ended with); valid bits, reader counts and times are not kept from here on."""
        self.values = np.zeros((size, self.values.shape[1]), dtype=I64)
        self.valid, self.readers, self.time = (np.zeros(0, dtype=a.dtype) for a in (self.valid, self.readers,
                                                                                     self.time))
        self.light = True

    def write(self, addr: int, values: np.ndarray, count: int, time: int) -> None:
        """Store (n, batch) values: valid, ``count`` readers, changed at ``time``."""
        n = len(values)
        if addr + n > len(self.values):
            self._grow(addr + n)
        self.values[addr:addr + n] = values
        if self.light:
            return
        self.valid[addr:addr + n] = True
        self.readers[addr:addr + n] = count
        self.time[addr:addr + n] = time

    def consume(self, addr: int, n: int, time: int) -> None:
        """Count a read of n valid words (the caller copies their values first, if it keeps them: no copy here):
        `release`."""
        self.release(addr, n, time)

    def release(self, addr: int, n: int, time: int) -> None:
        """Decrement the positive reader counts of n valid words; words reaching 0 become invalid at ``time``."""
        rc = self.readers[addr:addr + n]
        live = rc > 0
        if live.any():
            rc -= live
            gone = live & (rc == 0)
            self.valid[addr:addr + n][gone] = False
            self.time[addr:addr + n][gone] = time


def _extended(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` zero-extended to ``size`` rows."""
    out = np.zeros((size,) + a.shape[1:], dtype=a.dtype)
    out[:len(a)] = a
    return out


@dataclass
class MvmuKernel:
    """One programmed MVMU, pre-sliced for fast exact evaluation.

    ``weights`` is the (R, C) integer matrix in its narrowest type; the matrices an MVM multiplies by are derived
    from it when a stack is built (`slice_differences`, `weight_matrix`: nothing float is kept per MVMU).
    ``vmin``/``vmax`` bound every bit-line value, so an ADC whose range covers them never clips and the MVM
    equals the exact product ``weights^T @ x``.
    """

    mvmu: int
    rows: int
    cols: int
    slices: int
    weights: np.ndarray
    weight_bits: int
    cell_bits: int
    scale: np.ndarray
    vmin: int
    vmax: int
    wmax: int
    node: str = ""
    encoding: str = "twos"
    absmax: int = 0
    gsum: np.ndarray | None = None
    active: tuple[int, ...] | None = None  # packed: the slices with a non-zero cell (the others add nothing)
    packing: LayoutSummary | None = None  # packed: the summary of the image's bit-line layout
    all_slices: int = 0

    @property
    def idle(self) -> bool:
        """A packed MVMU whose layout places no bit line (`MvmuShape.idle`): no crossbar, no DAC, no conversion;
        it outputs zeros (the layout check guarantees its weights are all zero)."""
        return self.packing is not None and self.packing.array_steps == 0

    @property
    def shape(self) -> MvmuShape:
        """What the cost model charges for this MVMU."""
        if self.packing is None:
            return MvmuShape(self.rows, self.cols, self.all_slices)
        return MvmuShape.packed(self.rows, self.cols, self.all_slices, self.packing)

    @classmethod
    def from_image(cls, img: MvmuImage, hw: HardwareConfig) -> "MvmuKernel":
        """Validate an image against the hardware and precompute its matrices."""
        w = np.asarray(img.weights, dtype=I64)
        where = f"MVMU image tile {img.tile} core {img.core} mvmu {img.mvmu}"
        if w.ndim != 2 or not (0 < w.shape[0] <= hw.xbar_rows and 0 < w.shape[1] <= hw.xbar_cols):
            raise XbarcError(f"{where}: shape {w.shape} does not fit a {hw.xbar_rows}x{hw.xbar_cols} crossbar")
        if not 0 <= img.mvmu < hw.mvmus_per_core:
            raise XbarcError(f"{where}: MVMU index outside [0, {hw.mvmus_per_core})")
        if not 1 <= img.weight_bits <= 63:
            raise XbarcError(f"{where}: weight_bits={img.weight_bits} outside [1, 63]")
        if w.size and int(np.abs(w).max()) > nx.qmax(img.weight_bits):
            raise XbarcError(f"{where}: weights do not fit weight_bits={img.weight_bits} "
                             f"(|w| <= {nx.qmax(img.weight_bits)}, got {int(np.abs(w).max())})")
        if img.encoding not in nx.WEIGHT_ENCODINGS:
            raise XbarcError(f"{where}: weight encoding {img.encoding!r} not in {nx.WEIGHT_ENCODINGS}")
        pos, neg = nx.weight_slices(w, img.weight_bits, hw.cell_bits, img.encoding)
        active = summary = None
        if img.layout is not None:  # packed (spatial/temporal mapping): only placed pairs are read and converted
            check_layout(img.layout, pos, neg, hw, where)
            summary = summarize(np.asarray(img.layout))
            live = [i for i in range(len(pos)) if pos[i].any() or neg[i].any()]  # all-zero slices add nothing
            active = tuple(live)
            pos, neg = pos[live], neg[live]
        d = pos - neg  # (S, R, C)
        s, r, c = d.shape
        ids = active if active is not None else range(s)
        scale = np.array([float(1 << (hw.cell_bits * i)) for i in ids])
        return cls(img.mvmu, r, c, s, weights=w.astype(nx.narrowest_int(w)), weight_bits=img.weight_bits,
                   cell_bits=hw.cell_bits, scale=scale,
                   vmin=int(np.minimum(d, 0).sum(axis=1).min(initial=0)),
                   vmax=int(np.maximum(d, 0).sum(axis=1).max(initial=0)),
                   wmax=int(np.abs(w).max()) if w.size else 0, node=img.node, encoding=img.encoding,
                   absmax=int(np.abs(d).sum(axis=1).max(initial=0)),
                   gsum=row_levels(pos, neg), active=active, packing=summary,
                   all_slices=nx.n_slices(img.weight_bits, hw.cell_bits, img.encoding))

    def slice_differences(self) -> np.ndarray:
        """(S, C, R) slice differences pos - neg of the converted slices (the bit lines' weights)."""
        pos, neg = nx.weight_slices(self.weights.astype(I64), self.weight_bits, self.cell_bits, self.encoding)
        if self.active is not None:
            pos, neg = pos[list(self.active)], neg[list(self.active)]
        d: np.ndarray = (pos - neg).transpose(0, 2, 1)
        return d

    def weight_matrix(self) -> np.ndarray:
        """(R, C) int64 weights the slices reconstruct."""
        return self.weights.astype(I64)

    def never_clips(self, adc: int, enc: int = 0) -> bool:
        """Whether an ``adc``-bit conversion can never clip any bit line of this matrix (digits in {0, 1}, or
        in {-1, 0, 1} with CSD inputs, ``enc`` 1)."""
        if enc:
            return self.absmax <= nx.qmax(adc)
        return nx.qmin(adc) <= self.vmin and self.vmax <= nx.qmax(adc)

    @property
    def slice_ids(self) -> tuple[int, ...]:
        """Significance index of each converted slice."""
        return tuple(range(self.slices)) if self.active is None else self.active

    def product_exact_in_f64(self, ibits: int) -> bool:
        """Whether W^T x in float64 is exact for every ``ibits``-bit input."""
        return self.rows * self.wmax * float(1 << (ibits - 1)) < _F64_EXACT

    def sum_dtype(self, adc: int) -> Any:
        """The narrowest float type that holds the per-digit slice sum of ``adc``-bit conversions exactly
        (None: int64 needed)."""
        bound = float(1 << (adc - 1)) * float(self.scale.sum())
        if bound < float(1 << 24):
            return np.float32
        return np.float64 if bound < _F64_EXACT else None


@dataclass
class CoreState:
    """One core: register file (core_regs, batch), pc, clock, wait state and its cost listener ``meter``.

    ``fifos`` and ``epoch`` are the machine's (shared, no back reference: no cycles to keep big arrays alive)."""

    tile: int
    core: int
    regs: np.ndarray
    mem: TileMemory
    fifos: dict[tuple[int, int, int], deque[tuple[int, np.ndarray]]]
    epoch: list[int]
    code: list[tuple[Any, Any, int]]
    pc: int = 0
    clock: int = 0
    halted: bool = False
    wait: tuple[Any, ...] | None = None
    wait_epoch: int = -1
    meter: CoreMeter | None = None  # the accountant's listener for this core (isa.costs)
    loops: dict[int, Any] = field(default_factory=dict)  # fast mode: loop head pc -> `runtime.loops.LoopPlan`
    backoff: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # fast mode: `runtime.loops.run_batched`
    batch: int = 0  # batch lanes (0: the register file's width; fast mode's wide files hold iterations x lanes)
    devices: dict[int, Any] | None = None  # opt-in non-ideal arrays by MVMU (runtime.devices.NoisyMvmu)
    gangs: dict[int, Any] = field(default_factory=dict)  # fast mode: loop head pc -> `runtime.gangs.Gang`
    parked: bool = False  # fast mode: waiting at a gang's head for the other members (`runtime.gangs`)
    index: int = -1  # position in the machine's cores
    trace: Any = None  # fast mode: the `runtime.replay.Trace` being recorded (shared by every core), or None

    @property
    def name(self) -> str:
        """``T.C``."""
        return f"{self.tile}.{self.core}"


@dataclass
class MachineState:
    """Everything that changes during a run: memories, FIFOs, per-tile change epochs and the cores."""

    hw: HardwareConfig
    batch: int
    memories: dict[int, TileMemory]
    fifos: dict[tuple[int, int, int], deque[tuple[int, np.ndarray]]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)
    cores: list[CoreState] = field(default_factory=list)

    def memory(self, tile: int) -> TileMemory:
        """The memory of ``tile``, allocated on first use (np.zeros pages are committed lazily)."""
        mem = self.memories.get(tile)
        if mem is None:
            mem = self.memories[tile] = TileMemory(self.hw.tile_mem_words, self.batch)
        return mem
