"""Hardware description (`HardwareConfig`) and its cost tables.

One description serves the compiler (mapping, register allocation, cost estimates) and the runtime (machine
state, energy and cycle accounting), so the two can never disagree on the machine they talk about.
Every number's source is in ``docs/cost-model.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, config_object, kind_text, number_text, value_text


@dataclass(frozen=True)
class CostTable:
    """Per-component energy (pJ) and latency (cycles at ``clock_ghz``) of one hardware variant.

    Energies are per event: a crossbar read is one physical crossbar driven by one input digit; an ADC conversion
    is one bit line of one (+)/(-) slice pair converted for one input digit.
    """

    # crossbar array (one physical 128x128 array of 2-bit cells, one input digit). xbar_energy "conductance":
    # xbar_read_pj is the energy of a whole array with every cell at its highest level and every row driven, and
    # a read costs it times the conductance its driven rows present (cell levels summed over the non-zero
    # input digits' rows) over that maximum; "static": xbar_read_pj per physical array per input digit (PUMA).
    xbar_energy: str = "conductance"
    xbar_read_pj: float = 170.0
    xbar_read_ns: float = 10.0
    # DAC: one row driven for one input digit
    dac_pj: float = 0.0035
    # ADC: energy of one conversion at b bits = adc_pj_per_bit * b (linear convention, PUMA); when
    # adc_pj_table is given it overrides the formula: adc_pj_table[b-1] is the energy at b bits.
    adc_pj_per_bit: float = 0.225
    adc_pj_table: tuple[float, ...] = ()
    # ADC time: a sweep over 128 bit lines at b bits takes adc_ns_per_bit_sweep * b
    adc_ns_per_bit_sweep: float = 12.5
    adc_leak_mw_per_bit: float = 0.025
    sample_hold_pj: float = 0.00001
    shift_add_pj: float = 0.045
    # MVMU input/output registers (per word)
    xbar_in_read_pj: float = 1.7
    xbar_in_write_pj: float = 0.16
    xbar_out_pj: float = 0.16
    # vector ALU (per element)
    alu_add_pj: float = 0.265
    alu_mul_pj: float = 0.565
    alu_act_pj: float = 0.234
    # core data register file (per word access)
    reg_pj: float = 0.57
    # tile memory: per access of mem_bus_words words
    mem_access_pj: float = 8.6 + 3.0 + 0.475
    mem_access_cycles: int = 2
    # network
    router_pj: float = 16.13
    hop_cycles: int = 31
    fifo_pj: float = 8.96
    # control: fetch/decode of one instruction
    fetch_pj: float = 0.0
    # ---- reprogramming (prog; docs/cost-model.md, "Reprogramming rounds") ----
    # one ReRAM cell written (SET or RESET pulse to its level); one crossbar row written (the cells of a row in
    # parallel: a SET phase then a RESET phase)
    xbar_write_pj: float = 2.0
    xbar_write_ns: float = 20.0
    # the off-chip buffer holding weight images and spilled activations: energy per bit moved, and the link's
    # bandwidth, shared evenly by every core of the chip (they all program at the start of a round)
    offchip_pj_per_bit: float = 20.0
    offchip_bits_per_ns: float = 204.8
    # ---- the host port (inputs and outputs streamed to and from the host; docs/cost-model.md, "The host port") ----
    # energy per bit of a flit between the host and the chip over its I/O links, and their bandwidth: ISAAC's
    # Table II, 4 HyperTransport links of 6.4 GB/s for 10.4 W: 10.4 W / 204.8 Gb/s = 50.78125 pJ per bit
    port_pj_per_bit: float = 10.4e12 / 204.8e9
    port_bits_per_ns: float = 204.8
    # ---- area (isa/area.py; docs/cost-model.md, "Area"): um^2 at the area_node_nm technology node. Defaults:
    # PUMA's simulator constants (ISAAC-derived, 32 nm); the ADC grows by adc_area_per_bit per bit of
    # resolution around adc_area_ref_bits (seed 002's TABLE I: 4042.5 um^2 at 10 bits, 577.5 at 5 bits).
    area_node_nm: float = 32.0
    xbar_um2: float = 25.0  # one 128x128 array of cells (scaled by rows x cols / 128^2)
    adc_um2: float = 1200.0  # one ADC at adc_area_ref_bits
    adc_area_ref_bits: int = 8
    adc_area_per_bit: float = 7.0 ** 0.2  # area ratio of b+1 to b bits: (4042.5 / 577.5)^(1/5)
    dac_um2: float = 0.167  # one 1-bit DAC (one row of one array)
    sample_hold_um2: float = 0.0390625  # one sample-and-hold (one column of one array)
    shift_add_um2: float = 60.0  # one shift-and-add unit (one per ADC)
    mvmu_in_regs_um2: float = 780.0  # an MVMU's input registers, per 128 words
    mvmu_out_regs_um2: float = 780.0  # an MVMU's output registers, per 128 words
    data_regs_um2: float = 3920.0  # a core's data registers, per 2048 words
    alu_um2: float = 4032.0  # one vector ALU lane
    core_ctrl_um2: float = 3262.5 + 11596.6  # a core's control unit and instruction memory
    tile_mem_um2: float = 86000.0  # tile memory (eDRAM), per 64 KB
    tile_bus_um2: float = 90000.0  # the tile's memory bus to its cores
    tile_ctrl_um2: float = 1450.0 + 1450.0 + 4400.0  # eDRAM controller, tile control unit, receive buffer
    router_um2: float = 47000.0 / 4  # a tile's share of a 4-port router (4 tiles per router)

    def __post_init__(self) -> None:
        _check_fields(self, COST_FIELDS, "hardware", "costs.")

    def adc_conversion_pj(self, bits: int) -> float:
        """Energy of one A/D conversion at ``bits`` of resolution."""
        if self.adc_pj_table:
            return float(self.adc_pj_table[bits - 1])
        return self.adc_pj_per_bit * bits


@dataclass(frozen=True)
class HardwareConfig:
    """A crossbar accelerator: tiles of cores of MVMUs of (+)/(-) crossbar pairs, with its cost table.

    Register file of a core (flat address space, one word holds one value per batch element)::

        [0, M*rows)                      MVMU k input registers at k*rows
        [M*rows, M*(rows+cols))          MVMU k output registers at M*rows + k*cols
        [M*(rows+cols), ... + data_regs) general data registers
    """

    name: str = "default"
    xbar_rows: int = 128
    xbar_cols: int = 128
    cell_bits: int = 2
    dac_bits: int = 1
    datapath_bits: int = 16
    max_weight_bits: int = 16
    max_input_bits: int = 32
    max_acc_bits: int = 32
    mvmus_per_core: int = 8
    # physical crossbars a core's MVMUs share (0: no limit, each MVMU has what its layout uses). A naive MVMU
    # uses 2 per weight slice; a packed one the arrays of its layout (isa/layout.py).
    xbars_per_core: int = 0
    adcs_per_mvmu: int = 8
    cores_per_tile: int = 8
    tiles: int = 64
    tile_mem_words: int = 65536
    mem_bus_words: int = 16
    data_regs: int = 4096
    alu_lanes: int = 16
    clock_ghz: float = 1.0
    costs: CostTable = field(default_factory=CostTable)

    def __post_init__(self) -> None:
        if not isinstance(self.costs, CostTable):
            raise ConfigError(f"hardware: field 'costs': must be a CostTable, got {type(self.costs).__name__}")
        _check_fields(self, HARDWARE_FIELDS, "hardware")
        _check_cross(self, "hardware")
        _check_event_times(self, "hardware")

    # ---- derived quantities -------------------------------------------------------------------------------
    @property
    def max_slices(self) -> int:
        """Cell-bit slices of the widest weight magnitude (sign handled by the (+)/(-) pair)."""
        return math.ceil((self.max_weight_bits - 1) / self.cell_bits)

    @property
    def full_adc_bits(self) -> int:
        """Signed ADC resolution that never clips: log2(rows * cell_max) + 1 sign bit (seed 002: 10 bits)."""
        return math.ceil(math.log2(self.xbar_rows * ((1 << self.cell_bits) - 1) + 1)) + 1

    @property
    def core_regs(self) -> int:
        """Words in one core's flat register file."""
        return self.mvmus_per_core * (self.xbar_rows + self.xbar_cols) + self.data_regs

    @property
    def data_base(self) -> int:
        """Address of the first general data register."""
        return self.mvmus_per_core * (self.xbar_rows + self.xbar_cols)

    def mvmu_in(self, k: int) -> int:
        """Address of MVMU ``k``'s first input register."""
        return k * self.xbar_rows

    def mvmu_out(self, k: int) -> int:
        """Address of MVMU ``k``'s first output register."""
        return self.mvmus_per_core * self.xbar_rows + k * self.xbar_cols

    @property
    def port_tile(self) -> int:
        """The tile number of the host port (a pseudo-tile beside tile 0's router): the first number past the
        chip's tiles, so a ``send`` or ``recv`` naming it talks to the host (docs/cost-model.md, "The host port")."""
        return self.tiles

    def cycles(self, ns: float) -> int:
        """Whole clock cycles covering ``ns`` nanoseconds (at least one)."""
        return max(1, math.ceil(ns * self.clock_ghz - 1e-9))

    # ---- (de)serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (round-trips through `from_dict`)."""
        d = dataclasses.asdict(self)
        d["costs"]["adc_pj_table"] = list(self.costs.adc_pj_table)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "hardware") -> "HardwareConfig":
        """Build from a dict (optionally ``"preset": NAME`` to start from; missing keys keep the preset's
        values). Every field is checked (`HARDWARE_FIELDS`, `COST_FIELDS`, cross-field limits): a `ConfigError`
        ``SOURCE: field 'NAME': PROBLEM`` names the first bad one, unknown keys included."""
        d, preset = config_object(d, "a hardware description", PRESETS, "default", source)
        costs = d.pop("costs", {})
        if costs is None:
            costs = {}
        if not isinstance(costs, Mapping):
            raise ConfigError(f"{source}: field 'costs': must be an object of cost fields, got {kind_text(costs)}")
        _reject_unknown(d, HARDWARE_FIELDS, source, "", ("costs", "preset"))
        _reject_unknown(costs, COST_FIELDS, source, "costs.")
        base = PRESETS[preset]
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls) if f.name != "costs"} | d
        cost_values = {f.name: getattr(base.costs, f.name) for f in dataclasses.fields(CostTable)} | dict(costs)
        _check_values(cost_values, COST_FIELDS, source, "costs.")
        cost_values["adc_pj_table"] = tuple(cost_values["adc_pj_table"])
        _check_values(values, HARDWARE_FIELDS, source, "")
        problem = _cross_problem(values | {"costs": cost_values}, source)
        if problem:
            raise ConfigError(problem)
        return dataclasses.replace(base, costs=dataclasses.replace(base.costs, **cost_values), **d)

    def with_changes(self, **changes: Any) -> "HardwareConfig":
        """Table merge: a copy with some fields (and ``costs`` fields, given as a dict) replaced (checked as
        `from_dict` checks a file)."""
        costs = changes.pop("costs", None) or {}
        _reject_unknown(changes, HARDWARE_FIELDS, "hardware", "", ("costs",))
        _reject_unknown(costs, COST_FIELDS, "hardware", "costs.")
        return dataclasses.replace(self, costs=dataclasses.replace(self.costs, **costs), **changes)


