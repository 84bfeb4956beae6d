"""Mapping modes: naive, spatial (bit lines packed) and temporal (row-group steps) give bit-identical results and
save what they claim; packing invariants on random varied-precision blocks."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler import runner
from support import compile_model
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
    for mode, budget in (("naive", None), ("spatial", None), ("temporal", None), ("densest", 0)):
        cm = compile_model(model, cfg, mapping="temporal" if budget == 0 else mode, crossbar_budget=budget)
        name = cm.program.outputs[0].name
        got = runner.run(cm, {cm.program.inputs[0].name: x})
        outs[mode] = (got.device_int[name], got.stats, cm)
        assert np.array_equal(got.device_int[name], runner.functional_outputs(cm, {cm.program.inputs[0].name: x})[name])
    assert np.array_equal(outs["naive"][0], outs["spatial"][0])
    assert np.array_equal(outs["naive"][0], outs["temporal"][0])
    assert np.array_equal(outs["naive"][0], outs["densest"][0])
    assert any(m.layout is not None and m.layout[..., 1].max() > 0 for m in outs["densest"][2].program.mvmus)


def _live_pairs_and_lines(m, cell_bits: int) -> tuple[int, int]:
    """(slice, column) pairs and bit lines of an MVMU image with a non-zero cell, counted from its weights."""
    from isa import numerics as nx

    pos, neg = nx.weight_slices(m.weights, m.weight_bits, cell_bits, m.encoding)
    lp, ln = pos.any(axis=1), neg.any(axis=1)  # (S, C)
    return int((lp | ln).sum()), int(lp.sum() + ln.sum())


def test_spatial_packs_live_bit_lines_and_converts_only_them():
    x, _ = load_dataset("digits", "test")
    # every channel uniform 4-bit on an 8-bit grid, with its own power-of-two step: low or high slices of many
    # columns are zero, the hollows varied quantization leaves
    cfg = {"preset": "8bit", "default": {"w_scheme": "varied", "w_channels": [{"scheme": "uniform", "bits": 4}]}}
    naive, spatial = (compile_model(MLP, cfg, mapping=m) for m in ("naive", "spatial"))
    rn, rs = naive.mapping_report(), spatial.mapping_report()
    assert rn["crossbars"] == 2 * 4 * rn["mvmus"]          # 8-bit weights: 4 slices of (+)/(-) arrays
    hw = spatial.hw
    arrays = pairs = all_pairs = 0
    expected_adc = {"naive": 0.0, "spatial": 0.0}
    for m in spatial.program.mvmus:                         # one step: ceil(live lines / 128) arrays per block
        p = spatial.precision[m.node]
        live_pairs, lines = _live_pairs_and_lines(m, hw.cell_bits)
        arrays += -(-lines // hw.xbar_cols)
        pairs += live_pairs
        all_pairs += 4 * m.weights.shape[1]
        per_pair = p.in_bits * hw.costs.adc_conversion_pj(p.adc_bits)  # MLP layers execute once per inference
        expected_adc["spatial"] += live_pairs * per_pair
        expected_adc["naive"] += 4 * m.weights.shape[1] * per_pair
    assert rs["crossbars"] == arrays < rn["crossbars"]
    assert pairs < all_pairs
    sn = runner.run(naive, {"input": x[:16]}).stats
    ss = runner.run(spatial, {"input": x[:16]}).stats
    assert ss.per_component["adc"] == pytest.approx(expected_adc["spatial"], rel=1e-12)
    assert sn.per_component["adc"] == pytest.approx(expected_adc["naive"], rel=1e-12)
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


def test_temporal_stacks_only_where_it_costs_no_cycles():
    """Temporal mapping (no budget) is the energy-delay optimum: it stacks bit lines in row-group steps only as
    far as each layer's MVM latency does not grow, so crossbars fall and cycles and energy stay."""
    x, _ = load_dataset("digits32", "test")
    spatial = compile_model(LENET, "16bit", mapping="spatial")
    temporal = compile_model(LENET, "16bit", mapping="temporal")
    assert temporal.mapping.crossbars < spatial.mapping.crossbars
    a = runner.run(spatial, {"input": x[:4]})
    b = runner.run(temporal, {"input": x[:4]})
    assert np.array_equal(a.device_int["logits"], b.device_int["logits"])
    assert b.stats.cycles == a.stats.cycles
    assert b.stats.per_component["adc"] == pytest.approx(a.stats.per_component["adc"])  # same conversions
    stacked = [m for m in temporal.program.mvmus if m.layout is not None and m.layout[..., 1].max() > 0]
    assert stacked  # some block really uses more than one step
    for lay in temporal.mapping_report()["layers"]:   # the report's per-MVM latency: no step costs a cycle
        assert lay["mvm_cycles"] == lay["mvm_cycles_one_step"]
    densest = compile_model(LENET, "16bit", mapping="temporal", crossbar_budget=0).mapping_report()["layers"]
    assert any(lay["mvm_cycles"] > lay["mvm_cycles_one_step"] for lay in densest)


