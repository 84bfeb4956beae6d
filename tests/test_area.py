"""Area model (isa/area.py, docs/cost-model.md "Area"): a hand-sized chip against a hand computation, the used
area of a compiled program against its MVMU images, the ADC area a lower resolution saves, and the reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compiler.cli import main
from isa import HardwareConfig, MvmuImage
from isa.area import adc_area_um2, area_report, provisioned_area, scale_area, used_area
from support import HW, I, M, compile_model, loc, program

# one tile, one core, one MVMU with one ADC; 3-bit weights (one 2-bit slice: a (+) and a (-) array), 2048 data
# registers, one ALU lane, 64 KB of tile memory; round area figures so the hand sum below is easy to follow
TINY = HardwareConfig(name="tiny", tiles=1, cores_per_tile=1, mvmus_per_core=1, adcs_per_mvmu=1,
                      max_weight_bits=3, data_regs=2048, alu_lanes=1, tile_mem_words=32768).with_changes(costs={
                          "xbar_um2": 25.0, "adc_um2": 100.0, "adc_area_ref_bits": 8, "adc_area_per_bit": 2.0,
                          "dac_um2": 0.5, "sample_hold_um2": 0.25, "shift_add_um2": 60.0,
                          "mvmu_in_regs_um2": 780.0, "mvmu_out_regs_um2": 700.0, "data_regs_um2": 3920.0,
                          "alu_um2": 4032.0, "core_ctrl_um2": 3000.0, "tile_mem_um2": 86000.0,
                          "tile_bus_um2": 90000.0, "tile_ctrl_um2": 7000.0, "router_um2": 11750.0})


def test_hand_sized_chip_matches_a_hand_computation():
    # full ADC: log2(128 rows x 3 levels + 1) -> 9 bits + sign = 10 bits: 100 x 2^(10 - 8) = 400 um^2
    hand = {"crossbar": 2 * 25.0, "adc": 400.0, "dac": 2 * 128 * 0.5, "sample_hold": 2 * 128 * 0.25,
            "shift_add": 60.0, "mvmu_regs": 780.0 + 700.0, "data_regs": 3920.0, "alu": 4032.0, "control": 3000.0,
            "tile_mem": 86000.0, "tile_bus": 90000.0, "tile_ctrl": 7000.0, "router": 11750.0}
    a = provisioned_area(TINY)
    assert TINY.full_adc_bits == 10
    assert a.per_component == pytest.approx(hand)
    assert a.total_um2 == pytest.approx(50 + 400 + 128 + 64 + 60 + 1480 + 3920 + 4032 + 3000 + 86000 + 90000
                                        + 7000 + 11750)
    assert (a.tiles, a.cores, a.mvmus, a.crossbars) == (1, 1, 1, 2)


def test_used_area_of_a_one_mvm_program_and_its_adc_saving():
    w = np.array([[3, -2], [1, 0]])  # 3-bit weights: one slice, naive: a (+) and a (-) array
    code = [I("load", TINY.mvmu_in(0), M(0), 2), I("mvm", 1, 4, 6, 0, 16, 0, -1),
            I("store", M(100), TINY.mvmu_out(0), 2, 0), I("halt")]
    prog = program({(0, 0): code}, hw=TINY, mvmus=[MvmuImage(0, 0, 0, w, 3, node="fc")],
                   inputs=[loc("x", 0, 0, 2)], outputs=[loc("y", 0, 100, 2)])
    a = used_area(prog)
    assert a.per_component["adc"] == pytest.approx(100.0 * 2 ** (6 - 8))  # fired at 6 bits: 25 um^2
    assert a.adc_saved == pytest.approx(400.0 - 25.0)
    assert a.layer_adc_saved == {"fc": pytest.approx(375.0)}
    assert a.per_layer["fc"]["crossbar"] == pytest.approx(50.0)
    # the whole chip is used here, except the ADC area the 6-bit resolution saved
    assert a.total_um2 == pytest.approx(provisioned_area(TINY).total_um2 - 375.0)
    rep = area_report(prog, interval_cycles=1000, energy_pj=2e6)
    assert rep["area_efficiency"] == pytest.approx(1e9 / 1000 / a.total_mm2)
    assert rep["energy_efficiency"] == pytest.approx(5e5)  # 1 J / 2 uJ


def test_adc_area_per_bit_reproduces_seed_002_table_i():
    # seed 002 TABLE I (65 nm): 4042.5 um^2 at 10 bits, 577.5 um^2 at 5 bits (-85.7 %)
    hw = HW.with_changes(costs={"adc_um2": 4042.5, "adc_area_ref_bits": 10, "area_node_nm": 65.0})
    assert adc_area_um2(hw, 5) == pytest.approx(577.5)
    saving = 1 - adc_area_um2(HW, 5) / adc_area_um2(HW, 10)  # any reference resolution: the same per-bit growth
    assert saving == pytest.approx(1 - 577.5 / 4042.5)
    assert scale_area(100.0, 65.0, 32.5) == pytest.approx(25.0)


@pytest.fixture(scope="module")
def lenet():
    return compile_model("models/lenet5_mnist.onnx", precision={"preset": "8bit", "default": {"adc_bits": 6}})


def test_compiled_program_area_follows_its_images(lenet):
    prog, hw = lenet.program, lenet.program.hw
    a = used_area(prog)
    xbars = sum(int(a.per_layer[k]["crossbar"] / hw.costs.xbar_um2 + 0.5) for k in a.per_layer)
    assert xbars == a.crossbars == lenet.mapping_report()["crossbars"]
    live = sum(1 for m in prog.mvmus if a.per_layer[m.node].get("adc"))
    assert a.per_component["adc"] == pytest.approx(live * hw.adcs_per_mvmu * adc_area_um2(hw, 6))
    full = adc_area_um2(hw, hw.full_adc_bits)
    assert a.adc_saved == pytest.approx(live * hw.adcs_per_mvmu * (full - adc_area_um2(hw, 6)))
    assert lenet.mapping_report()["area"]["adc_saved_um2"] == pytest.approx(a.adc_saved)
    assert a.total_um2 < provisioned_area(hw).total_um2


def test_run_json_and_inspect_show_area(lenet, tmp_path, capsys):
    lenet.save(tmp_path / "out")
    assert main(["inspect", str(tmp_path / "out"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["area"]["used"]["total_mm2"] == pytest.approx(used_area(lenet.program).total_mm2)
    assert set(info["area"]["used"]["per_layer_um2"]) == {m.node for m in lenet.program.mvmus}
    assert main(["run", str(tmp_path / "out"), "--dataset", "mnist", "--limit", "16", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["energy_efficiency"] == pytest.approx(1e12 / r["energy_pj"])
    per_s = lenet.hw.clock_ghz * 1e9 / r["pipeline_interval_cycles"]
    assert r["area_efficiency"] == pytest.approx(per_s / r["area"]["used"]["total_mm2"])
    assert main(["run", str(tmp_path / "out"), "--dataset", "mnist", "--limit", "16"]) == 0
    assert "area efficiency" in capsys.readouterr().out


def test_area_fields_are_checked():
    from isa.errors import ConfigError

    with pytest.raises(ConfigError, match="costs.adc_um2': must be a finite number >= 0"):
        HardwareConfig.from_dict({"costs": {"adc_um2": -1}})


def test_search_cost_model_area_equals_the_compiled_programs():
    """The search's hardware-cost area term (`CostModel.estimate`) is the area the compiled program uses."""
    from compiler.search.cost import CostModel, trace_functional
    from isa import numerics as nx
    from models.datasets import load_for_shape

    for mapping in ("naive", "spatial"):
        cm = compile_model("models/lenet5_mnist.onnx", precision={"preset": "8bit", "default": {"adc_bits": 7}},
                           mapping=mapping)
        x, _ = load_for_shape("mnist", "calib", tuple(cm.program.inputs[0].shape))
        loc_in = cm.program.inputs[0]
        _, seen = trace_functional(cm.graph, cm.precision, {cm.graph.inputs[0].name: nx.quantize(
            x[:2], loc_in.bits, loc_in.frac)}, cm.hw, cm.formats)
        est = CostModel(cm.graph, cm.hw, mapping).estimate(cm.precision, seen)
        assert est.area_mm2 == pytest.approx(used_area(cm.program).total_mm2)


def test_area_is_a_search_cost_term_and_a_pareto_axis():
    from compiler.search.cost import COST_TERMS, parse_weights
    from compiler.search.record import Evaluation
    from compiler.search.selection import pareto_front

    assert "area" in COST_TERMS and parse_weights("energy=1,area=2") == (("energy", 1.0), ("area", 2.0))
    small = Evaluation([[0]], 0.0, energy_pj=1.0, cycles=1, select_accuracy=0.9, area_mm2=1.0)
    big = Evaluation([[1]], 0.0, energy_pj=1.0, cycles=1, select_accuracy=0.9, area_mm2=2.0)
    assert pareto_front([big, small]) == [small]
