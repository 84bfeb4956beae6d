"""Mapping modes: naive and spatial (hollow-aware) give bit-identical results; spatial saves what it claims."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler import compile_model, runner
from models.datasets import load_dataset

from conftest import MLP, ROOT

LENET = ROOT / "models" / "lenet5_digits.onnx"
RESNET = ROOT / "models" / "resnet_digits.onnx"
COARSE = [{"scheme": "uniform", "bits": 4}, {"scheme": "pot", "bits": 3}, {"scheme": "uniform", "bits": 8}]


@pytest.mark.parametrize("model, data", [(MLP, "digits"), (LENET, "digits32"), (RESNET, "digits_image")])
def test_modes_are_bit_identical_with_varied_precision(model, data):
    x, _ = load_dataset(data, "test")
    x = x[:24]
    cfg = {"preset": "8bit", "default": {"w_scheme": "varied", "w_channels": COARSE}}
    outs = {}
    for mode in ("naive", "spatial"):
        cm = compile_model(model, cfg, mapping=mode)
        name = cm.program.outputs[0].name
        got = runner.run(cm, {cm.program.inputs[0].name: x})
        outs[mode] = (got.device_int[name], got.stats, cm)
        assert np.array_equal(got.device_int[name], runner.functional_outputs(cm, {cm.program.inputs[0].name: x})[name])
    assert np.array_equal(outs["naive"][0], outs["spatial"][0])


def test_spatial_drops_hollow_crossbars_and_conversions():
    x, _ = load_dataset("digits", "test")
    # every channel uniform 4-bit on an 8-bit grid, with its own power-of-two step: a block's low slices are
    # zero wherever every column's step is coarse enough
    from isa import numerics as nx

    cfg = {"preset": "8bit", "default": {"w_scheme": "varied", "w_channels": [{"scheme": "uniform", "bits": 4}]}}
    naive, spatial = (compile_model(MLP, cfg, mapping=m) for m in ("naive", "spatial"))
    rn, rs = naive.mapping_report(), spatial.mapping_report()
    assert rn["crossbars"] == 2 * 4 * rn["mvmus"]          # 8-bit weights: 4 slices of (+)/(-) arrays
    live, live_slices, slices = 0, 0, 0
    for m in spatial.program.mvmus:                         # count the charged arrays independently
        pos, neg = nx.weight_slices(m.weights, m.weight_bits, 2)
        live += sum(int(pos[i].any()) + int(neg[i].any()) for i in range(len(pos)))
        live_slices += sum(int(pos[i].any() or neg[i].any()) for i in range(len(pos)))
        slices += len(pos)
    assert rs["crossbars"] == live < rn["crossbars"]
    sn = runner.run(naive, {"input": x[:16]}).stats
    ss = runner.run(spatial, {"input": x[:16]}).stats
    assert live_slices < slices
    assert ss.per_component["adc"] < sn.per_component["adc"]
    assert ss.cycles <= sn.cycles


def _sparse_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.2, (300, 40)).astype(np.float32)
    w[128:256] = 0.0  # row block 1 is empty
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 300])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 40])],
                          [onnx.numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_spatial_skips_empty_blocks_entirely():
    m = _sparse_model()
    x = np.random.default_rng(1).uniform(0, 1, (8, 300))
    naive = compile_model(m, "8bit", calib={"x": x}, mapping="naive")
    spatial = compile_model(m, "8bit", calib={"x": x}, mapping="spatial")
    assert naive.mapping.mvmus == 3 and spatial.mapping.mvmus == 2
    a, b = runner.run(naive, {"x": x}), runner.run(spatial, {"x": x})
    assert np.array_equal(a.device_int["y"], b.device_int["y"])
    assert b.stats.dynamic_instructions < a.stats.dynamic_instructions  # no load, no partial-sum add