from hypothesis import given, settings, strategies as st  # noqa: E402

from compiler.mapping.packing import live_lines, pack  # noqa: E402
from isa import numerics as nx  # noqa: E402
from isa.costs import MvmuShape, conversions_per_step  # noqa: E402
from isa.hardware import DEFAULT  # noqa: E402
from isa.layout import summarize  # noqa: E402


@st.composite
def varied_blocks(draw):
    """A random block with varied per-column precision: column c keeps only bits [lo_c, hi_c) of its magnitude
    (the hollows of varied quantization), some columns or rows all zero."""
    rows, cols = draw(st.integers(1, 128)), draw(st.integers(1, 128))
    bits = draw(st.sampled_from([4, 8, 16]))
    enc = draw(st.sampled_from(["twos", "sce"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mag = rng.integers(0, 1 << (bits - 1), (rows, cols))
    lo = rng.integers(0, bits - 1, cols)
    hi = np.minimum(bits - 1, lo + rng.integers(1, bits, cols))
    keep = ((1 << hi) - 1) & ~((1 << lo) - 1)
    w = (mag & keep[None, :]) * rng.choice([-1, 1], (rows, cols))
    w[:, rng.random(cols) < 0.2] = 0
    w[rng.random(rows) < 0.2] = 0
    return w.astype(np.int64), bits, enc, draw(st.integers(1, 128))


@settings(max_examples=150, deadline=None)
@given(block=varied_blocks())
def test_packing_invariants(block):
    """Every live bit line is placed exactly once, no two lines share a physical cell in one step, pairs are
    converted together, the charged counts are the placed ones, and driving the physical arrays step by step
    and shifting each conversion by its own slice reassembles W^T x exactly."""
    w, bits, enc, steps = block
    hw, cb = DEFAULT, DEFAULT.cell_bits
    rows, cols = w.shape
    live = live_lines(w, bits, cb, enc)
    lay = pack(live, rows, hw, steps)
    placed = lay[..., 0] >= 0
    assert np.array_equal(placed, live)                       # live lines placed, dead ones not
    pos_lines = lay[placed]
    assert len({tuple(v) for v in pos_lines}) == len(pos_lines)  # one line per (array, step, column)
    assert (pos_lines[:, 2] < hw.xbar_cols).all() and ((pos_lines[:, 1] + 1) * rows <= hw.xbar_rows).all()
    assert (pos_lines[:, 1] < max(1, steps)).all()
    both = placed[:, 0] & placed[:, 1]
    assert (lay[:, 0, :, 1][both] == lay[:, 1, :, 1][both]).all()
    summary = summarize(lay)
    arrays = len(set(pos_lines[:, 0].tolist()))
    assert summary.arrays == arrays
    if arrays:                                               # the fewest arrays: one less would not hold the lines
        assert live.sum() > (arrays - 1) * hw.xbar_cols * min(steps, hw.xbar_rows // rows)
    shape = MvmuShape.packed(rows, cols, live.shape[0], summary)
    assert sum(conversions_per_step(hw, shape, 1, -1)) == int(live.any(axis=1).sum())
    # physical arrays: cell (step*rows + r, column) of array a holds the line's cell r
    pos, neg = nx.weight_slices(w, bits, cb, enc)
    phys = np.zeros((max(1, arrays), hw.xbar_rows, hw.xbar_cols), dtype=np.int64)
    ids = {a: i for i, a in enumerate(sorted(set(pos_lines[:, 0].tolist())))}
    for sl, sign, col in zip(*np.nonzero(placed)):
        a, g, pc = lay[sl, sign, col]
        assert not phys[ids[a], g * rows:(g + 1) * rows, pc].any()
        phys[ids[a], g * rows:(g + 1) * rows, pc] = (pos, neg)[sign][sl, :, col]
    x = np.random.default_rng(1).integers(-100, 100, rows)
    out = np.zeros(cols, dtype=np.int64)
    for g in range(summary.steps):                           # drive row group g only, read every bit line
        drive = np.zeros(hw.xbar_rows, dtype=np.int64)
        drive[g * rows:(g + 1) * rows] = x
        lines = np.einsum("r,arc->ac", drive, phys)
        for sl, sign, col in zip(*np.nonzero(placed & (lay[..., 1] == g))):
            a, _, pc = lay[sl, sign, col]
            out[col] += (1 - 2 * sign) * (lines[ids[a], pc] << (cb * sl))
    assert np.array_equal(out, w.T @ x)


def test_runtime_rejects_bad_layouts():
    from isa import MvmuImage, XbarcError
    from runtime.state import MvmuKernel

    w = np.array([[3, -1], [2, 5]])
    live = live_lines(w, 8, 2, "twos")
    good = pack(live, 2, DEFAULT)
    MvmuKernel.from_image(MvmuImage(0, 0, 0, w, 8, layout=good), DEFAULT)
    lost = good.copy()
    lost[0, 0, 0] = -1
    with pytest.raises(XbarcError, match=r"bit line \(slice 0, \+, column 0\) has non-zero cells"):
        MvmuKernel.from_image(MvmuImage(0, 0, 0, w, 8, layout=lost), DEFAULT)
    clash = good.copy()
    clash[0, 0, 1] = clash[0, 0, 0]
    with pytest.raises(XbarcError, match="share one physical cell"):
        MvmuKernel.from_image(MvmuImage(0, 0, 0, w, 8, layout=clash), DEFAULT)
    split = good.copy()
    split[0, 1, 1, 1] = 1                                   # slice 0, column 1: (-) line in step 1, (+) in step 0
    with pytest.raises(XbarcError, match="different steps"):
        MvmuKernel.from_image(MvmuImage(0, 0, 0, w, 8, layout=split), DEFAULT)
    tall = good.copy()
    tall[0, 0, 0, 1] = 64
    with pytest.raises(XbarcError, match="row-group steps"):
        MvmuKernel.from_image(MvmuImage(0, 0, 0, w, 8, layout=tall), DEFAULT)


def test_crossbar_budget_trades_cycles_for_crossbars():
    from isa.errors import ModelError

    x, _ = load_dataset("digits32", "test")
    temporal = compile_model(LENET, "16bit", mapping="temporal")
    with pytest.raises(ModelError, match=r"needs at least (\d+) crossbars") as e:
        compile_model(LENET, "16bit", mapping="temporal", crossbar_budget=1)
    least = int(str(e.value).split("at least ")[1].split()[0])
    assert least < temporal.mapping.crossbars
    budget = (least + temporal.mapping.crossbars) // 2
    fit = compile_model(LENET, "16bit", mapping="temporal", crossbar_budget=budget)
    assert least <= fit.mapping.crossbars <= budget
    a = runner.run(temporal, {"input": x[:4]})
    b = runner.run(fit, {"input": x[:4]})
    assert np.array_equal(a.device_int["logits"], b.device_int["logits"])
    assert b.stats.cycles > a.stats.cycles                  # the crossbars saved cost steps
    with pytest.raises(ModelError, match=f"needs at least {least} crossbars"):
        compile_model(LENET, "16bit", mapping="temporal", crossbar_budget=least - 1)


def test_core_crossbar_pool_lets_packed_blocks_share_cores():
    """With xbars_per_core, a core takes blocks while their crossbars fit: packed blocks need fewer cores."""
    from dataclasses import replace

    from isa import XbarcError
    from isa.errors import ModelError
    from isa.hardware import DEFAULT
    from isa.layout import summarize
    from runtime import Machine

    hw = DEFAULT.with_changes(xbars_per_core=8)
    x, _ = load_dataset("digits32", "test")
    naive = compile_model(LENET, "8bit", hw=hw, mapping="naive")      # 8-bit: 8 crossbars per naive block
    spatial = compile_model(LENET, "8bit", hw=hw, mapping="spatial")
    for cm in (naive, spatial):
        used: dict[tuple[int, int], int] = {}
        for m in cm.program.mvmus:
            arrays = 8 if m.layout is None else summarize(m.layout).arrays
            used[(m.tile, m.core)] = used.get((m.tile, m.core), 0) + arrays
        assert max(used.values()) <= 8
    assert spatial.mapping.cores < naive.mapping.cores
    a = runner.run(naive, {"input": x[:8]}).device_int["logits"]
    b = runner.run(spatial, {"input": x[:8]}).device_int["logits"]
    assert np.array_equal(a, b)
    with pytest.raises(XbarcError, match="use 8 crossbars but a core has 4"):
        Machine(replace(naive.program, hw=naive.program.hw.with_changes(xbars_per_core=4)))
    with pytest.raises(ModelError, match="layer fc1: a block needs 16 crossbars but a core has 8"):
        compile_model(MLP, "16bit", hw=hw, mapping="naive")
