"""The `isaac` preset against ISAAC's Table II (Shafiee et al., ISCA'16, ISAAC-CE at 32 nm; docs/cost-model.md,
"Chip presets"): the powers and areas of an IMA's and a tile's components, recomputed from the preset's hardware
fields and cost table (areas through `isa.area`, the code the reports use; powers as every unit busy at the rate
the preset implies), equal the paper's published figures. The paper is the oracle: the figures below are its own.

Components xbarc models differently are compared as the paper's figure times what xbarc has of them (one output
register bank per MVMU instead of one per IMA); those ISAAC's IMA does not have (xbarc's core: data registers,
vector ALU lanes, control) are not in the paper's IMA and are left out (docs/cost-model.md says how large)."""

from __future__ import annotations

import pytest

from isa.area import adc_area_um2, mvmu_area, tile_area
from isa.hardware import ISAAC

#: Table II, per IMA (12 per tile): component -> (power in mW, area in mm^2).
IMA = {"adc": (16.0, 0.0096), "dac": (4.0, 0.00017), "sample_hold": (0.010, 0.00004),
       "crossbar": (2.4, 0.0002), "shift_add": (0.2, 0.00024), "ir": (1.24, 0.0021), "or": (0.23, 0.00077)}
IMA_TOTAL = (289.0, 0.157)  # 12 IMAs
#: Table II, per tile: the eDRAM buffer (64 KB), the eDRAM-to-IMA bus (384 wires), the router (shared by 4 tiles).
TILE = {"tile_mem": (20.7, 0.083), "tile_bus": (7.0, 0.090), "router": (42.0 / 4, 0.151 / 4)}
TILE_TOTAL = (330.0, 0.372)


def test_table_ii_adds_up() -> None:
    """The oracle itself: 12 IMAs of the listed components make the IMA total, and the tile total is the IMAs,
    the listed tile components and the tile's sigmoid (0.52 mW, 0.0006 mm^2), shift-and-add (0.05, 0.00006),
    max-pool (0.4, 0.00024) units and its 3 KB output register (1.68, 0.0032)."""
    assert 12 * sum(p for p, _ in IMA.values()) == pytest.approx(IMA_TOTAL[0], rel=0.005)
    assert 12 * sum(a for _, a in IMA.values()) == pytest.approx(IMA_TOTAL[1], rel=0.005)
    digital = (0.52 + 0.05 + 0.4 + 1.68, 0.0006 + 0.00006 + 0.00024 + 0.0032)
    assert IMA_TOTAL[0] + sum(p for p, _ in TILE.values()) + digital[0] == pytest.approx(TILE_TOTAL[0], rel=0.005)
    assert IMA_TOTAL[1] + sum(a for _, a in TILE.values()) + digital[1] == pytest.approx(TILE_TOTAL[1], rel=0.005)


def _ima_area_mm2() -> dict[str, float]:
    """One IMA (core) of the preset: its MVMUs, each with its share of the 8 arrays and one ADC at 8 bits."""
    hw = ISAAC
    arrays = hw.xbars_per_core // hw.mvmus_per_core
    one = mvmu_area(hw, arrays, 8)
    area = {k: v * hw.mvmus_per_core / 1e6 for k, v in one.items()}
    regs = area.pop("mvmu_regs")  # input registers (the IR) and one output bank per MVMU
    per_bank = hw.costs.mvmu_out_regs_um2 * hw.xbar_cols / 128 / 1e6
    area["ir"] = regs - per_bank * hw.mvmus_per_core
    area["or"] = per_bank
    return area


def test_an_isaac_ima_has_the_area_of_table_ii() -> None:
    area = _ima_area_mm2()
    assert adc_area_um2(ISAAC, 8) * 8 / 1e6 == pytest.approx(IMA["adc"][1], rel=1e-9)
    for k, (_, paper) in IMA.items():
        assert area[k] == pytest.approx(paper, rel=0.02), k  # the DAC: 0.167 um^2 x 1,024 = 0.000171 mm^2


def _ima_power_mw() -> dict[str, float]:
    """Peak power of one IMA as the preset charges it: every array read once per read cycle with a DAC pulse on
    every row, every ADC converting at its sweep rate (128 bit lines in 8 x adc_ns_per_bit_sweep ns), one
    sample-and-hold and one shift-and-add per conversion."""
    hw, c = ISAAC, ISAAC.costs
    adcs = hw.adcs_per_mvmu * hw.mvmus_per_core
    conversions_per_ns = adcs * hw.xbar_cols / (c.adc_ns_per_bit_sweep * 8)
    return {"adc": c.adc_conversion_pj(8) * conversions_per_ns,  # pJ / ns = mW
            "crossbar": hw.xbars_per_core * c.xbar_read_pj / c.xbar_read_ns,
            "dac": hw.xbars_per_core * hw.xbar_rows * c.dac_pj / c.xbar_read_ns,
            "sample_hold": conversions_per_ns * c.sample_hold_pj,
            "shift_add": conversions_per_ns * c.shift_add_pj}


def test_an_isaac_ima_draws_the_power_of_table_ii() -> None:
    """The converters, arrays, DACs, sample-and-holds and shift-and-adds (the registers' power depends on the
    input width, which Table II does not give)."""
    power = _ima_power_mw()
    assert ISAAC.xbar_cols / (ISAAC.costs.adc_ns_per_bit_sweep * 8) == pytest.approx(1.28)  # 1.28 GS/s per ADC
    for k, p in power.items():
        assert p == pytest.approx(IMA[k][0], rel=1e-9), k


def test_an_isaac_tile_has_the_memory_bus_and_router_area_of_table_ii() -> None:
    area = tile_area(ISAAC)
    assert ISAAC.tile_mem_words * ISAAC.datapath_bits // 8 == 64 * 1024
    for k, (_, paper) in TILE.items():
        assert area[k] / 1e6 == pytest.approx(paper, rel=1e-9), k
