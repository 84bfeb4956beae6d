"""Compile-time warnings about layers a valid precision destroys (compiler.quant.health)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from support import compile_model
from compiler.cli import main
from models.datasets import load_dataset

from conftest import MLP

X = {"input": load_dataset("digits", "calib")[0][:32]}


def with_weight(name: str, edit) -> onnx.ModelProto:
    m = onnx.load(MLP)
    for t in m.graph.initializer:
        if t.name == name:
            a = numpy_helper.to_array(t).copy()
            edit(a)
            t.CopyFrom(numpy_helper.from_array(a, name))
    return m


def test_the_bundled_model_compiles_without_warnings() -> None:
    assert compile_model(MLP, "16bit").warnings == []


def test_an_outlier_weight_that_zeroes_the_others_is_named() -> None:
    def outlier(a: np.ndarray) -> None:
        a[0, 0] = 1e30

    warns = compile_model(with_weight("fc2.weight", outlier), "16bit", calib=X).warnings
    assert any(w.startswith("layer 'fc2': ") and "of its nonzero weights quantize to 0" in w and "1e+30" in w
               for w in warns), warns


def test_a_layer_of_zeros_and_a_saturating_bias_are_named() -> None:
    def zero(a: np.ndarray) -> None:
        a[...] = 1e-30

    def huge(a: np.ndarray) -> None:
        a[...] = 1e28

    warns = compile_model(with_weight("fc3.weight", zero), "16bit", calib=X).warnings
    assert warns == [w for w in warns if w.startswith("layer 'fc3': every weight quantizes to 0")] and warns
    warns = compile_model(with_weight("fc1.bias", huge), "16bit", calib=X).warnings
    assert any(w.startswith("layer 'fc1': bias values up to 1e+28 saturate the accumulator format")
               for w in warns), warns


def test_compile_and_run_print_the_warnings(tmp_path, capsys) -> None:
    def outlier(a: np.ndarray) -> None:
        a[0, 0] = 1e30

    path = tmp_path / "m.onnx"
    onnx.save(with_weight("fc2.weight", outlier), path)
    assert main(["compile", str(path), "-o", str(tmp_path / "o")]) == 0
    assert "xbarc compile: warning: layer 'fc2': " in capsys.readouterr().err
    assert main(["run", str(tmp_path / "o"), "--dataset", "digits", "--limit", "8"]) == 0
    assert "xbarc run: warning: layer 'fc2': " in capsys.readouterr().err


def test_weights_and_activations_beyond_their_formats_are_named() -> None:
    def scale(a: np.ndarray) -> None:
        a *= 1e30

    warns = compile_model(with_weight("fc2.weight", scale), "16bit", calib=X).warnings
    assert any(w.startswith("layer 'fc2': ") and "of its weights saturate Q(16, " in w for w in warns)
    assert any(w.startswith("tensor 'logits': calibrated values up to ") for w in warns)


def test_an_activation_outlier_channel_is_named() -> None:
    def offset(a: np.ndarray) -> None:
        a[7] = 65504.0  # one unit of fc1 is always ~65504: it sets relu1's format, the others lose their bits

    warns = compile_model(with_weight("fc1.bias", offset), "16bit", calib=X).warnings
    assert any(w.startswith("tensor 'relu1_out': its largest calibrated value, 6.55e+04, is over 64x the 99th")
               for w in warns), warns


def test_a_destructive_precision_is_named_by_the_float_comparison(tmp_path) -> None:
    import json

    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"preset": "4bit", "layers": {"fc1": {"skip": 2}}}))
    warns = compile_model(MLP, str(cfg), calib=X).warnings
    assert any(w.startswith("the quantized model is far from the float model on 32 calibration inputs: output "
                            "'logits' differs by ") for w in warns), warns
    assert not any("far from the float" in w for w in compile_model(MLP, "8bit", calib=X).warnings)
