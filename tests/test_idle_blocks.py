"""Layers whose packed blocks hold no live bit line (issue 12 item 2, and the depthwise/grouped conv of issue 14):
all-zero weights, weights that all quantize to zero, Gemm alpha=0, depthwise and grouped convs with all-zero
crossbar blocks. Every one compiles and runs under every mapping, bit-exact against the functional model and
close to onnxruntime within a bound derived from the formats; an all-zero block costs no crossbar and no
conversion."""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler import compile_model, runner
from compiler.quant import quantize_layer
from isa import MvmuImage
from isa.layout import UNPLACED
from runtime import Machine
from support import HW, I, M, loc, program

MODES = ("naive", "spatial", "temporal")
Builder = Callable[[np.ndarray], onnx.ModelProto]


def _gemm(n_in: int, n_out: int, alpha: float = 1.0) -> Builder:
    def build(w: np.ndarray) -> onnx.ModelProto:
        g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=alpha)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
                              [onnx.numpy_helper.from_array(w.astype(np.float32), "w")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])

    return build


def _conv(c: int, group: int, size: int) -> Builder:
    def build(w: np.ndarray) -> onnx.ModelProto:
        node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=group, kernel_shape=[3, 3],
                                pads=[1, 1, 1, 1])
        g = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, size, size])],
                              [onnx.numpy_helper.from_array(w.astype(np.float32), "w")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])

    return build


