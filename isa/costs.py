"""Energy and latency of every executed instruction, computed from ``hw.costs`` (docs/cost-model.md).

The formulas live in `isa` beside the cost tables so that the runtime (which charges them) and the compiler
(which estimates them for the precision search) share one definition.

Every cost formula of the runtime lives in this file. ``COST_UNITS`` maps the ``unit`` column of the
instruction table to a function ``(instr, ctx) -> Cost``; a hardware variant is a different `CostTable`, a
different convention is a different entry in ``COST_UNITS``. All energies are per batch element (per inference),
in pJ; latencies are in core clock cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .hardware import HardwareConfig
from .layout import LayoutSummary
from .numerics import skipped
from . import ops
from .program import Instr

#: Energy components, in reporting order.
COMPONENTS: tuple[str, ...] = (
    "crossbar", "dac", "adc", "sample_hold", "shift_add", "mvmu_regs",
    "alu", "regs", "tile_mem", "noc", "control", "leakage",
)


@dataclass(frozen=True)
class Cost:
    """Latency in cycles and energy per component (pJ per inference) of one executed instruction."""

    cycles: int
    energy: Mapping[str, float]


@dataclass(frozen=True)
class MvmuShape:
    """Rows, columns and weight slices of one programmed MVMU; for a packed MVMU (`isa.layout`) also its physical
    arrays, array drives per input digit and converted pairs per [row-group step][slice]. A naive MVMU has 2 arrays
    per slice, one step, and converts every (slice, column)."""

    rows: int
    cols: int
    slices: int
    arrays: int | None = None
    array_steps: int | None = None
    step_counts: tuple[tuple[int, ...], ...] | None = None

    @classmethod
    def packed(cls, rows: int, cols: int, slices: int, summary: LayoutSummary) -> "MvmuShape":
        """The shape of a packed MVMU from its layout's summary."""
        return cls(rows, cols, slices, summary.arrays, summary.array_steps, summary.step_counts)

    def step_table(self) -> np.ndarray:
        """(steps, slices) conversions per input digit: entry [g, s] counts the (slice s, column) pairs converted
        in row-group step g (before SKIP)."""
        if self.step_counts is None:
            return np.full((1, self.slices), self.cols, dtype=np.int64)
        return np.array(self.step_counts, dtype=np.int64).reshape(len(self.step_counts), self.slices)

    @property
    def crossbars(self) -> int:
        """Physical arrays in use (2 per slice when naive)."""
        return 2 * self.slices if self.arrays is None else self.arrays

    @property
    def drives(self) -> int:
        """Physical array drives per input digit (one per array holding lines of a row-group step)."""
        return 2 * self.slices if self.array_steps is None else self.array_steps


@dataclass(frozen=True)
class CostContext:
    """What a cost function may look at besides the instruction: hardware, the core's tile and its MVMUs."""

    hw: HardwareConfig
    tile: int
    mvmus: Mapping[int, MvmuShape]


CostFn = Callable[[Instr, CostContext], Cost]
COST_UNITS: dict[str, CostFn] = {}


def unit(name: str) -> Callable[[CostFn], CostFn]:
    """Register the cost function of a table ``unit``."""

    def register(fn: CostFn) -> CostFn:
        COST_UNITS[name] = fn
        return fn

    return register


def instr_cost(instr: Instr, ctx: CostContext) -> Cost:
    """The cost of executing ``instr`` once."""
    return COST_UNITS[instr.spec.unit](instr, ctx)


# ---- helpers ---------------------------------------------------------------------------------------------------
def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def mesh_side(hw: HardwareConfig) -> int:
    """Side of the square mesh the tiles sit on (tile t at (t % side, t // side))."""
    return math.isqrt(max(hw.tiles, 1) - 1) + 1