# ---- field checks ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    """The type and range of one hardware field: ``kind`` "int" (bool excluded), "float" (finite; ints
    accepted), "str", "choice" (one of ``choices``) or "floats" (a list of finite numbers); ``lo``/``hi`` bound
    numbers (inclusive; None: open); ``why`` says where a limit comes from."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    why: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not legal for this field, or None."""
        if self.kind == "str":
            return None if isinstance(value, str) else f"must be a string, got {value_text(value)}"
        if self.kind == "choice":
            ok = isinstance(value, str) and value in self.choices
            return None if ok else f"must be one of {', '.join(map(repr, self.choices))}, got {value_text(value)}"
        if self.kind == "floats":
            if not isinstance(value, (list, tuple)):
                return f"must be a list of {self._range('finite numbers')}, got {value_text(value)}"
            for i, v in enumerate(value):
                p = dataclasses.replace(self, kind="float").problem(v)
                if p:
                    return f"entry [{i}] {p}"
            return None
        number = "integer" if self.kind == "int" else "finite number"
        ok = not isinstance(value, bool) and (isinstance(value, int) if self.kind == "int"
                                              else isinstance(value, (int, float)) and math.isfinite(value))
        ok = ok and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)
        return None if ok else f"must be {'an' if number[0] == 'i' else 'a'} {self._range(number)}, got " \
                               f"{value_text(value)}"

    def _range(self, what: str) -> str:
        lo = None if self.lo is None else number_text(self.lo)
        hi = None if self.hi is None else number_text(self.hi)
        text = f"{what} in [{lo}, {hi}]" if lo is not None and hi is not None else \
            f"{what} >= {lo}" if lo is not None else f"{what} <= {hi}" if hi is not None else what
        return text + (f" ({self.why})" if self.why else "")




