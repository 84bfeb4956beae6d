"""The cost model: energy and latency of every executed instruction, and the one accountant that charges them
(docs/cost-model.md).

Every cost formula lives here, beside the cost tables, so the runtime (which charges them) and the compiler's
precision search (which estimates them, `compiler/search/cost.py`) share one definition:

* **static** charges per executed instruction: ``COST_UNITS`` maps the ``unit`` column of the instruction table
  to a function ``(instr, ctx) -> Cost``; a hardware variant is a different `CostTable`, a different convention
  a different entry in ``COST_UNITS``;
* **data-dependent** charges of an MVMU firing (`mvm_data_energy`: DAC pulses and, with the conductance model,
  crossbar read energy from the active input digits and the programmed cell levels);
* **leakage** of the ADCs over the run (`leakage_pj`).

`Accountant` applies them during a run: the runtime opens one `CoreMeter` per core at load time (static costs
and latencies per pc), notifies it of every executed instruction (`CoreMeter.executed`) and of the data of every
MVMU firing (`CoreMeter.mvm`), and asks the accountant for the `Ledger` (energy per component, instruction and
layer; busy cycles) at the end. All energies are per batch element (per inference), in pJ; latencies are in core
clock cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from .hardware import HardwareConfig
from .layout import LayoutSummary, naive_arrays, summarize
from .numerics import n_slices, skipped
from . import ops
from .program import Instr, MvmuImage

#: Energy components, in reporting order.
COMPONENTS: tuple[str, ...] = (
    "crossbar", "dac", "adc", "sample_hold", "shift_add", "mvmu_regs",
    "alu", "regs", "tile_mem", "noc", "control", "leakage",
)


@dataclass(frozen=True)
class Cost:
    """Latency in cycles and energy per component of one executed instruction: ``energy`` is spent by every
    batch lane (pJ per inference), ``per_batch`` once for the whole batch (a crossbar write serves every
    inference of the batch: `Ledger` divides it by the batch)."""

    cycles: int
    energy: Mapping[str, float]
    per_batch: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MvmuShape:
    """Rows, columns and weight slices of one programmed MVMU; for a packed MVMU (`isa.layout`) also its physical
    arrays, array drives per input digit and converted pairs per [row-group step][slice]. A naive MVMU has
    `isa.layout.naive_arrays` arrays, one step, and converts every (slice, column)."""

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
        """Physical arrays in use (`naive_arrays` when naive)."""
        return naive_arrays(self.slices) if self.arrays is None else self.arrays

    @property
    def drives(self) -> int:
        """Physical array drives per input digit (one per array holding lines of a row-group step)."""
        return naive_arrays(self.slices) if self.array_steps is None else self.array_steps

    @property
    def idle(self) -> bool:
        """A packed MVMU none of whose bit lines is live (an all-zero block): it has no crossbar, drives no row,
        reads no input register and converts nothing; its outputs are zero."""
        return self.drives == 0


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


def port_hops(hw: HardwareConfig, tile: int) -> int:
    """Routers a flit from the input port crosses to ``tile``: the port sits beside tile 0's router."""
    return hops(hw, 0, tile) + 1


def flit_bits(hw: HardwareConfig) -> int:
    """Bits of one flit: the tile-memory bus width (`mem_bus_words` words of `datapath_bits`)."""
    return hw.mem_bus_words * hw.datapath_bits


def mem_accesses(hw: HardwareConfig, n: int) -> int:
    """Tile-memory bus accesses (also NoC flits) for ``n`` words."""
    return _ceil_div(n, hw.mem_bus_words)


