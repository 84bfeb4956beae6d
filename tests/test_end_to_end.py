"""The bundled MLP compiled, run on the runtime and checked bit for bit against the functional model, and
against onnxruntime and the digits labels (real data)."""

from __future__ import annotations

import numpy as np
import pytest

from support import compile_model
from compiler import runner
from isa.errors import ModelError
from isa.hardware import DEFAULT

from conftest import MLP

MIXED = {"preset": "16bit", "layers": {
    "fc1": {"w_bits": 8, "in_bits": 8, "acc_bits": 24, "adc_bits": 6},
    "fc2": {"w_bits": 6, "in_bits": 12, "acc_bits": 16, "adc_bits": 4},
    "fc3": {"w_bits": 16, "in_bits": 8, "adc_bits": 4},
}}


@pytest.mark.parametrize("precision", ["16bit", "8bit", MIXED], ids=["16bit", "8bit", "mixed-adc4"])
def test_runtime_equals_functional_model_on_whole_test_split(precision, digits_test):
    x, _ = digits_test
    cm = compile_model(MLP, precision)
    outcome = runner.run(cm, {"input": x})
    ref = runner.functional_outputs(cm, {"input": x})
    assert outcome.device_int["logits"].dtype == np.int64
    assert np.array_equal(outcome.device_int["logits"], ref["logits"])


def test_16bit_agrees_with_onnxruntime(mlp16, digits_test):
    x, y = digits_test
    r = runner.evaluate(mlp16, x, y)
    assert r["bit_exact"] is True
    assert r["agreement"] >= 0.995
    assert r["accuracy"] >= r["reference_accuracy"] - 0.005
    # 16-bit weights/inputs: the logit error is a few LSBs of Q(16, f) per layer, far below the logits' scale
    assert r["max_abs_error"] < 0.05


def test_mixed_config_really_is_coarser(digits_test):
    """The mixed config (4-bit ADC) must change the numbers, or the bit-exact test above proves little."""
    x, _ = digits_test
    coarse = runner.functional_outputs(compile_model(MLP, MIXED), {"input": x})["logits"]
    fine = runner.functional_outputs(compile_model(MLP, "16bit"), {"input": x})["logits"]
    assert coarse.shape == fine.shape and not np.array_equal(coarse, fine)


def test_multi_tile_placement_is_bit_exact(digits_test):
    """One MVMU per core and two cores per tile spread the MLP over several tiles (send/receive)."""
    x, _ = digits_test
    hw = DEFAULT.with_changes(mvmus_per_core=1, cores_per_tile=2, tiles=8)
    cm = compile_model(MLP, "8bit", hw=hw)
    assert cm.mapping is not None and cm.mapping.tiles >= 3
    ops = {i.op for c in cm.program.cores for i in c.instrs}
    assert {"send", "recv"} <= ops
    out = runner.run(cm, {"input": x[:64]})
    ref = runner.functional_outputs(cm, {"input": x[:64]})
    assert np.array_equal(out.device_int["logits"], ref["logits"])
    assert out.stats.per_component["noc"] > 0


def test_chip_too_small_says_what_is_needed():
    hw = DEFAULT.with_changes(mvmus_per_core=1, cores_per_tile=2, tiles=2)
    with pytest.raises(ModelError, match=r"needs \d+ tiles .* but the chip has 2"):
        compile_model(MLP, "8bit", hw=hw)


def test_lower_adc_resolution_lowers_energy_and_cycles(digits_test):
    x, _ = digits_test
    energy, cycles = [], []
    for bits in range(9, 0, -1):
        cm = compile_model(MLP, {"preset": "8bit", "default": {"adc_bits": bits}})
        stats = runner.run(cm, {"input": x[:16]}).stats
        energy.append(stats.energy_pj)
        cycles.append(stats.cycles)
    assert all(a > b for a, b in zip(energy, energy[1:])), energy
    assert all(a > b for a, b in zip(cycles, cycles[1:])), cycles


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_skl2onnx_mlp_compiles_and_runs(activation, digits_test):
    from models.sklearn_mlp import build_sklearn_mlp

    x, y = digits_test
    model = build_sklearn_mlp(activation)
    cm = compile_model(model, "16bit", calib="digits")
    assert "ArgMax" in " ".join(cm.graph.host_ops)
    r = runner.evaluate(cm, x, y)
    assert r["bit_exact"] is True
    assert r["agreement"] >= 0.995
    out = runner.run(cm, {cm.program.inputs[0].name: x})
    ref = runner.reference_outputs(model, {cm.program.inputs[0].name: x}, ["label"])["label"]
    assert np.mean(out.host["label"] == ref) >= 0.995


def test_column_group_spanning_tiles_is_bit_exact(digits_test):
    """fc2 has 2 row blocks; with one MVMU per tile its partial sums travel between tiles."""
    x, _ = digits_test
    hw = DEFAULT.with_changes(mvmus_per_core=1, cores_per_tile=1, tiles=16)
    cm = compile_model(MLP, "8bit", hw=hw)
    fc2 = cm.mapping.layers["fc2"]
    assert len({b.tile for b in fc2.blocks}) == 2
    out = runner.run(cm, {"input": x[:32]})
    assert np.array_equal(out.device_int["logits"], runner.functional_outputs(cm, {"input": x[:32]})["logits"])