def hops(hw: HardwareConfig, src: int, dst: int) -> int:
    """Manhattan distance between two tiles on the mesh."""
    side = mesh_side(hw)
    return abs(src % side - dst % side) + abs(src // side - dst // side)


def transit_cycles(hw: HardwareConfig, src: int, dst: int) -> int:
    """Cycles from the completion of a send to the message's arrival at the destination tile."""
    return hops(hw, src, dst) * hw.costs.hop_cycles


def mem_accesses(hw: HardwareConfig, n: int) -> int:
    """Tile-memory bus accesses (also NoC flits) for ``n`` words."""
    return _ceil_div(n, hw.mem_bus_words)


def _made(hw: HardwareConfig, shape: MvmuShape, ibits: int, skip: int) -> np.ndarray:
    """(ibits, steps) conversions made per input digit and row-group step (rule SKIP applied)."""
    table = shape.step_table()
    made = ~skipped(ibits, table.shape[1], hw.cell_bits, skip)  # (ibits, S)
    return made.astype(np.int64) @ table.T


def conversions_per_step(hw: HardwareConfig, shape: MvmuShape, ibits: int, skip: int) -> list[int]:
    """A/D conversions of each input digit: one per converted (slice, column) pair not skipped (rule SKIP)."""
    return [int(v) for v in _made(hw, shape, ibits, skip).sum(axis=1)]


def mvmu_cycles(hw: HardwareConfig, shape: MvmuShape, ibits: int, adc: int, skip: int = -1) -> int:
    """Latency of one MVMU: one crossbar read, then for each input digit and each row-group step (one step
    without temporal mapping) the longer of a read and the ADC sweep over that step's conversions -- reads of
    the next step overlap conversion of the previous one (the temporal pipeline); skipped conversions take no
    time."""
    c = hw.costs
    total = c.xbar_read_ns
    for conv in _made(hw, shape, ibits, skip).ravel().tolist():
        sweep_ns = _ceil_div(conv, hw.adcs_per_mvmu) * c.adc_ns_per_bit_sweep * adc / 128
        total += max(c.xbar_read_ns, sweep_ns)
    return hw.cycles(total) + 1


def mvmu_energy(hw: HardwareConfig, shape: MvmuShape, ibits: int, adc: int, skip: int = -1) -> dict[str, float]:
    """Data-independent energy of one MVMU firing once (per batch element). The DAC and, with the conductance
    model, the crossbar are charged per execution from the actual digits (runtime/handlers.py `_mvm`)."""
    c = hw.costs
    r, cols = shape.rows, shape.cols
    conversions = sum(conversions_per_step(hw, shape, ibits, skip))
    energy = {
        "adc": conversions * c.adc_conversion_pj(adc),
        "sample_hold": conversions * c.sample_hold_pj,
        "shift_add": conversions * c.shift_add_pj,
        "mvmu_regs": r * c.xbar_in_read_pj + cols * c.xbar_out_pj,
    }
    if c.xbar_energy == "static":
        energy["crossbar"] = ibits * shape.drives * c.xbar_read_pj  # one read per array and row-group step
    return energy


def leakage_pj(hw: HardwareConfig, adc_bits: list[int], cycles: int) -> float:
    """ADC leakage over the run: mW per bit x bits x ADCs per MVMU, summed over programmed MVMUs, x ns (= pJ)."""
    ns = cycles / hw.clock_ghz
    return sum(hw.costs.adc_leak_mw_per_bit * b * hw.adcs_per_mvmu for b in adc_bits) * ns


def _n(instr: Instr) -> int:
    """The vector length of an instruction with an ``n`` field."""
    n: int = getattr(instr, "n")
    return n


def _add(total: dict[str, float], part: Mapping[str, float]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0.0) + v


# ---- per unit ----------------------------------------------------------------------------------------------------
@unit("mvm")
def _mvm(instr: Instr, ctx: CostContext) -> Cost:
    assert isinstance(instr, ops.Mvm)
    energy: dict[str, float] = {}
    cycles = 1
    for k, shape in ctx.mvmus.items():
        if instr.mask >> k & 1:
            _add(energy, mvmu_energy(ctx.hw, shape, instr.ibits, instr.adc, instr.skip))
            cycles = max(cycles, mvmu_cycles(ctx.hw, shape, instr.ibits, instr.adc, instr.skip))
    return Cost(cycles, energy)


def _alu(pj_field: str) -> CostFn:
    def cost(instr: Instr, ctx: CostContext) -> Cost:
        hw = ctx.hw
        n = _n(instr)
        sources = sum(1 for f in instr.spec.fields if f.kind == "reg") - 1
        energy = {"alu": n * getattr(hw.costs, pj_field), "regs": (sources + 1) * n * hw.costs.reg_pj}
        return Cost(_ceil_div(n, hw.alu_lanes), energy)

    return cost


COST_UNITS["alu_add"] = _alu("alu_add_pj")
COST_UNITS["alu_mul"] = _alu("alu_mul_pj")
COST_UNITS["alu_act"] = _alu("alu_act_pj")


@unit("reg")
def _reg(instr: Instr, ctx: CostContext) -> Cost:
    c = ctx.hw.costs
    if isinstance(instr, ops.Set):
        return Cost(1, {"regs": c.reg_pj})
    n = _n(instr)
    return Cost(_ceil_div(n, ctx.hw.alu_lanes), {"regs": 2 * n * c.reg_pj})


@unit("scalar")
def _scalar(instr: Instr, ctx: CostContext) -> Cost:
    c = ctx.hw.costs
    return Cost(1, {"alu": c.alu_add_pj, "regs": 3 * c.reg_pj})


def _mem(instr: Instr, ctx: CostContext) -> Cost:
    hw = ctx.hw
    n = _n(instr)
    acc = mem_accesses(hw, n)
    energy = {"tile_mem": acc * hw.costs.mem_access_pj, "regs": n * hw.costs.reg_pj}
    return Cost(acc * hw.costs.mem_access_cycles, energy)


COST_UNITS["mem_load"] = _mem
COST_UNITS["mem_store"] = _mem


@unit("net_send")
def _send(instr: Instr, ctx: CostContext) -> Cost:
    hw = ctx.hw
    assert isinstance(instr, ops.Send)
    n, dst = instr.n, instr.tile
    acc = flits = mem_accesses(hw, n)
    energy = {"tile_mem": acc * hw.costs.mem_access_pj,
              "noc": flits * (hops(hw, ctx.tile, dst) + 1) * hw.costs.router_pj}
    return Cost(acc * hw.costs.mem_access_cycles + flits, energy)


@unit("net_recv")
def _recv(instr: Instr, ctx: CostContext) -> Cost:
    hw = ctx.hw
    n = _n(instr)
    acc = flits = mem_accesses(hw, n)
    energy = {"noc": flits * hw.costs.fifo_pj, "tile_mem": acc * hw.costs.mem_access_pj}
    return Cost(acc * hw.costs.mem_access_cycles, energy)


@unit("control")
def _control(instr: Instr, ctx: CostContext) -> Cost:
    return Cost(1, {"control": ctx.hw.costs.fetch_pj})