def _made(hw: HardwareConfig, shape: MvmuShape, ibits: int, skip: int) -> np.ndarray:
    """(ibits, steps) conversions made per input digit and row-group step (rule SKIP applied)."""
    table = shape.step_table()
    made = ~skipped(ibits, table.shape[1], hw.cell_bits, skip)  # (ibits, S)
    counts: np.ndarray = made.astype(np.int64) @ table.T
    return counts


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
    model, the crossbar are charged from the actual digits (`mvm_data_energy`). An idle MVMU only writes its
    (zero) output registers."""
    c = hw.costs
    r, cols = (0 if shape.idle else shape.rows), shape.cols
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


def conductance_pj(hw: HardwareConfig) -> float:
    """Crossbar read energy per (DAC pulse x cell level) under the conductance model (0 with ``xbar_energy``
    "static"): a full read of every cell at the top level costs ``xbar_read_pj``."""
    c = hw.costs
    if c.xbar_energy == "static":
        return 0.0
    return c.xbar_read_pj / (hw.xbar_rows * hw.xbar_cols * ((1 << hw.cell_bits) - 1))


def row_levels(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """The ``gsum`` of `mvm_data_energy`: per crossbar row, the cell levels of its (+) and (-) lines over every
    slice and column (``pos``, ``neg``: (slices, rows, cols) from `isa.numerics.weight_slices`), as integers."""
    levels: np.ndarray = (pos + neg).sum(axis=(0, 2)).astype(np.int64)
    return levels


def mvm_events(row_pulses: np.ndarray, gsum: np.ndarray | None) -> tuple[int, int]:
    """The data-dependent events of MVMU firings, exact integers: (DAC pulses, cell levels under driven rows)
    for ``row_pulses[r]`` non-zero digits on row r (summed over a batch) and ``gsum`` (`row_levels`; None: the
    levels are not needed)."""
    pulses = np.asarray(row_pulses).astype(np.int64)
    return int(pulses.sum()), (0 if gsum is None else int(np.asarray(gsum).astype(np.int64) @ pulses))


def events_energy(hw: HardwareConfig, pulses: int, levels: int, batch: int) -> dict[str, float]:
    """Data-dependent energy per inference of ``pulses`` DAC pulses and ``levels`` driven cell levels counted
    over ``batch`` inferences: ``dac_pj`` per pulse and, with the conductance model, `conductance_pj` per level.
    Counting integers and dividing once makes a batch run in chunks cost exactly what one pass costs."""
    energy = {"dac": hw.costs.dac_pj * pulses / batch}
    coef = conductance_pj(hw)
    if coef:
        energy["crossbar"] = coef * levels / batch
    return energy


def mvm_data_energy(hw: HardwareConfig, row_pulses: np.ndarray, gsum: np.ndarray | None,
                    batch: int) -> dict[str, float]:
    """Data-dependent energy (per inference) of MVMU firings whose input rows received ``row_pulses[r]`` non-zero
    digits in total over a batch of ``batch`` inferences: `events_energy` of `mvm_events`."""
    pulses, levels = mvm_events(row_pulses, gsum if conductance_pj(hw) else None)
    return events_energy(hw, pulses, levels, batch)


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


@unit("mem_free")
def _free(instr: Instr, ctx: CostContext) -> Cost:
    """Releasing n words updates their reader counts: the tile-memory accesses of n words, no register."""
    hw = ctx.hw
    acc = mem_accesses(hw, _n(instr))
    return Cost(acc * hw.costs.mem_access_cycles, {"tile_mem": acc * hw.costs.mem_access_pj})


@unit("net_send")
def _send(instr: Instr, ctx: CostContext) -> Cost:
    hw = ctx.hw
    assert isinstance(instr, ops.Send)
    n, dst = instr.n, instr.tile
    acc = flits = mem_accesses(hw, n)
    routers = port_hops(hw, ctx.tile) if dst == hw.port_tile else hops(hw, ctx.tile, dst) + 1
    energy = {"tile_mem": acc * hw.costs.mem_access_pj, "noc": flits * routers * hw.costs.router_pj}
    if dst == hw.port_tile:  # to the host through the port (`isa.inport`): the link, per flit
        energy["port"] = flits * flit_bits(hw) * hw.costs.port_pj_per_bit
    return Cost(acc * hw.costs.mem_access_cycles + flits, energy)


@unit("net_recv")
def _recv(instr: Instr, ctx: CostContext) -> Cost:
    hw = ctx.hw
    n = _n(instr)
    acc = flits = mem_accesses(hw, n)
    energy = {"noc": flits * hw.costs.fifo_pj, "tile_mem": acc * hw.costs.mem_access_pj}
    if getattr(instr, "tile", None) == hw.port_tile:  # from the input port: the host link and the routers to this tile, per flit
        energy["port"] = flits * flit_bits(hw) * hw.costs.port_pj_per_bit
        energy["noc"] += flits * port_hops(hw, ctx.tile) * hw.costs.router_pj
    return Cost(acc * hw.costs.mem_access_cycles, energy)


@unit("control")
def _control(instr: Instr, ctx: CostContext) -> Cost:
    return Cost(1, {"control": ctx.hw.costs.fetch_pj})


# ---- reprogramming (prog; docs/cost-model.md, "Reprogramming rounds") ---------------------------------------------
@dataclass(frozen=True)
class MvmuWrite:
    """What one prog writes into one MVMU: its physical arrays and cells, the row writes of its slowest array
    and the bits read from the off-chip weight buffer."""

    arrays: int
    cells: int
    row_writes: int
    bits: int


def mvmu_write(hw: HardwareConfig, shape: MvmuShape) -> MvmuWrite:
    """The write of one MVMU image: every (array, row-group step) the MVMU drives is written whole -- its
    ``rows`` rows across all ``xbar_cols`` bit lines, zeros included (a RESET clears what an earlier round left
    there) -- each array by its own row driver, rows one after the other; the buffer holds the cells' levels
    (``cell_bits`` each). An idle MVMU writes nothing."""
    if shape.idle:
        return MvmuWrite(0, 0, 0, 0)
    cells = shape.drives * shape.rows * hw.xbar_cols
    steps = _ceil_div(shape.drives, shape.crossbars)
    return MvmuWrite(shape.crossbars, cells, steps * shape.rows, cells * hw.cell_bits)


def image_shape(img: MvmuImage, hw: HardwareConfig) -> MvmuShape:
    """The shape the cost model charges for an MVMU image (packed when it carries a layout)."""
    rows, cols = np.shape(img.weights)
    slices = n_slices(img.weight_bits, hw.cell_bits, img.encoding)
    if img.layout is None:
        return MvmuShape(rows, cols, slices)
    return MvmuShape.packed(rows, cols, slices, summarize(np.asarray(img.layout)))


def prog_writes(instr: Instr, ctx: CostContext) -> dict[int, MvmuWrite]:
    """The write of each MVMU a prog selects (MVMUs without an image are left out: the runtime faults on them)."""
    assert isinstance(instr, ops.Prog)
    return {k: mvmu_write(ctx.hw, shape) for k, shape in ctx.mvmus.items() if instr.mask >> k & 1}


def write_energy(hw: HardwareConfig, cells: int, bits: int) -> float:
    """Energy of writing ``cells`` cells whose ``bits`` of levels come from the off-chip buffer (pJ, once)."""
    return cells * hw.costs.xbar_write_pj + bits * hw.costs.offchip_pj_per_bit


def offchip_ns(hw: HardwareConfig, bits: int) -> float:
    """Time one core takes to move ``bits`` over the off-chip link, shared evenly by every core of the chip."""
    return bits * hw.tiles * hw.cores_per_tile / hw.costs.offchip_bits_per_ns


@unit("prog")
def _prog(instr: Instr, ctx: CostContext) -> Cost:
    """The MVMUs of one prog are written in parallel while their images stream in over the core's share of the
    off-chip link: the latency is the longer of the two; the energy is spent once per batch."""
    hw, writes = ctx.hw, prog_writes(instr, ctx).values()
    cells, bits = sum(w.cells for w in writes), sum(w.bits for w in writes)
    rows = max((w.row_writes for w in writes), default=0)
    ns = max(rows * hw.costs.xbar_write_ns, offchip_ns(hw, bits))
    return Cost(hw.cycles(ns), {}, {"program": write_energy(hw, cells, bits)})


# ---- the accountant ------------------------------------------------------------------------------------------------
FAULT_COST = Cost(1, {})  # an instruction that failed its load-time checks: it faults when executed


class CoreCosts:
    """The static side of one core, fixed at load time: the cost (latency, energy) of each pc."""

    def __init__(self, hw: HardwareConfig, tile: int, core: int, mvmus: Mapping[int, MvmuShape]) -> None:
        self.hw, self.tile, self.core = hw, tile, core
        self.ctx = CostContext(hw, tile, mvmus)
        self.instrs: list[Instr] = []
        self.static: list[Cost] = []

    @property
    def name(self) -> str:
        """``T.C``."""
        return f"{self.tile}.{self.core}"

    def load(self, instr: Instr, runnable: bool = True) -> int:
        """Cost the next pc (``runnable`` False: it faults when run, `FAULT_COST`); returns its latency."""
        cost = instr_cost(instr, self.ctx) if runnable else FAULT_COST
        self.instrs.append(instr)
        self.static.append(cost)
        return cost.cycles


class CoreMeter:
    """The listener of one core during one run: executions per pc (count, first issue, last completion), the
    data-dependent energy per pc, the ADC resolution each programmed MVMU last converted at, and the core's busy
    intervals (``busy_runs``: maximal [start, end) runs of back-to-back instructions, flattened; a run ends where
    the next instruction issues later than the last one completed, i.e. where the core waited)."""

    def __init__(self, costs: CoreCosts) -> None:
        self.costs = costs
        n = len(costs.static)
        self.counts, self.first, self.last = [0] * n, [-1] * n, [0] * n
        self.events: dict[int, list[int]] = {}  # pc -> [DAC pulses, driven cell levels] over the batch (exact)
        self.adc_bits: dict[int, int] = {}
        self.batch = 0
        self.counts_levels = conductance_pj(costs.hw) > 0  # driven cell levels counted only where they cost energy
        self.busy_runs: list[int] = []  # closed runs [start0, end0, start1, end1, ...]; the open one below
        self._run_start = self._run_end = 0

    def executed(self, pc: int, start: int, end: int) -> None:
        """Instruction ``pc`` was issued at ``start`` and completed at ``end``."""
        self.counts[pc] += 1
        if self.first[pc] < 0:
            self.first[pc] = start
        self.last[pc] = end
        if start != self._run_end:  # the core waited: close its busy run
            if self._run_end > self._run_start:
                self.busy_runs += (self._run_start, self._run_end)
            self._run_start = start
        self._run_end = end

    def spans(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """Instructions issued at ``starts`` and completed at ``ends`` (int arrays in issue order; the fast mode's
        batched loops): the busy runs `executed` would have recorded for them one by one."""
        if not len(starts):
            return
        prev = np.concatenate([[self._run_end], ends[:-1]])
        brk = np.flatnonzero(starts != prev)  # where the core waited
        if len(brk):
            opened = np.concatenate([[self._run_start], starts[brk[:-1]]])
            closed = prev[brk]
            keep = closed > opened
            self.busy_runs += np.stack([opened[keep], closed[keep]], axis=1).reshape(-1).tolist()
            self._run_start = int(starts[brk[-1]])
        self._run_end = int(ends[-1])

    def busy_intervals(self) -> list[tuple[int, int]]:
        """The core's busy intervals [start, end) in cycles, in time order (`busy_runs` and the open run)."""
        runs = self.busy_runs + ([self._run_start, self._run_end] if self._run_end > self._run_start else [])
        return list(zip(runs[0::2], runs[1::2]))

    def mvm(self, pc: int, mvmu: int, adc: int, row_pulses: np.ndarray, gsum: np.ndarray | None,
            batch: int) -> None:
        """MVMU ``mvmu`` fired for instruction ``pc`` at ``adc`` bits with ``row_pulses`` non-zero input digits
        per row (summed over the ``batch`` this meter runs): count its `mvm_events`, remember the resolution for
        leakage."""
        self.adc_bits[mvmu] = adc
        self.batch = batch
        pulses, levels = mvm_events(row_pulses, gsum if self.counts_levels else None)
        self.fired(pc, (mvmu,), adc, pulses, levels, batch)

    def fired(self, pc: int, mvmus: tuple[int, ...], adc: int, pulses: int, levels: int, batch: int) -> None:
        """MVMUs ``mvmus`` fired together for instruction ``pc`` at ``adc`` bits: ``pulses`` DAC pulses and
        ``levels`` driven cell levels in total (their `mvm_events`, summed; levels only if ``counts_levels``)."""
        for k in mvmus:
            self.adc_bits[k] = adc
        self.batch = batch
        ev = self.events.setdefault(pc, [0, 0])
        ev[0] += pulses
        ev[1] += levels

    def absorb(self, other: "CoreMeter") -> None:
        """Add the events of ``other``, the same core run on another part of the batch; the control flow must be
        the same (counts and times), which `Machine` checks before."""
        for pc, (pulses, levels) in other.events.items():
            ev = self.events.setdefault(pc, [0, 0])
            ev[0] += pulses
            ev[1] += levels
        self.adc_bits.update(other.adc_bits)
        self.batch += other.batch

    def data_energy(self, pc: int, batch: int) -> dict[str, float]:
        """Data-dependent energy per inference of every execution of ``pc`` over a run of ``batch`` inferences."""
        ev = self.events.get(pc)
        return events_energy(self.costs.hw, ev[0], ev[1], batch) if ev else {}

    @property
    def busy(self) -> int:
        """Cycles this core spent executing (latency x executions)."""
        return sum(n * c.cycles for n, c in zip(self.counts, self.costs.static))

    def leaking_adc_bits(self) -> list[int]:
        """ADC resolution of every programmed MVMU that has a crossbar (full resolution if it never converted);
        idle MVMUs have no ADC to leak."""
        return [self.adc_bits.get(k, self.costs.hw.full_adc_bits) for k, shape in self.costs.ctx.mvmus.items()
                if not shape.idle]


