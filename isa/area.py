"""Chip area: what a hardware preset provisions and what a compiled program occupies, per component and per
layer, from the area fields of the cost table (docs/cost-model.md, "Area").

Three levels, each a sum of component areas (um^2 at ``costs.area_node_nm``):

* an **MVMU**: its physical crossbars, its ADCs at the resolution it needs, a 1-bit DAC per row and a
  sample-and-hold per column of every array, a shift-and-add per ADC, its input and output registers;
* a **core**: its MVMUs, data registers, vector ALU lanes, control and instruction memory;
* a **tile**: its cores, tile memory, memory bus, controllers and receive buffer, its share of a router.

*Provisioned* is the whole chip of the preset: every MVMU with the crossbars of the widest weights
(``2 x max_slices``, or ``xbars_per_core / mvmus_per_core``) and ADCs at the full resolution. *Used* is what
the program occupies: the tiles and cores that run code and the programmed MVMUs with the arrays of their
layout, their ADCs at the largest resolution an ``mvm`` firing them asks for. The ADC area a lower resolution
saves is the used ADCs' area at full resolution minus at that resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .costs import MvmuShape
from .hardware import HardwareConfig
from .layout import naive_arrays, summarize, summarize_all
from .numerics import n_slices
from .program import MvmuImage, Program
from . import ops

#: Area components, in report order.
AREA_COMPONENTS = ("crossbar", "adc", "dac", "sample_hold", "shift_add", "mvmu_regs", "data_regs", "alu",
                   "control", "tile_mem", "tile_bus", "tile_ctrl", "router")


def adc_area_um2(hw: HardwareConfig, bits: int) -> float:
    """Area of one ADC at ``bits`` of resolution: ``adc_um2 x adc_area_per_bit^(bits - adc_area_ref_bits)``."""
    c = hw.costs
    return c.adc_um2 * c.adc_area_per_bit ** (bits - c.adc_area_ref_bits)


def scale_area(um2: float, from_nm: float, to_nm: float) -> float:
    """An area drawn at ``from_nm`` redrawn at ``to_nm`` (area scales with the square of the feature size)."""
    return um2 * (to_nm / from_nm) ** 2


def mvmu_area(hw: HardwareConfig, arrays: int, adc_bits: int, rows: int | None = None,
              cols: int | None = None) -> dict[str, float]:
    """Area of one MVMU with ``arrays`` physical crossbars and ADCs at ``adc_bits`` (0 arrays: an idle MVMU,
    which keeps only its registers). Rows and columns default to the crossbar size: the circuits are built
    for the whole array whatever part of it a block fills."""
    c = hw.costs
    rows, cols = rows or hw.xbar_rows, cols or hw.xbar_cols
    regs = c.mvmu_in_regs_um2 * hw.xbar_rows / 128 + c.mvmu_out_regs_um2 * hw.xbar_cols / 128
    if arrays == 0:
        return {"mvmu_regs": regs}
    adcs = hw.adcs_per_mvmu
    return {
        "crossbar": arrays * c.xbar_um2 * rows * cols / (128 * 128),
        "adc": adcs * adc_area_um2(hw, adc_bits),
        "dac": arrays * rows * c.dac_um2,
        "sample_hold": arrays * cols * c.sample_hold_um2,
        "shift_add": adcs * c.shift_add_um2,
        "mvmu_regs": regs,
    }


def core_area(hw: HardwareConfig) -> dict[str, float]:
    """Area of one core without its MVMUs: data registers, vector ALU lanes, control and instruction memory."""
    c = hw.costs
    return {"data_regs": c.data_regs_um2 * hw.data_regs / 2048, "alu": c.alu_um2 * hw.alu_lanes,
            "control": c.core_ctrl_um2}


def tile_area(hw: HardwareConfig) -> dict[str, float]:
    """Area of one tile without its cores: tile memory, bus, controllers and receive buffer, router share."""
    c = hw.costs
    kib = hw.tile_mem_words * hw.datapath_bits / 8 / 1024
    return {"tile_mem": c.tile_mem_um2 * kib / 64, "tile_bus": c.tile_bus_um2, "tile_ctrl": c.tile_ctrl_um2,
            "router": c.router_um2}


@dataclass
class Area:
    """Area in um^2 per component, per layer (the MVMUs of each layer's images), and what the chosen ADC
    resolutions saved against the full resolution (``adc_saved``, total and per layer)."""

    node_nm: float
    per_component: dict[str, float] = field(default_factory=dict)
    per_layer: dict[str, dict[str, float]] = field(default_factory=dict)
    adc_saved: float = 0.0
    layer_adc_saved: dict[str, float] = field(default_factory=dict)
    tiles: int = 0
    cores: int = 0
    mvmus: int = 0
    crossbars: int = 0

    @property
    def total_um2(self) -> float:
        """The whole area."""
        return sum(self.per_component.values())

    @property
    def total_mm2(self) -> float:
        """The whole area in mm^2."""
        return self.total_um2 / 1e6

    def add(self, part: dict[str, float], times: int = 1, layer: str | None = None) -> None:
        """Add ``times`` copies of ``part`` (to ``layer``'s row too, when given)."""
        for k, v in part.items():
            self.per_component[k] = self.per_component.get(k, 0.0) + v * times
            if layer is not None:
                row = self.per_layer.setdefault(layer, {})
                row[k] = row.get(k, 0.0) + v * times

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: mm^2 totals, um^2 per component and per layer."""
        per_layer = {k: {"total_um2": sum(v.values())} | v | {"adc_saved_um2": self.layer_adc_saved.get(k, 0.0)}
                     for k, v in self.per_layer.items()}
        return {"node_nm": self.node_nm, "total_mm2": self.total_mm2, "tiles": self.tiles, "cores": self.cores,
                "mvmus": self.mvmus, "crossbars": self.crossbars, "per_component_um2": dict(self.per_component),
                "per_layer_um2": per_layer, "adc_saved_um2": self.adc_saved}


def provisioned_area(hw: HardwareConfig) -> Area:
    """The chip the preset holds: every tile, core and MVMU, crossbars for the widest weights, full ADCs."""
    per_mvmu = (hw.xbars_per_core // hw.mvmus_per_core if hw.xbars_per_core
                else naive_arrays(hw.max_slices))
    cores = hw.tiles * hw.cores_per_tile
    mvmus = cores * hw.mvmus_per_core
    a = Area(hw.costs.area_node_nm, {k: 0.0 for k in AREA_COMPONENTS}, tiles=hw.tiles, cores=cores, mvmus=mvmus,
             crossbars=mvmus * per_mvmu)
    a.add(mvmu_area(hw, per_mvmu, hw.full_adc_bits), mvmus)
    a.add(core_area(hw), cores)
    a.add(tile_area(hw), hw.tiles)
    return a


def mvmu_adc_bits(program: Program) -> dict[tuple[int, int, int], int]:
    """(tile, core, mvmu) -> the largest ADC resolution any ``mvm`` of the program fires it at."""
    bits: dict[tuple[int, int, int], int] = {}
    for cc in program.cores:
        for ins in cc.instrs:
            if isinstance(ins, ops.Mvm):
                for k in range(program.hw.mvmus_per_core):
                    if ins.mask >> k & 1:
                        key = (cc.tile, cc.core, k)
                        bits[key] = max(bits.get(key, 0), ins.adc)
    return bits


def image_arrays(hw: HardwareConfig, img: MvmuImage) -> int:
    """Physical crossbars of a programmed MVMU: its layout's arrays, or one per slice and sign (naive)."""
    slices = n_slices(img.weight_bits, hw.cell_bits, img.encoding)
    if img.layout is None:
        return MvmuShape(0, 0, slices).crossbars
    return summarize(img.layout).arrays


def used_area(program: Program) -> Area:
    """What ``program`` occupies: the tiles and cores with code, the programmed MVMUs (per layer: the node of
    their image) with the arrays of their layout and ADCs at the largest resolution they are fired at."""
    hw = program.hw
    cores = {(cc.tile, cc.core) for cc in program.cores if cc.instrs}
    adc_bits = mvmu_adc_bits(program)
    packed = iter(summarize_all([img.layout for img in program.mvmus if img.layout is not None]))
    arrays = [next(packed).arrays if img.layout is not None else image_arrays(hw, img) for img in program.mvmus]
    blocks = [(img.node or "-", n, adc_bits.get((img.tile, img.core, img.mvmu), hw.full_adc_bits))
              for img, n in zip(program.mvmus, arrays)]  # layouts summarized together (`summarize_all`)
    return blocks_area(hw, blocks, len(cores), len({t for t, _ in cores}))


def blocks_area(hw: HardwareConfig, blocks: list[tuple[str, int, int]], cores: int, tiles: int) -> Area:
    """The area of ``blocks`` (layer, physical arrays, ADC bits) -- one MVMU each -- on ``cores`` cores of
    ``tiles`` tiles, with the ADC area their resolutions saved against the full one."""
    a = Area(hw.costs.area_node_nm, {k: 0.0 for k in AREA_COMPONENTS}, tiles=tiles, cores=cores,
             mvmus=len(blocks))
    full = adc_area_um2(hw, hw.full_adc_bits)
    for layer, arrays, bits in blocks:
        a.add(mvmu_area(hw, arrays, bits), 1, layer)
        a.crossbars += arrays
        if arrays:
            saved = hw.adcs_per_mvmu * (full - adc_area_um2(hw, bits))
            a.adc_saved += saved
            a.layer_adc_saved[layer] = a.layer_adc_saved.get(layer, 0.0) + saved
    a.add(core_area(hw), cores)
    a.add(tile_area(hw), tiles)
    return a


def area_report(program: Program, interval_cycles: int | None = None,
                energy_pj: float | None = None) -> dict[str, Any]:
    """The area block of a report: provisioned and used area; with the run's pipelined interval (cycles per
    inference) the area efficiency in inferences/s/mm^2 against both, with its energy per inference the
    energy efficiency in inferences/J."""
    hw = program.hw
    prov, used = provisioned_area(hw), used_area(program)
    rep: dict[str, Any] = {"provisioned": prov.to_dict(), "used": used.to_dict()}
    if interval_cycles:
        per_s = hw.clock_ghz * 1e9 / interval_cycles
        rep["inferences_per_s"] = per_s
        rep["area_efficiency"] = per_s / used.total_mm2 if used.total_mm2 else math.inf
        rep["area_efficiency_provisioned"] = per_s / prov.total_mm2
    if energy_pj:
        rep["energy_efficiency"] = 1e12 / energy_pj
    return rep
