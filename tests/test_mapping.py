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
    for mode in ("naive", "spatial", "temporal"):
        cm = compile_model(model, cfg, mapping=mode)
        name = cm.program.outputs[0].name
        got = runner.run(cm, {cm.program.inputs[0].name: x})
        outs[mode] = (got.device_int[name], got.stats, cm)
        assert np.array_equal(got.device_int[name], runner.functional_outputs(cm, {cm.program.inputs[0].name: x})[name])
    assert np.array_equal(outs["naive"][0], outs["spatial"][0])
    assert np.array_equal(outs["naive"][0], outs["temporal"][0])


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


def test_temporal_trades_crossbars_for_steps():
    """LeNet's conv1 has 25 rows: temporal mapping stacks 5 of its 8 bit planes per crossbar."""
    x, _ = load_dataset("digits32", "test")
    spatial = compile_model(LENET, "16bit", mapping="spatial")
    temporal = compile_model(LENET, "16bit", mapping="temporal")
    rs, rt = spatial.mapping_report(), temporal.mapping_report()
    conv1_s = next(lay for lay in rs["layers"] if lay["layer"] == "conv1")
    conv1_t = next(lay for lay in rt["layers"] if lay["layer"] == "conv1")
    assert conv1_t["crossbars"] < conv1_s["crossbars"]
    assert rt["crossbars"] < rs["crossbars"]
    a = runner.run(spatial, {"input": x[:4]})
    b = runner.run(temporal, {"input": x[:4]})
    assert np.array_equal(a.device_int["logits"], b.device_int["logits"])
    assert b.stats.cycles > a.stats.cycles  # more row-group steps
    assert b.stats.per_component["adc"] == pytest.approx(a.stats.per_component["adc"])  # same conversions


from hypothesis import given, settings, strategies as st  # noqa: E402

from isa.costs import MvmuShape, stacked_arrays  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 128), live=st.lists(st.booleans(), min_size=1, max_size=16),
       cols=st.integers(1, 128))
def test_row_group_packing_invariants(rows, live, cols):
    """Every live slice is placed exactly once; slices sharing an array use disjoint rows and different steps;
    the array count is what the cost model charges."""
    ids = tuple(i for i, on in enumerate(live) if on)
    if not ids:
        return
    k = max(1, 128 // rows)
    shape = MvmuShape(rows, cols, len(live), ids, None, k)
    placed = {}
    for step, group in enumerate(shape.step_groups):
        for s in group:
            i = ids.index(s)
            array, offset = i // min(k, len(ids)), (i % min(k, len(ids))) * rows
            assert s not in placed
            placed[s] = (array, offset, step)
    assert set(placed) == set(ids)
    cells = [(a, r) for a, off, _ in placed.values() for r in range(off, off + rows)]
    assert len(cells) == len(set(cells)) and all(r < 128 for _, r in cells)
    per_array_steps = {}
    for a, _, step in placed.values():
        assert (a, step) not in per_array_steps
        per_array_steps[(a, step)] = True
    assert stacked_arrays([True] * len(ids), min(k, len(ids))) == len({a for a, _, _ in placed.values()})


def test_crossbar_budget_packs_only_what_it_needs():
    from isa.errors import ModelError

    x, _ = load_dataset("digits32", "test")
    full = compile_model(LENET, "16bit", mapping="temporal").mapping.crossbars
    spatial = compile_model(LENET, "16bit", mapping="spatial")
    budget = (full + spatial.mapping.crossbars) // 2
    fit = compile_model(LENET, "16bit", mapping="temporal", crossbar_budget=budget)
    assert full <= fit.mapping.crossbars <= budget < spatial.mapping.crossbars
    a = runner.run(spatial, {"input": x[:4]})
    b = runner.run(fit, {"input": x[:4]})
    assert np.array_equal(a.device_int["logits"], b.device_int["logits"])
    assert b.stats.cycles <= runner.run(compile_model(LENET, "16bit", mapping="temporal"),
                                        {"input": x[:4]}).stats.cycles
    with pytest.raises(ModelError, match=f"needs at least {full} crossbars"):
        compile_model(LENET, "16bit", mapping="temporal", crossbar_budget=full - 1)