@dataclass
class Ledger:
    """What a run cost per inference: energy per component, per mnemonic {count, energy_pj, cycles}, per layer
    {energy_pj, busy_cycles, start, end, instructions}, busy cycles per core, executed instructions, and energy
    per layer and component (``per_layer_component[node][component]``, leakage excluded as for layers)."""

    per_component: dict[str, float]
    per_instruction: dict[str, dict[str, float]]
    per_layer: dict[str, dict[str, float]]
    busy: dict[str, int]
    dynamic_instructions: int
    writes: dict[str, list[int]] = field(default_factory=dict)  # "T.C.M" -> writes of each of the MVMU's arrays
    program_cycles: int = 0  # the longest time a core spent in prog (cores program in parallel)
    cells_written: int = 0  # cells written by every prog of the run
    per_layer_component: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def energy_pj(self) -> float:
        """Total energy."""
        return sum(self.per_component.values())


class Accountant:
    """Charges static, data-dependent and leakage costs through one path. At load time, `core` costs each core's
    code; each run takes fresh listeners (`meters`) that the runtime notifies, and `report` turns them into the
    run's counters."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        self.cores: list[CoreCosts] = []

    def core(self, tile: int, core: int, mvmus: Mapping[int, MvmuShape]) -> CoreCosts:
        """The static costs of (tile, core), whose programmed MVMUs have ``mvmus`` shapes (filled by `load`)."""
        costs = CoreCosts(self.hw, tile, core, mvmus)
        self.cores.append(costs)
        return costs

    def meters(self) -> list[CoreMeter]:
        """Fresh listeners for one run, one per core in `core` order."""
        return [CoreMeter(c) for c in self.cores]

    def report(self, meters: list[CoreMeter], cycles: int, batch: int, static: Ledger | None = None) -> Ledger:
        """The totals per inference of one run of ``batch`` inferences, from its ``meters``, over ``cycles``;
        leakage goes to the total and the ``leakage`` component only, not to instructions or layers.

        Two passes, in a fixed order whatever executed the run: the data-independent part (`static_report`:
        static energy, per-batch charges, leakage, counts, busy cycles; ``static`` if the caller kept it from a
        run with the same control flow, batch and cycles), then the data-dependent energy of every pc with
        events, in pc order."""
        led = _copied(static if static is not None else self.static_report(meters, cycles, batch))
        comp, per_instr, per_layer, layer_comp = led.per_component, led.per_instruction, led.per_layer, \
            led.per_layer_component
        for m in meters:
            for pc in sorted(m.events):
                if not m.counts[pc]:
                    continue
                instr = m.costs.instrs[pc]
                node = instr.node or "-"
                lc = layer_comp[node]
                e = 0.0
                for k, v in m.data_energy(pc, batch).items():
                    comp[k] = comp.get(k, 0.0) + v
                    lc[k] = lc.get(k, 0.0) + v
                    e += v
                per_instr[instr.op]["energy_pj"] += e
                per_layer[node]["energy_pj"] += e
        return led

    def static_report(self, meters: list[CoreMeter], cycles: int, batch: int) -> Ledger:
        """`report` without the data-dependent energy (a function of the control flow, ``batch`` and ``cycles``
        alone: the same for every run that shares them)."""
        comp: dict[str, float] = {k: 0.0 for k in COMPONENTS}
        per_instr: dict[str, dict[str, float]] = {}
        per_layer: dict[str, dict[str, float]] = {}
        layer_comp: dict[str, dict[str, float]] = {}
        for m in meters:
            for pc, cnt in enumerate(m.counts):
                if cnt:
                    per = {k: v * cnt / batch for k, v in m.costs.static[pc].per_batch.items()}  # per inference
                    _charge(m, pc, cnt, per, comp, per_instr, per_layer, layer_comp)
        adc_bits = [b for m in meters for b in m.leaking_adc_bits()]
        comp["leakage"] = leakage_pj(self.hw, adc_bits, cycles)
        writes, program_cycles, cells = _writes(meters)
        return Ledger(comp, per_instr, per_layer, {m.costs.name: m.busy for m in meters},
                      sum(sum(m.counts) for m in meters), writes, program_cycles, cells, layer_comp)


def _copied(led: Ledger) -> Ledger:
    """A copy of ``led`` whose dictionaries `Accountant.report` may add to."""
    return Ledger(dict(led.per_component), {k: dict(v) for k, v in led.per_instruction.items()},
                  {k: dict(v) for k, v in led.per_layer.items()}, dict(led.busy), led.dynamic_instructions,
                  {k: list(v) for k, v in led.writes.items()}, led.program_cycles, led.cells_written,
                  {k: dict(v) for k, v in led.per_layer_component.items()})


def _writes(meters: list[CoreMeter]) -> tuple[dict[str, list[int]], int, int]:
    """Writes per physical array of every programmed MVMU ("T.C.M" -> one count per array), the longest time
    one core spent programming and the cells written."""
    writes: dict[str, list[int]] = {}
    longest = cells = 0
    for m in meters:
        busy = 0
        for pc, cnt in enumerate(m.counts):
            instr = m.costs.instrs[pc]
            if not cnt or not isinstance(instr, ops.Prog):
                continue
            busy += cnt * m.costs.static[pc].cycles
            for k, w in prog_writes(instr, m.costs.ctx).items():
                row = writes.setdefault(f"{m.costs.name}.{k}", [])
                row.extend([0] * (w.arrays - len(row)))
                cells += cnt * w.cells
                for a in range(w.arrays):
                    row[a] += cnt
        longest = max(longest, busy)
    return writes, longest, cells


def _charge(m: CoreMeter, pc: int, cnt: int, data: dict[str, float], comp: dict[str, float],
            per_instr: dict[str, dict[str, float]], per_layer: dict[str, dict[str, float]],
            layer_comp: dict[str, dict[str, float]]) -> None:
    """Add ``cnt`` executions of instruction ``pc`` of meter ``m`` (``data``: their per-batch charges, per
    inference) to the totals."""
    instr, cost = m.costs.instrs[pc], m.costs.static[pc]
    e = 0.0
    lc = layer_comp.setdefault(instr.node or "-", {})
    for k, v in cost.energy.items():
        comp[k] = comp.get(k, 0.0) + v * cnt
        lc[k] = lc.get(k, 0.0) + v * cnt
        e += v * cnt
    for k, v in data.items():  # already summed over the executions
        comp[k] = comp.get(k, 0.0) + v
        lc[k] = lc.get(k, 0.0) + v
        e += v
    pi = per_instr.setdefault(instr.op, {"count": 0, "energy_pj": 0.0, "cycles": 0})
    pi["count"] += cnt
    pi["energy_pj"] += e
    pi["cycles"] += cost.cycles * cnt
    pl = per_layer.setdefault(instr.node or "-", {"energy_pj": 0.0, "busy_cycles": 0, "start": m.first[pc],
                                                  "end": m.last[pc], "instructions": 0})
    pl["energy_pj"] += e
    pl["busy_cycles"] += cost.cycles * cnt
    pl["start"] = min(pl["start"], m.first[pc])
    pl["end"] = max(pl["end"], m.last[pc])
    pl["instructions"] += cnt