_PJ = FieldSpec("float", 0, why="energy in pJ")
_NS = FieldSpec("float", 0, why="time in ns")

#: Every `HardwareConfig` field but ``costs``: the limits are those of the code that uses it (instruction field
#: widths in `isa.table`, the layout arrays of `isa.layout`, the runtime's exact arithmetic).
HARDWARE_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec("str"),
    "xbar_rows": FieldSpec("int", 1, 32767, why="layouts hold row-group steps as int16"),
    "xbar_cols": FieldSpec("int", 1, 32767, why="layouts hold bit-line columns as int16"),
    "cell_bits": FieldSpec("int", 1, 15, why="levels per cell times rows must fit the 16-bit ADC field"),
    "dac_bits": FieldSpec("int", 1, 1, why="inputs stream one digit per step through a 1-bit DAC"),
    "datapath_bits": FieldSpec("int", 2, 64, why="registers hold int64 words"),
    "max_weight_bits": FieldSpec("int", 2, 63, why="weights are at least 2-bit signed int64 values"),
    "max_input_bits": FieldSpec("int", 2, 32, why="the mvm instruction's ibits field is 1..32 and every "
                                                   "precision preset needs 2"),
    "max_acc_bits": FieldSpec("int", 2, 64, why="the mvm instruction's obits field is 1..64"),
    "mvmus_per_core": FieldSpec("int", 1, 16, why="the mvm instruction's MVMU mask has 16 bits"),
    "xbars_per_core": FieldSpec("int", 0, why="0: no limit"),
    "adcs_per_mvmu": FieldSpec("int", 1),
    "cores_per_tile": FieldSpec("int", 1, 65535, why="program.bin numbers cores with 16 bits"),
    "tiles": FieldSpec("int", 1, 4096, why="send and recv name a tile in 12 bits"),
    "tile_mem_words": FieldSpec("int", 1, 1 << 24, why="memory operands have 24-bit offsets"),
    "mem_bus_words": FieldSpec("int", 1),
    "data_regs": FieldSpec("int", 0, 65535, why="registers are numbered in 16 bits"),
    "alu_lanes": FieldSpec("int", 1),
    "clock_ghz": FieldSpec("float", 1e-6, 1e6, why="clock in GHz"),
}

