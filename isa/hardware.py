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
from typing import Any

from .errors import ConfigError


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
    def from_dict(cls, d: dict[str, Any]) -> "HardwareConfig":
        """Build from a dict; unknown keys are an error naming them; missing keys take defaults."""
        d = dict(d)
        costs = dict(d.pop("costs", {}) or {})
        _reject_unknown(d, {f.name for f in dataclasses.fields(cls)} - {"costs"}, "hardware")
        _reject_unknown(costs, {f.name for f in dataclasses.fields(CostTable)}, "hardware.costs")
        if "adc_pj_table" in costs:
            costs["adc_pj_table"] = tuple(costs["adc_pj_table"])
        preset = d.pop("preset", "default")
        if preset not in PRESETS:
            raise ConfigError(f"hardware: unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        base = PRESETS[preset]
        merged_costs = dataclasses.replace(base.costs, **costs)
        return dataclasses.replace(base, costs=merged_costs, **d)

    def with_changes(self, **changes: Any) -> "HardwareConfig":
        """Table merge: a copy with some fields (and ``costs`` fields, given as a dict) replaced."""
        costs = changes.pop("costs", None)
        hw = dataclasses.replace(self, **changes)
        if costs:
            hw = dataclasses.replace(hw, costs=dataclasses.replace(hw.costs, **costs))
        return hw


def _reject_unknown(d: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(d) - known - {"preset"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


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

PRESETS: dict[str, HardwareConfig] = {"default": DEFAULT, "puma": PUMA}


def load_hardware(spec: str | Path | None) -> HardwareConfig:
    """A preset name (``default``, ``puma``) or a JSON file (optionally with ``"preset": NAME`` to start from)."""
    if spec is None:
        return DEFAULT
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"hardware '{spec}': neither a preset ({', '.join(PRESETS)}) nor an existing file")
    return HardwareConfig.from_dict(json.loads(path.read_text()))
