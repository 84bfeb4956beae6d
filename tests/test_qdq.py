"""QDQ import (issue 14): QuantizeLinear/DequantizeLinear pairs become fixed-point formats (`--precision qdq`).

Acceptance: onnxruntime's `quantize_static` (QDQ format, default settings: int8 activations with zero point -128
after ReLUs, symmetric per-tensor int8 weights) applied to the bundled LeNet-5 with 200 digits32 calibration
images compiles with ``--precision qdq`` (API and CLI), runs bit-exactly and agrees with onnxruntime running the
QDQ model on >= 99 % of the 360 test images.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler import runner
from compiler.cli import main
from compiler.quant.qdq import act_format, pow2_frac, qdq_config
from compiler.frontend.qdq import Quantizer
from isa.errors import ModelError, XbarcError
from models.datasets import load_dataset
from support import compile_model

from conftest import ROOT

LENET = ROOT / "models" / "lenet5_digits.onnx"
CALIB_IMAGES = 200


@pytest.fixture(scope="module")
def lenet_qdq(tmp_path_factory):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    x, _ = load_dataset("digits32", "calib")
    x = x[:CALIB_IMAGES].reshape(-1, 1, 32, 32).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.batches, None)

    path = tmp_path_factory.mktemp("qdq") / "lenet5_qdq.onnx"
    quantize_static(str(LENET), str(path), Reader(), quant_format=QuantFormat.QDQ)
    return path


@pytest.fixture(scope="module")
def compiled(lenet_qdq):
    return compile_model(lenet_qdq, "qdq", calib="digits32")


def test_lenet_qdq_is_bit_exact_and_agrees_with_onnxruntime(lenet_qdq, compiled):
    import onnxruntime as ort

    x, y = load_dataset("digits32", "test")
    x = x.reshape(-1, 1, 32, 32).astype(np.float32)
    assert len(x) == 360
    out = runner.run(compiled, {"input": x})
    assert runner.bit_exact(compiled, {"input": x}, out)
    pred = out.device_float["logits"].reshape(len(x), -1).argmax(axis=1)
    sess = ort.InferenceSession(str(lenet_qdq), providers=["CPUExecutionProvider"])
    ref = sess.run(["logits"], {"input": x})[0].argmax(axis=1)
    assert np.mean(pred == ref) >= 0.99
    assert np.mean(pred == y) >= 0.95
    # the Q/DQ nodes are gone from the device graph, every layer's error is reported
    assert not any("Quantize" in op.kind for op in compiled.graph.ops)
    layers = [op.name for op in compiled.graph.crossbar_ops()]
    for name in layers:
        assert any(w.startswith(f"qdq: layer '{name}':") for w in compiled.warnings)
    assert all(compiled.precision[n].w_bits == 8 and compiled.precision[n].in_bits == 9 for n in layers)


def test_qdq_is_the_default_and_the_cli_writes_a_reusable_config(lenet_qdq, compiled, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compile", str(lenet_qdq), "-o", str(out), "--calib", "digits32"]) == 0
    err = capsys.readouterr().err
    assert "qdq: layer 'conv1'" in err and "qdq: layer 'fc3'" in err
    doc = json.loads((out / "precision.json").read_text())
    assert {k: v["in_frac"] for k, v in doc["layers"].items()} == \
        {k: p.in_frac for k, p in compiled.precision.items()}
    again = compile_model(lenet_qdq, out / "precision.json", calib="digits32")
    assert again.precision == compiled.precision
    assert main(["compile", str(lenet_qdq), "-o", str(tmp_path / "q"), "--precision", "qdq",
                 "--calib", "digits32"]) == 0


def test_qdq_on_a_model_without_quantizers_is_an_error():
    with pytest.raises(XbarcError, match="QuantizeLinear/DequantizeLinear"):
        compile_model(LENET, "qdq", calib="digits32")


# --- the format rule on small hand-made QDQ models ---------------------------------------------------------


def _qdq_dense(w_scale, x_scale, x_zp=0, x_type=TensorProto.INT8, w_zp=0, axis=None):
    """x -> Q/DQ -> Gemm(DQ(int8 W)) -> y, 8 inputs, 4 outputs."""
    rng = np.random.default_rng(0)
    w_scale = np.asarray(w_scale, dtype=np.float32)
    wq = rng.integers(-127, 128, size=(8, 4)).astype(np.int8)
    zp_np = np.int8 if x_type == TensorProto.INT8 else np.uint8
    inits = [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(w_scale, "ws"),
             numpy_helper.from_array(np.zeros(w_scale.shape, np.int8) + np.int8(w_zp), "wz"),
             numpy_helper.from_array(np.array(x_scale, np.float32), "xs"),
             numpy_helper.from_array(np.array(x_zp, zp_np), "xz")]
    dq_w = helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq_w",
                            **({"axis": axis} if axis is not None else {}))
    nodes = [dq_w, helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("Gemm", ["xd", "w"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _calib():
    return {"x": np.random.default_rng(1).uniform(-1, 1, size=(64, 8)).astype(np.float32)}


def test_power_of_two_scale_with_zero_point_0_is_the_format_exactly():
    cm = compile_model(_qdq_dense(2.0 ** -7, 2.0 ** -6), None, calib=_calib())  # the default: qdq
    p = cm.precision["fc"]
    assert (p.w_bits, p.w_frac, p.in_bits, p.in_frac) == (8, 7, 8, 6)
    line = next(w for w in cm.warnings if w.startswith("qdq: layer 'fc'"))
    assert "weights Q(8, 7) exact" in line and "input Q(8, 6) exact" in line
    # the device computes what onnxruntime computes on the QDQ model, up to the accumulator's rounding
    x = _calib()["x"]
    out = runner.run(cm, {"x": x})
    assert runner.bit_exact(cm, {"x": x}, out)
    import onnxruntime as ort

    ref = ort.InferenceSession(cm.model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.abs(out.device_float["y"].reshape(ref[0].shape) - ref[0]).max() < 1e-4


def test_uint8_zero_point_0_is_unsigned_in_one_more_bit():
    assert act_format(Quantizer("q", np.array([2.0 ** -8]), np.array([0]), 8, False)) == (9, 8, True)
    assert act_format(Quantizer("q", np.array([1 / 255]), np.array([0]), 8, False)) == (9, 8, False)
    assert act_format(Quantizer("q", np.array([2.0 ** -4]), np.array([-128]), 8, True)) == (9, 4, True)
    assert act_format(Quantizer("q", np.array([1 / 127]), np.array([0]), 8, True)) == (8, 7, False)
    assert pow2_frac(0.25) == 2 and pow2_frac(0.3) is None and pow2_frac(8.0) == -3


def test_semantics_qdq_example():
    """The worked example of rule QDQ in docs/semantics.md."""
    assert act_format(Quantizer("q", np.array([2.0 ** -7]), np.array([0]), 8, True)) == (8, 7, True)
    bits, frac, exact = act_format(Quantizer("q", np.array([1 / 255]), np.array([0]), 8, False))
    assert (bits, frac, exact) == (9, 8, False)
    assert round((2.0 ** -frac / (1 / 255) - 1) * 100, 1) == -0.4
    assert round(255 / 2 ** 8, 5) == 0.99609


def test_other_scales_are_requantized_and_reported():
    cm = compile_model(_qdq_dense(0.006, 0.01, x_zp=3), "qdq", calib=_calib())
    p = cm.precision["fc"]
    assert (p.w_bits, p.in_bits) == (8, 9)
    line = next(w for w in cm.warnings if w.startswith("qdq: layer 'fc'"))
    assert "for scale 0.006" in line and "RMS error" in line and "for scale 0.01 " in line and "clip" in line


def test_per_channel_power_of_two_weights_are_varied_per_channel_widths():
    cm = compile_model(_qdq_dense([2.0 ** -7, 2.0 ** -6, 2.0 ** -7, 2.0 ** -8], 2.0 ** -6, axis=1), "qdq",
                       calib=_calib())
    p = cm.precision["fc"]
    assert (p.w_scheme, p.w_bits, p.w_frac) == ("varied", 10, 8)
    assert [c["bits"] for c in p.w_channels] == [8, 8, 8, 8]
    line = next(w for w in cm.warnings if w.startswith("qdq: layer 'fc'"))
    assert "varied" in line and "exact" in line
    x = _calib()["x"]
    out = runner.run(cm, {"x": x})
    assert runner.bit_exact(cm, {"x": x}, out)
    import onnxruntime as ort

    ref = ort.InferenceSession(cm.model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.abs(out.device_float["y"].reshape(ref[0].shape) - ref[0]).max() < 1e-4


def test_other_per_channel_weights_take_the_widest_format():
    cm = compile_model(_qdq_dense([0.007, 0.013, 0.006, 0.003], 2.0 ** -6, axis=1), "qdq", calib=_calib())
    line = next(w for w in cm.warnings if w.startswith("qdq: layer 'fc'"))
    assert "per-channel scales, widest format" in line and "RMS error" in line
    assert cm.precision["fc"].w_scheme == "uniform" and cm.precision["fc"].w_bits == 8


def test_a_quantizer_that_is_not_a_pair_is_an_error_naming_the_node():
    m = _qdq_dense(2.0 ** -7, 2.0 ** -6)
    g = m.graph
    extra = helper.make_node("Cast", ["xq"], ["xc"], name="cast_q", to=TensorProto.FLOAT)
    g.node.insert(2, extra)
    g.output.append(helper.make_tensor_value_info("xc", TensorProto.FLOAT, [None, 8]))
    with pytest.raises(ModelError, match="node 'q_x' \\(QuantizeLinear\\).*not only dequantized"):
        compile_model(m, "qdq", calib=_calib())


def test_qdq_config_lists_the_frontend_notes(compiled):
    cfg, report = qdq_config(compiled.graph)
    assert cfg["preset"] == "8bit" and set(cfg["layers"]) == set(compiled.precision)
    assert any("clips graph input 'input'" in r for r in report)


def test_a_dequantized_activation_without_its_quantizer_is_an_error_naming_the_node():
    m = _qdq_dense(2.0 ** -7, 2.0 ** -6)
    g = m.graph
    q = next(n for n in g.node if n.name == "q_x")
    g.node.remove(q)
    g.input[0].type.tensor_type.elem_type = TensorProto.INT8
    g.input[0].name = "xq"
    with pytest.raises(ModelError, match="node 'dq_x' \\(DequantizeLinear\\).*no QuantizeLinear"):
        compile_model(m, "qdq", calib={"xq": np.zeros((4, 8), np.int8)})


def test_per_channel_activation_quantizer_is_an_error_naming_the_node():
    m = _qdq_dense(2.0 ** -7, [2.0 ** -6] * 8)
    for t in m.graph.initializer:
        if t.name == "xz":
            t.CopyFrom(numpy_helper.from_array(np.zeros(8, np.int8), "xz"))
    for n in m.graph.node:
        if n.name in ("q_x", "dq_x"):
            n.attribute.append(helper.make_attribute("axis", 1))
    with pytest.raises(ModelError, match="node 'q_x' \\(QuantizeLinear\\): per-channel quantization"):
        compile_model(m, "qdq", calib=_calib())