#: Every `CostTable` field (energies and times are non-negative finite numbers).
COST_FIELDS: dict[str, FieldSpec] = {
    f.name: (FieldSpec("choice", choices=("conductance", "static")) if f.name == "xbar_energy" else
             FieldSpec("floats", 0, why="energy in pJ at 1, 2, ... bits") if f.name == "adc_pj_table" else
             FieldSpec("int", 0, why="cycles") if f.name.endswith("_cycles") else
             FieldSpec("float", 0, why="area in um^2") if f.name.endswith("_um2") else
             FieldSpec("float", 1, 1000, why="nm") if f.name == "area_node_nm" else
             FieldSpec("int", 1, 16, why="ADC bits") if f.name == "adc_area_ref_bits" else
             FieldSpec("float", 1, 16, why="area ratio per ADC bit") if f.name == "adc_area_per_bit" else
             FieldSpec("float", 0, why="mW per bit") if f.name == "adc_leak_mw_per_bit" else
             FieldSpec("float", 1e-6, why="bits per ns") if f.name.endswith("_per_ns") else
             _NS if f.name.endswith("_ns") or f.name.endswith("_sweep") else _PJ)
    for f in dataclasses.fields(CostTable)
}


def _check_values(values: Mapping[str, Any], specs: Mapping[str, FieldSpec], source: str, prefix: str) -> None:
    """Raise ConfigError ``SOURCE: field 'PREFIX+NAME': PROBLEM`` for the first value its spec rejects."""
    for name, spec in specs.items():
        problem = spec.problem(values[name])
        if problem:
            raise ConfigError(f"{source}: field '{prefix}{name}': {problem}")


