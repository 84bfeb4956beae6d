"""Convolutional networks: converters against onnxruntime, bit-exact runtime vs functional model, loops."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from compiler import runner
from support import compile_model
from isa.hardware import DEFAULT
from models.datasets import load_dataset

from conftest import ROOT

LENET = ROOT / "models" / "lenet5_digits.onnx"
RESNET = ROOT / "models" / "resnet_digits.onnx"


def _model(text: str, seed: int = 0, consts: dict[str, np.ndarray] | None = None,
           **shapes: tuple[int, ...]) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    m = onnx.parser.parse_model(text)
    for name, shape in shapes.items():
        arr = rng.uniform(0.5, 1.5, shape) if name.startswith("v") else rng.normal(0, 0.4, shape)
        m.graph.initializer.append(onnx.numpy_helper.from_array(arr.astype(np.float32), name))
    for name, arr in (consts or {}).items():
        m.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
    onnx.checker.check_model(m)
    return m


def _check(m: onnx.ModelProto, x: np.ndarray, precision="16bit", hw=None, out="y", atol=2e-3):
    """Compile, run, and compare: bit-exact against the functional model; close to onnxruntime."""
    cm = compile_model(m, precision, hw=hw, calib={"x": x})
    got = runner.run(cm, {"x": x})
    assert runner.bit_exact(cm, {"x": x}, got)
    ref = runner.reference_outputs(m, {"x": x}, [out])[out]
    # 16-bit inputs/weights: rounding errors of about 2^-13 relative per operand, summed over a few layers
    np.testing.assert_allclose(got.device_float[out].reshape(ref.shape), ref, atol=atol * max(1.0, np.abs(ref).max()))
    return cm, got


MIXED_OPS = """
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 3, 12, 12] x) => (float[N, 5] y) {
    c1 = Conv<kernel_shape=[3,3], auto_pad="SAME_UPPER">(x, w1, b1)
    n1 = BatchNormalization(c1, g1, be1, m1, v1)
    r1 = Relu(n1)
    p1 = MaxPool<kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>(r1)
    c2 = Conv<kernel_shape=[3,3], pads=[2,2,2,2], dilations=[2,2], group=2>(p1, w2, b2)
    r2 = Clip(c2, lo, hi)
    s = Add(r2, p1)
    pd = Pad(s, pads)
    dw = Conv<kernel_shape=[3,3], group=8>(pd, w4)
    c3 = Conv<kernel_shape=[1,1]>(dw, w3)
    cat = Concat<axis=1>(c3, s)
    ap = AveragePool<kernel_shape=[2,2], strides=[2,2], ceil_mode=1>(cat)
    lr = LeakyRelu<alpha=0.1>(ap)
    g = GlobalAveragePool(lr)
    f = Flatten(g)
    y = Gemm<transB=1>(f, wf, bf)
}
"""


@pytest.fixture(scope="module")
def mixed_ops_model():
    consts = {"lo": np.array(0.0, np.float32), "hi": np.array(0.6, np.float32),
              "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}
    return _model(MIXED_OPS, consts=consts, w1=(8, 3, 3, 3), b1=(8,), g1=(8,), be1=(8,), m1=(8,), v1=(8,),
                  w2=(8, 4, 3, 3), b2=(8,), w4=(8, 1, 3, 3), w3=(6, 8, 1, 1), wf=(5, 14), bf=(5,))


def test_every_cnn_op_against_onnxruntime(mixed_ops_model):
    x = np.random.default_rng(1).uniform(0, 1, (16, 3, 12, 12)).astype(np.float32)
    cm, _ = _check(mixed_ops_model, x)
    kinds = [op.kind for op in cm.graph.ops]
    assert kinds.count("conv") == 4 and "batchnorm" not in kinds and "pad" not in kinds
    assert {"pool", "eltwise", "concat", "gap", "dense"} <= set(kinds)


def test_multi_tile_cnn_is_bit_exact(mixed_ops_model):
    x = np.random.default_rng(2).uniform(0, 1, (4, 3, 12, 12)).astype(np.float32)
    hw = DEFAULT.with_changes(mvmus_per_core=1, cores_per_tile=2, tiles=32)
    cm, got = _check(mixed_ops_model, x, hw=hw)
    assert cm.mapping.tiles > 3 and got.stats.per_component["noc"] > 0


def test_old_opset_model():
    m = _model("""
