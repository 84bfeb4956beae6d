"""A user's own model and data through every command (issue 15, item 1): ``--calib FILE`` and ``--dataset FILE``
as .npz (inputs, labels, named splits) or .npy (inputs only), and the errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import EXIT_USAGE, main


def user_model(path: Path) -> Path:
    """A 2-layer classifier of 12 features into 4 classes, with no xbarc metadata (a user's export)."""
    rng = np.random.default_rng(7)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (12, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (16, 4)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["features", "w1"], ["h"], name="dense1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["scores"], name="dense2")]
    g = helper.make_graph(nodes, "user", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 12])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 4])], [w1, w2])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def user_data(model: Path) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in the user's own range (-3..3, not [0, 1)) and the float model's labels."""
    import onnxruntime as ort

    x = np.random.default_rng(8).uniform(-3, 3, (300, 12)).astype(np.float32)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return x, sess.run(None, {"features": x})[0].argmax(axis=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    model = user_model(d / "m.onnx")
    x, y = user_data(model)
    np.savez(d / "data.npz", x=x, y=y)
    np.savez(d / "splits.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    np.save(d / "inputs.npy", x[:50])
    return d, model, x, y


def test_compile_and_run_on_the_users_npz(setup, capsys) -> None:
    d, model, x, y = setup
    assert main(["compile", str(model), "-o", str(d / "out"), "--calib", str(d / "data.npz")]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err  # calibrated on real data: nothing to warn about
    assert main(["run", str(d / "out"), "--dataset", str(d / "data.npz"), "--check", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["images"] == 300 and r["bit_exact"] is True
    # the labels are the float model's own predictions: accuracy is agreement with onnxruntime, and 16-bit
    # formats calibrated on the data keep at least 97% of them (a near tie may flip)
    assert r["reference_accuracy"] == 1.0 and r["accuracy"] >= 0.97 and r["accuracy"] == r["agreement"]


def test_named_splits_and_inputs_only(setup, capsys) -> None:
    d, model, x, y = setup
    assert main(["compile", str(model), "-o", str(d / "o2"), "--calib", str(d / "splits.npz"),
                 "--calib-images", "64"]) == 0
    assert "(64 images)" in capsys.readouterr().out  # calib falls back to the train split, first 64
    assert main(["run", str(d / "o2"), "--dataset", str(d / "splits.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 100  # the test split
    assert main(["run", str(d / "o2"), "--dataset", str(d / "inputs.npy")]) == 0
    out = capsys.readouterr().out
    assert "accuracy: not measured (50 inputs without labels)" in out and "agreement with onnxruntime" in out


def test_noise_calibration_is_said(setup, capsys) -> None:
    d, model, x, y = setup
    assert main(["compile", str(model), "-o", str(d / "o3")]) == 0  # no data at all
    assert "warning: calibrated on synthetic uniform [0, 1) noise (256 inputs) (no data set given" in \
        capsys.readouterr().err
    assert main(["compile", str(model), "-o", str(d / "o3"), "--calib", "noise"]) == 0
    err = capsys.readouterr().err
    assert "warning: calibrated on synthetic uniform [0, 1) noise" in err and "no data set given" not in err


def test_search_and_adc_profile_take_the_file(setup, capsys) -> None:
    d, model, x, y = setup
    # the search scores on one split and chooses on another: one array for every split is a clear error
    assert main(["search", str(model), "--dataset", str(d / "data.npz"), "--budget", "4", "-o", str(d / "s0")]) == 2
    assert "hold the same images" in capsys.readouterr().err
    np.savez(d / "sv.npz", x_fit=x[:150], y_fit=y[:150], x_val=x[150:250], y_val=y[150:250], x_test=x[250:],
             y_test=y[250:], x=x, y=y)
    assert main(["search", str(model), "--dataset", str(d / "sv.npz"), "--budget", "4", "--max-drop", "5%",
                 "--test-images", "32", "-o", str(d / "s")]) == 0
    assert (d / "s" / "best.json").exists() and (d / "s" / "pareto.json").exists()
    capsys.readouterr()
    assert main(["adc-profile", str(model), "--dataset", str(d / "data.npz"), "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["images"] == 300 and [r["layer"] for r in prof["layers"]] == ["dense1", "dense2"]


@pytest.mark.parametrize("make,words", [
    (lambda x, y: {"x": x.reshape(len(x), 3, 4), "y": y}, "per-sample shape (3, 4) differs from the model input's (12,); reshape it to (N, 12)"),
    (lambda x, y: {"x": x[:, :10], "y": y}, "per-sample shape (10,) differs from the model input's (12,)"),
    (lambda x, y: {"inputs": x, "labels": y}, "no inputs for split 'test': expected an array 'x'"),
    (lambda x, y: {"x": np.where(np.arange(x.size).reshape(x.shape) == 17, np.nan, x), "y": y},
     "x: element [1, 5] is nan; inputs must be finite"),
    (lambda x, y: {"x": x, "y": y[:10]}, "y: expected 300 labels (one per input), got shape (10,)"),
    (lambda x, y: {"x": x, "y": y + 0.5}, "y: labels must be integers"),
])
def test_bad_data_files_are_clear_errors(setup, tmp_path, capsys, make, words) -> None:
    d, model, x, y = setup
    bad = tmp_path / "bad.npz"
    np.savez(bad, **make(x, y))
    assert main(["run", str(d / "out"), "--dataset", str(bad)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{bad}: " in err and words in err and "Traceback" not in err


def test_missing_file_and_unknown_name(setup, capsys) -> None:
    d, model, x, y = setup
    assert main(["run", str(d / "out"), "--dataset", str(d / "nope.npz")]) == EXIT_USAGE
    assert "nope.npz: no such data file" in capsys.readouterr().err
    assert main(["compile", str(model), "-o", str(d / "o4"), "--calib", "imagenet"]) == EXIT_USAGE
    assert "unknown data set 'imagenet': give a .npz or .npy file of your own" in capsys.readouterr().err