def _check_fields(obj: Any, specs: Mapping[str, FieldSpec], source: str, prefix: str = "") -> None:
    _check_values({name: getattr(obj, name) for name in specs}, specs, source, prefix)


#: The longest one event (a crossbar read, an ADC sweep at the widest resolution, a memory access, a hop) may
#: take, in cycles: clocks are int64 and a run may execute 5e7 instructions, so 1e9 cycles each stays exact.
MAX_EVENT_CYCLES = 10 ** 9


def _check_event_times(hw: "HardwareConfig", source: str) -> None:
    """ConfigError naming the cost field whose time, at ``clock_ghz``, is longer than `MAX_EVENT_CYCLES`."""
    c = hw.costs
    times = {f"costs.{f.name}": getattr(c, f.name) * hw.clock_ghz * (hw.full_adc_bits if f.name.endswith("_sweep")
                                                                     else 1)
             for f in dataclasses.fields(CostTable)
             if (f.name.endswith("_ns") and not f.name.endswith("_per_ns")) or f.name.endswith("_sweep")}
    times.update({f"costs.{f.name}": getattr(c, f.name) for f in dataclasses.fields(CostTable)
                  if f.name.endswith("_cycles")})
    for name, cycles in times.items():
        if cycles > MAX_EVENT_CYCLES:
            raise ConfigError(f"{source}: field '{name}': one event would take {cycles:.3g} cycles at "
                              f"clock_ghz={hw.clock_ghz:g}; at most {MAX_EVENT_CYCLES:.0e} (clocks are 64-bit)")


def _check_cross(hw: "HardwareConfig", source: str) -> None:
    values = {f.name: getattr(hw, f.name) for f in dataclasses.fields(hw) if f.name != "costs"}
    problem = _cross_problem(values | {"costs": {"adc_pj_table": hw.costs.adc_pj_table}}, source)
    if problem:
        raise ConfigError(problem)