def _ort(build: Builder, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return runner.reference_outputs(build(w), {"x": x}, ["y"])["y"].astype(np.float64)


def _bound(build: Builder, w_eff: np.ndarray, x: np.ndarray, cm, fan_in: int) -> np.ndarray:
    """Per-element bound on |device - onnxruntime| for one linear layer y = W x at the compiled formats, without
    saturation or ADC clipping (the 16-bit preset's ranges come from these very inputs and its ADC is full):
    |W| dx/2 + |x| dw/2 + dw dx/4 summed over the fan-in (weight and input rounding), dacc/2 per crossbar row
    block (each block's sum is rounded into the accumulator), dout/2 (the output requantization), and
    onnxruntime's own float32 rounding, fan_in * 2^-23 * |W| |x|."""
    p = next(iter(cm.precision.values()))
    dw, dx, dacc = 2.0 ** -p.w_frac, 2.0 ** -p.in_frac, 2.0 ** -p.acc_frac
    dout = 2.0 ** -cm.program.outputs[0].frac
    ones_w, ones_x, aw, ax = np.ones_like(w_eff), np.ones_like(x), np.abs(w_eff), np.abs(x)
    row_blocks = -(-fan_in // cm.hw.xbar_rows)
    return (_ort(build, aw, ones_x) * dx / 2 + _ort(build, ones_w, ax) * dw / 2 + _ort(build, ones_w, ones_x)
            * dw * dx / 4 + row_blocks * dacc / 2 + dout / 2 + _ort(build, aw, ax) * fan_in * 2.0 ** -23)


def _check(build: Builder, w: np.ndarray, x: np.ndarray, fan_in: int, w_eff: np.ndarray | None = None,
           ort: bool = True) -> dict[str, object]:
    """Compile under every mapping; the runtime equals the functional model bit for bit, the mappings agree with
    each other, and (with ``ort``) the result is within `_bound` of onnxruntime. Returns the compiled models."""
    model, feeds, out = build(w), {"x": x}, {}
    for mode in MODES:
        cm = compile_model(model, "16bit", calib=feeds, mapping=mode)
        got = runner.run(cm, feeds)
        assert np.array_equal(got.device_int["y"], runner.functional_outputs(cm, feeds)["y"]), mode
        out[mode] = (cm, got)
    ref_int = out["naive"][1].device_int["y"]
    assert all(np.array_equal(got.device_int["y"], ref_int) for _, got in out.values())
    if ort:
        cm, got = out["naive"]
        ref = _ort(build, w, x)
        err = np.abs(got.device_float["y"].reshape(ref.shape) - ref)
        assert (err <= _bound(build, w if w_eff is None else w_eff, x, cm, fan_in)).all()
    return out


def _idle_costs_nothing(out: dict[str, object]) -> None:
    """Every packed mapping of an all-zero layer: no crossbar, no conversion, no crossbar or DAC energy."""
    for mode in ("spatial", "temporal"):
        cm, got = out[mode]
        assert cm.mapping.crossbars == 0
        for comp in ("adc", "crossbar", "dac", "sample_hold", "shift_add", "leakage"):
            assert got.stats.per_component[comp] == 0.0, (mode, comp)


RNG = np.random.default_rng(12)
X20 = RNG.uniform(0, 1, (4, 20))
X300 = RNG.uniform(0, 1, (4, 300))


def test_all_zero_dense_layer(tmp_path):
    out = _check(_gemm(20, 10), np.zeros((20, 10)), X20, 20)
    _idle_costs_nothing(out)
    assert not out["spatial"][1].device_int["y"].any()
    out["temporal"][0].save(tmp_path / "o")  # the mapping report of an idle block
    assert json.loads((tmp_path / "o" / "mapping.json").read_text())["crossbars"] == 0


def test_weights_too_small_to_quantize():
    """1e-30 is below the finest weight format (62 fraction bits): every weight quantizes to 0."""
    out = _check(_gemm(300, 200), np.full((300, 200), 1e-30), X300, 300)
    _idle_costs_nothing(out)


def test_gemm_alpha_zero():
    w = RNG.normal(0, 0.3, (20, 10))
    out = _check(_gemm(20, 10, alpha=0.0), w, X20, 20, w_eff=0.0 * w)
    _idle_costs_nothing(out)


def test_one_large_weight_zeroes_the_others():
    """One weight of 1e4 sets the format (1 fraction bit at 16 bits): the others (|w| < 0.25) quantize to 0, so
    column block 1 is an idle block and row blocks 1 and 2 of column block 0 are not allocated."""
    w = RNG.normal(0, 0.05, (300, 200))
    w[0, 0] = 1e4
    out = _check(_gemm(300, 200), w, X300, 300)
    spatial = out["spatial"][0].mapping.layers["fc"]
    assert [(b.r, b.c, b.idle) for b in spatial.blocks] == [(0, 0, False), (0, 1, True)]
    assert out["spatial"][0].mapping.crossbars < out["naive"][0].mapping.crossbars


def test_one_huge_weight_runs_bit_exactly():
    """1e30 saturates the widest weight format (no float comparison possible); the run must still work."""
    w = RNG.normal(0, 0.2, (300, 200))
    w[0, 0] = 1e30
    _check(_gemm(300, 200), w, X300, 300, ort=False)


@pytest.mark.parametrize("channels,group", [(256, 256), (512, 512), (256, 2), (384, 4)])
def test_depthwise_and_grouped_conv_with_empty_blocks(channels, group):
    """Depthwise (issue 14: 256 and 512 channels at 6x6) and grouped (groups 2 and 4) convs: their im2col matrix
    has all-zero 128x128 blocks, row block 0 of a column block among them."""
    rng = np.random.default_rng(channels + group)
    w = rng.normal(0, 0.3, (channels, channels // group, 3, 3))
    x = rng.uniform(0, 1, (2, channels, 6, 6))
    out = _check(_conv(channels, group, 6), w, x, 9 * channels // group)
    cm = out["spatial"][0]
    q = quantize_layer(cm.graph.op("conv"), cm.precision["conv"]).weight
    zero = {(b.r, b.c) for b in out["naive"][0].mapping.layers["conv"].blocks
            if not q[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]].any()}
    assert any(r == 0 for r, _ in zero)  # the case that failed: an all-zero row block 0 under packing
    blocks = cm.mapping.layers["conv"].blocks
    assert {(b.r, b.c) for b in blocks if not b.idle}.isdisjoint(zero) and not any(b.idle for b in blocks)


def test_runtime_idle_mvmu_outputs_zero_and_costs_no_conversion():
    """The runtime alone: an MVMU image whose layout places no line (all-zero weights) loads, its MVM writes
    zeros, and it charges no crossbar, DAC, ADC or leakage energy."""
    r, c = 16, 8
    layout = np.full((8, 2, c, 3), UNPLACED, dtype=np.int16)
    img = MvmuImage(0, 0, 0, np.zeros((r, c), dtype=np.int64), 16, "fc", layout=layout)
    code = [I("load", HW.mvmu_in(0), M(0), r), I("mvm", 1, 16, HW.full_adc_bits, 0, 32, 0, -1),
            I("store", M(200), HW.mvmu_out(0), c, 0), I("halt")]
    prog = program({(0, 0): code}, mvmus=[img], inputs=[loc("x", 0, 0, r, 16)], outputs=[loc("y", 0, 200, c, 32)])
    x = np.random.default_rng(0).integers(-1000, 1000, (3, r))
    res = Machine(prog).run({"x": x})
    assert not res.outputs["y"].any()
    for comp in ("adc", "crossbar", "dac", "sample_hold", "shift_add", "leakage"):
        assert res.stats.per_component[comp] == 0.0, comp


def test_runtime_layout_placing_only_zero_lines():
    """A layout may place all-zero lines (they are read and converted, so not idle): it loads and outputs
    zeros, and its conversions are charged."""
    r, c = 16, 8
    layout = np.full((8, 2, c, 3), UNPLACED, dtype=np.int16)
    layout[0, 0, 0] = (0, 0, 0)  # slice 0, (+) line of column 0 on array 0, step 0, bit line 0
    img = MvmuImage(0, 0, 0, np.zeros((r, c), dtype=np.int64), 16, "fc", layout=layout)
    code = [I("load", HW.mvmu_in(0), M(0), r), I("mvm", 1, 16, HW.full_adc_bits, 0, 32, 0, -1),
            I("store", M(200), HW.mvmu_out(0), c, 0), I("halt")]
    prog = program({(0, 0): code}, mvmus=[img], inputs=[loc("x", 0, 0, r, 16)], outputs=[loc("y", 0, 200, c, 32)])
    res = Machine(prog).run({"x": np.random.default_rng(0).integers(-1000, 1000, (3, r))})
    assert not res.outputs["y"].any()
    assert res.stats.per_component["adc"] > 0  # one pair converted per input digit