<ir_version: 4, opset_import: ["" : 8]>
agraph (float[1, 2, 9, 9] x) => (float[1, 4, 4, 4] y) {
    p = Pad<pads=[0,0,1,1,0,0,1,1]>(x)
    c = Conv<kernel_shape=[3,3], strides=[2,2]>(p, w)
    y = Clip<min=0.0, max=6.0>(c)
}
""", w=(4, 2, 3, 3))
    x = np.random.default_rng(3).uniform(0, 1, (1, 2, 9, 9)).astype(np.float32)
    _check(m, x)


def test_loops_keep_program_size_independent_of_image_size():
    text = """
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 3, {s}, {s}] x) => (float[N, 4] y) {{
    c = Conv<kernel_shape=[3,3], pads=[1,1,1,1]>(x, w, b)
    r = Relu(c)
    p = MaxPool<kernel_shape=[2,2], strides=[2,2]>(r)
    c2 = Conv<kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]>(p, w2)
    s = Add(c2, c2)
    g = GlobalAveragePool(s)
    f = Flatten(g)
    y = Gemm<transB=1>(f, wf)
}}
"""
    counts = []
    for size in (16, 64):
        m = _model(text.format(s=size), w=(8, 3, 3, 3), b=(8,), w2=(8, 8, 3, 3), wf=(4, 8))
        x = np.random.default_rng(4).uniform(0, 1, (2, 3, size, size)).astype(np.float32)
        cm = compile_model(m, "8bit", calib={"x": x})
        counts.append(cm.program.static_instructions)
        if size == 16:
            assert runner.bit_exact(cm, {"x": x}, runner.run(cm, {"x": x}))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("attrs", ["pads=[1,1,1,1]", "pads=[2,0,1,2], strides=[2,1]",
                                   "pads=[1,1,1,1], strides=[2,2], ceil_mode=1",
                                   "strides=[2,2], ceil_mode=1, count_include_pad=1",
                                   "pads=[2,2,2,2], dilations=[2,2]"])
def test_averagepool_divisor_per_border_window(attrs):
    """count_include_pad=0 with pads and ceil-mode overhang: each window divides by its own count (rule POOL),
    one pixel loop per block of windows sharing a divisor; against onnxruntime and bit-exact."""
    m = _model(f"""
<ir_version: 8, opset_import: ["" : 19]>
agraph (float[N, 2, 7, 6] x) => (float[N, 4, A, B] y) {{
    c = Conv<kernel_shape=[1,1]>(x, w)
    y = AveragePool<kernel_shape=[3,3], {attrs}>(c)
}}
""", w=(4, 2, 1, 1))
    x = np.random.default_rng(5).uniform(-1, 1, (8, 2, 7, 6)).astype(np.float32)
    cm, _ = _check(m, x, atol=5e-4)
    pool = next(op for op in cm.graph.ops if op.kind == "pool")
    assert pool.attrs["count_include_pad"] == ("count_include_pad=1" in attrs)


@pytest.fixture(scope="module")
def digits32():
    return load_dataset("digits32", "test")


def test_lenet_16bit_matches_functional_and_onnxruntime(digits32):
    x, y = digits32
    cm = compile_model(LENET, "16bit")
    r = runner.evaluate(cm, x, y)
    assert r["bit_exact"] is True
    assert r["agreement"] >= 0.995
    assert r["accuracy"] >= 0.95


def test_lenet_mixed_precision_is_bit_exact(digits32):
    x, _ = digits32
    cfg = {"preset": "8bit", "layers": {"conv1": {"adc_bits": 5}, "conv2": {"w_bits": 6, "adc_bits": 6},
                                        "fc1": {"in_bits": 6, "adc_bits": 4}}}
    cm = compile_model(LENET, cfg)
    got = runner.run(cm, {"input": x[:120]})
    ref = runner.functional_outputs(cm, {"input": x[:120]})
    assert np.array_equal(got.device_int["logits"], ref["logits"])


def test_residual_network_matches_functional_and_onnxruntime():
    x, y = load_dataset("digits_image", "test")
    cm = compile_model(RESNET, "16bit")
    assert sum(op.kind == "eltwise" for op in cm.graph.ops) == 3
    r = runner.evaluate(cm, x[:180], y[:180])
    assert r["bit_exact"] is True
    assert r["agreement"] >= 0.99


def test_pipeline_interval_is_the_busiest_core():
    x, _ = load_dataset("digits32", "test")
    cm = compile_model(LENET, "8bit")
    s = runner.run(cm, {"input": x[:4]}).stats
    assert s.pipeline_interval == max(s.per_core_busy.values())
    assert 0 < s.pipeline_interval < s.cycles  # layers on different cores overlap across inferences
    assert sum(s.per_core_busy.values()) == sum(v["cycles"] for v in s.per_instruction.values())


def test_weight_replication_splits_output_rows_bit_exactly(mixed_ops_model):
    """Replicas of a conv layer compute bands of output rows; results are unchanged, latency drops."""
    x, _ = load_dataset("digits32", "test")
    base = compile_model(LENET, "8bit")
    rep = compile_model(LENET, "8bit", replicate=4)
    assert rep.mapping.layers["conv1"].replicas == 4 and rep.mapping.crossbars > base.mapping.crossbars
    a, b = runner.run(base, {"input": x[:6]}), runner.run(rep, {"input": x[:6]})
    assert np.array_equal(a.device_int["logits"], b.device_int["logits"])
    assert b.stats.cycles < a.stats.cycles / 2
    # replicas spread over tiles: bands travel by send/receive
    xm = np.random.default_rng(5).uniform(0, 1, (3, 3, 12, 12)).astype(np.float32)
    hw = DEFAULT.with_changes(mvmus_per_core=1, cores_per_tile=2, tiles=64)
    cm = compile_model(mixed_ops_model, "16bit", hw=hw, calib={"x": xm}, replicate=3)
    got = runner.run(cm, {"x": xm})
    assert runner.bit_exact(cm, {"x": xm}, got) and got.stats.per_component["noc"] > 0