def _cross_problem(v: Mapping[str, Any], source: str) -> str | None:
    """The first violated limit that involves several fields (values already in their own ranges), as a
    message, or None. Each limit is one the toolchain relies on."""
    from .numerics import WEIGHT_ENCODINGS, n_slices

    rows, cb = v["xbar_rows"], v["cell_bits"]
    levels = rows * ((1 << cb) - 1)
    if levels > 32767:
        return (f"{source}: fields 'xbar_rows', 'cell_bits': xbar_rows x (2^cell_bits - 1) = {levels} must be at "
                f"most 32767, so the full (never clipping) ADC resolution fits the mvm instruction's adc field "
                f"(at most 16 bits)")
    regs = v["mvmus_per_core"] * (rows + v["xbar_cols"]) + v["data_regs"]
    if regs > 65535:
        return (f"{source}: fields 'mvmus_per_core', 'xbar_rows', 'xbar_cols', 'data_regs': a core's {regs} "
                f"registers (mvmus_per_core x (xbar_rows + xbar_cols) + data_regs) must be at most 65535 "
                f"(16-bit register fields, 0xFFFF meaning no base register)")
    if regs == 0:
        return f"{source}: field 'data_regs': a core needs at least one register"
    cores = v["tiles"] * v["cores_per_tile"]
    if cores > 65535:
        return (f"{source}: fields 'tiles', 'cores_per_tile': {cores} cores must be at most 65535 (program.bin "
                f"counts cores with 16 bits)")
    slices = max(n_slices(v["max_weight_bits"], cb, enc) for enc in WEIGHT_ENCODINGS)
    bits = v["max_input_bits"] + math.ceil(math.log2(rows)) + cb * slices
    if bits > 62:
        return (f"{source}: fields 'max_input_bits', 'max_weight_bits', 'xbar_rows', 'cell_bits': an MVM's exact "
                f"sum reaches 2^{bits} (2^max_input_bits x rows x 2^(cell_bits x {slices} slices)); it must stay "
                f"under 2^62 to be exact in int64 (docs/semantics.md, Overflow)")
    full = math.ceil(math.log2(levels + 1)) + 1
    table = v["costs"]["adc_pj_table"]
    if table and len(table) < full:
        return (f"{source}: field 'costs.adc_pj_table': needs an entry for every ADC resolution 1..{full} bits "
                f"(the full resolution of this crossbar), got {len(table)}")
    return None


def _reject_unknown(d: Mapping[str, Any], known: Mapping[str, FieldSpec], source: str, prefix: str,
                    extra: tuple[str, ...] = ()) -> None:
    unknown = [k for k in d if k not in known]
    if unknown:
        raise ConfigError(f"{source}: unknown field '{prefix}{unknown[0]}'; fields: "
                          f"{', '.join([prefix + k for k in known] + list(extra))}")


DEFAULT = HardwareConfig()

#: PUMA (ASPLOS'19) as its simulator configures it: 6 MVMUs per core, 8 cores per tile, 8-bit ADC, Q4.12 data.
PUMA = HardwareConfig(
    name="puma",
    mvmus_per_core=6,
    adcs_per_mvmu=2,
    cores_per_tile=8,
    tiles=138,
    tile_mem_words=32768,
    data_regs=2048,
    alu_lanes=12,
    costs=CostTable(xbar_energy="static"),
)

#: Bytes of one tile-memory word on the published chips: their datapath is 16-bit fixed point (ISAAC ISCA'16,
#: PUMA ASPLOS'19), so a 64 KB eDRAM holds 65,536 / 2 = 32,768 words.
WORD_BYTES_16 = 2
EDRAM_64KB_WORDS = 64 * 1024 // WORD_BYTES_16

#: PUMA's node as its compiler builds it (ASPLOS'19; docs/cost-model.md, "Chip presets"): 168 tiles x 8 cores x 6
#: MVMUs, 64 KB of eDRAM per tile, otherwise the `puma` simulator configuration and cost table.
PUMA_CHIP = dataclasses.replace(PUMA, name="puma-chip", tiles=168, tile_mem_words=EDRAM_64KB_WORDS)

