"""Energy and latency accounting against hand-computed formulas (docs/cost-model.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from isa import MvmuImage
from runtime import Machine
from support import HW, I, M, loc, mlp_program, program


def mvm_run(adc: int, hw=HW, rows: int = 128, cols: int = 128, wbits: int = 8, ibits: int = 8):
    w = np.random.default_rng(0).integers(-127, 128, (rows, cols)) if wbits == 8 else np.ones((rows, cols), int)
    code = [I("load", hw.mvmu_in(0), M(0), rows, node="fc"), I("mvm", 1, ibits, adc, 0, 32, 0, -1, node="fc"), I("halt")]
    prog = program({(0, 0): code}, hw=hw, mvmus=[MvmuImage(0, 0, 0, w, wbits)], inputs=[loc("x", 0, 0, rows, 8)])
    return Machine(prog).run({"x": np.ones((3, rows), dtype=np.int64)}).stats


def test_mvm_components_match_hand_computation():
    s = mvm_run(10)
    # 128x128, 8-bit weights -> S = ceil(7/2) = 4 slices; 8 input digits; 10-bit ADC at 0.225 pJ/bit
    conv = 8 * 4 * 128
    # inputs are all 1: one non-zero digit per row -> 128 DAC pulses; the crossbar (conductance model) charges
    # 170 pJ x (cell levels of every row, all slices, both arrays) / (128 x 128 x 3)
    w = np.random.default_rng(0).integers(-127, 128, (128, 128))
    levels = sum(int((b >> (2 * k)) & 3) for b in np.abs(w).ravel() for k in range(4))
    want = {"crossbar": 170.0 * levels / (128 * 128 * 3), "dac": 128 * 0.0035, "adc": conv * 2.25,
            "sample_hold": conv * 0.00001, "shift_add": conv * 0.045, "mvmu_regs": 128 * 1.7 + 128 * 0.16}
    for k, v in want.items():
        assert s.per_component[k] == pytest.approx(v), k
    assert s.per_instruction["mvm"]["energy_pj"] == pytest.approx(sum(want.values()))
    # latency: sweep = ceil(4*128/8) * 12.5 ns * 10/128 = 62.5 ns per digit (> 10 ns read); 10 + 8*62.5 + 1
    assert s.per_instruction["mvm"]["cycles"] == 511
    # load of 128 words: 8 accesses x 2 cycles, 8 x 12.075 pJ, 128 register writes
    assert s.per_instruction["load"] == {"count": 1, "energy_pj": pytest.approx(8 * 12.075 + 128 * 0.57),
                                         "cycles": 16}
    assert s.cycles == 16 + 511 + 1
    # leakage: 0.025 mW/bit x 10 bits x 8 ADCs x 528 ns
    assert s.per_component["leakage"] == pytest.approx(0.025 * 10 * 8 * 528)
    assert s.energy_pj == pytest.approx(sum(s.per_component.values()))


def test_static_crossbar_model_charges_every_array_every_digit():
    s = mvm_run(10, hw=HW.with_changes(costs={"xbar_energy": "static"}))
    assert s.per_component["crossbar"] == pytest.approx(8 * 2 * 4 * 170.0)


def test_lower_adc_lowers_energy_and_cycles():
    hi, lo = mvm_run(10), mvm_run(6)
    assert lo.per_component["adc"] == pytest.approx(hi.per_component["adc"] * 6 / 10)
    assert lo.energy_pj < hi.energy_pj
    assert lo.per_instruction["mvm"]["cycles"] == 311  # 10 + 8 * 37.5 ns = 310, + 1
    assert lo.cycles < hi.cycles


def test_adc_energy_table_overrides_linear_convention():
    table = tuple(float(b * b) for b in range(1, 17))
    s = mvm_run(8, hw=HW.with_changes(costs={"adc_pj_table": table}))
    assert s.per_component["adc"] == pytest.approx(8 * 4 * 128 * 64.0)


def test_small_mvmu_latency_bounded_by_crossbar_read():
    # 16 columns, 1 slice: sweep = ceil(16/8) * 12.5 * 10/128 < 10 ns read -> 10 + 8*10 + 1
    s = mvm_run(10, rows=16, cols=16, wbits=3)
    assert s.per_instruction["mvm"]["cycles"] == 91


def test_alu_move_scalar_control_costs():
    d = HW.data_base
    code = [I("set", d, 1), I("copy", d + 1, d, 20), I("add", d, d, d, 20, 16), I("mul", d, d, d, 33, 0, 16),
            I("sig", d, d, 5, 4), I("iaddi", d, d, 1), I("jmp", 7), I("halt")]
    s = Machine(program({(0, 0): code})).run({}).stats
    pi = s.per_instruction
    assert pi["set"] == {"count": 1, "energy_pj": pytest.approx(0.57), "cycles": 1}
    assert pi["copy"] == {"count": 1, "energy_pj": pytest.approx(2 * 20 * 0.57), "cycles": 2}
    assert pi["add"] == {"count": 1, "energy_pj": pytest.approx(20 * 0.265 + 3 * 20 * 0.57), "cycles": 2}
    assert pi["mul"] == {"count": 1, "energy_pj": pytest.approx(33 * 0.565 + 3 * 33 * 0.57), "cycles": 3}
    assert pi["sig"] == {"count": 1, "energy_pj": pytest.approx(5 * 0.234 + 2 * 5 * 0.57), "cycles": 1}
    assert pi["iaddi"] == {"count": 1, "energy_pj": pytest.approx(0.265 + 3 * 0.57), "cycles": 1}
    assert pi["jmp"]["cycles"] == 1 and pi["halt"]["cycles"] == 1
    assert s.cycles == 1 + 2 + 2 + 3 + 1 + 1 + 1 + 1
    assert s.per_component["leakage"] == 0.0  # no programmed MVMU


def test_stats_layers_and_json():
    prog, _ = mlp_program()
    s = Machine(prog).run({"x": np.zeros((2, 64), dtype=np.int64)}).stats
    assert set(s.per_layer) == {"fc1", "fc2", "fc3", "-"}
    assert s.per_layer["fc1"]["start"] == 0
    assert s.per_layer["fc1"]["end"] <= s.per_layer["fc2"]["start"] + 16 + 1  # fc2's loads wait for fc1's store
    assert s.per_layer["fc3"]["end"] <= s.cycles
    layer_energy = sum(v["energy_pj"] for v in s.per_layer.values())
    assert layer_energy + s.per_component["leakage"] == pytest.approx(s.energy_pj)
    assert sum(v["count"] for v in s.per_instruction.values()) == s.dynamic_instructions == 21
    d = json.loads(json.dumps(s.to_dict()))
    assert d["batch"] == 2 and d["cycles"] == s.cycles and set(d["per_core"]) == {"0.0", "0.1", "1.0"}


def test_accountant_is_the_one_charging_path() -> None:
    """Static, data-dependent and leakage charges all come out of `isa.costs.Accountant`: driving its listener by
    hand gives the same ledger as the runtime's run of the same program."""
    from isa.costs import Accountant, MvmuShape, leakage_pj, mvm_data_energy

    prog, _ = mlp_program()
    x = np.random.default_rng(1).integers(-128, 128, (3, 64))
    machine = Machine(prog)
    stats = machine.run({"x": x}).stats
    acct = machine.accountant
    assert [c.name for c in acct.cores] == list(stats.per_core)
    assert stats.energy_pj == pytest.approx(sum(stats.per_component.values()), rel=1e-12)
    pulses = np.array([3, 0, 1])
    assert mvm_data_energy(HW, pulses, np.array([2, 5, 1]), 2) == pytest.approx(
        {"dac": HW.costs.dac_pj * 2, "crossbar": HW.costs.xbar_read_pj * 7 / 2 / (128 * 128 * 3)})
    hand = Accountant(HW)
    costs = hand.core(0, 0, {0: MvmuShape(3, 4, 2)})
    lat = costs.load(I("mvm", 0b1, 8, 6, 0, 16, 0, -1))
    (meter,) = hand.meters()
    meter.executed(0, 0, lat)
    meter.mvm(0, 0, 6, pulses, None, 1)
    led = hand.report([meter], lat, 1)
    assert led.per_instruction["mvm"]["count"] == 1 and led.per_layer["-"]["busy_cycles"] == lat
    assert led.per_component["leakage"] == leakage_pj(HW, [6], lat)
    assert led.per_component["dac"] == HW.costs.dac_pj * 4