#: ISAAC-CE's Table II (ISCA'16, 32 nm), the figures the `isaac` preset's costs are drawn from (docs/cost-model.md,
#: "Chip presets"; tests/test_isaac_table2.py recomputes the paper's powers and areas from the preset): per IMA
#: 8 ADCs (16 mW), 8 x 128 DACs (4 mW), 8 x 128 sample-and-holds (10 uW), 8 arrays (2.4 mW, 0.0002 mm^2), 4
#: shift-and-adds (0.2 mW, 0.00024 mm^2), a 2 KB input register (0.0021 mm^2) and a 256 B output register
#: (0.00077 mm^2); per tile a 64 KB eDRAM (0.083 mm^2), its 384-wire bus (0.090 mm^2), a quarter of a router
#: (0.151 mm^2). Energies per event: an array read, a DAC pulse and a sample take one 100 ns read cycle; 8 ADCs
#: at 1.28 GS/s make 10.24 G conversions/s, which the sample-and-holds and shift-and-adds serve.
ISAAC_TABLE_II: dict[str, float] = {
    "adc_mw": 16.0,
    "xbar_read_pj": 2.4 / 8 * 100.0,  # mW per array x ns per read = pJ
    "dac_pj": 4.0 / (8 * 128) * 100.0,
    "sample_hold_pj": 0.010 / 10.24,  # mW / (G conversions / s) = pJ
    "shift_add_pj": 0.2 / 10.24,
    "xbar_um2": 200.0 / 8,
    "shift_add_um2": 240.0 / 8,  # 4 units per IMA, one shared by each pair of its 8 ADCs
    "mvmu_in_regs_um2": 2100.0 / 8,  # the 2 KB IR is 8 x 128 16-bit words: 128 per MVMU
    "mvmu_out_regs_um2": 770.0,  # the 256 B OR is 128 16-bit words (xbarc's MVMUs have one bank each)
    "tile_mem_um2": 83000.0,
    "tile_bus_um2": 90000.0,
    "router_um2": 151000.0 / 4,
}
_ISAAC_COSTS: dict[str, Any] = {k: v for k, v in ISAAC_TABLE_II.items() if k in {f.name for f in dataclasses.fields(CostTable)}}

#: ISAAC-CE (ISCA'16; docs/cost-model.md, "Chip presets"): 168 tiles of 12 IMAs (cores) of 8 128x128 crossbars of
#: 2-bit cells (a pool of 8 arrays per core, shared by up to 8 MVMUs), one 8-bit ADC per 128 bit lines (8 per IMA),
#: 64 KB of eDRAM per tile, 16-bit data, 1.2 GHz, 100 ns crossbar reads; ADC energy 1.56 pJ per 8-bit conversion.
ISAAC = HardwareConfig(
    name="isaac",
    mvmus_per_core=8,
    xbars_per_core=8,
    adcs_per_mvmu=1,
    cores_per_tile=12,
    tiles=168,
    tile_mem_words=EDRAM_64KB_WORDS,
    data_regs=2048,
    alu_lanes=16,
    clock_ghz=1.2,
    costs=dataclasses.replace(CostTable(xbar_energy="static", xbar_read_ns=100.0,
                                        adc_pj_per_bit=ISAAC_TABLE_II["adc_mw"] / 8 / 1.28 / 8),
                              **_ISAAC_COSTS),
)

PRESETS: dict[str, HardwareConfig] = {"default": DEFAULT, "puma": PUMA, "puma-chip": PUMA_CHIP, "isaac": ISAAC}


def load_hardware(spec: str | Path | None) -> HardwareConfig:
    """A preset name (`PRESETS`: ``default``, ``puma``, ``puma-chip``, ``isaac``) or a JSON file (optionally with ``"preset": NAME`` to start from)."""
    if spec is None:
        return DEFAULT
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"hardware '{spec}': neither a preset ({', '.join(PRESETS)}) nor an existing file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the hardware file ({e.__class__.__name__}: {e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid hardware file: JSON nested too deeply") from None
    return HardwareConfig.from_dict(doc, str(path))
