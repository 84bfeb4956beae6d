"""Committed data set, committed/built ONNX models and the skl2onnx export the frontend must accept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.datasets import DATASETS, load_dataset
from models.puma_mlp import build_puma_mlp, puma_input
from models.train_mlp_digits import MODEL_PATH, build_mlp_digits, onnxruntime_accuracy

DATA_PATH = Path(__file__).resolve().parents[1] / "models" / "data" / "digits.npz"


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# --- data set -------------------------------------------------------------------------------------------------


def test_digits_split_sizes_and_dtypes() -> None:
    sizes = {split: len(load_dataset("digits", split)[1]) for split in ("train", "calib", "test", "all")}
    assert sizes == {"train": 1437, "calib": 256, "test": 360, "all": 1797}
    x, y = load_dataset("digits")
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (360, 64)
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(y)) == set(range(10))


def test_digits_image_layout() -> None:
    flat, _ = load_dataset("digits", "calib")
    image, _ = load_dataset("digits", "calib", layout="image")
    assert image.shape == (256, 1, 8, 8)
    np.testing.assert_array_equal(image.reshape(256, 64), flat)


def test_digits_split_indices_are_disjoint_and_nested() -> None:
    with np.load(DATA_PATH) as npz:
        train, calib, test = (set(npz[k].tolist()) for k in ("train", "calib", "test"))
        assert npz["images"].shape == (1797, 64) and npz["images"].dtype == np.uint8
        assert npz["images"].max() == 16 and npz["labels"].dtype == np.uint8
    assert len(train) == 1437 and len(test) == 360 and len(calib) == 256
    assert not train & test
    assert train | test == set(range(1797))
    assert calib <= train


def test_digits_test_split_is_stratified() -> None:
    _, y_all = load_dataset("digits", "all")
    _, y_test = load_dataset("digits", "test")
    np.testing.assert_allclose(np.bincount(y_test) / len(y_test), np.bincount(y_all) / len(y_all), atol=0.01)


def test_load_dataset_is_deterministic() -> None:
    x1, y1 = load_dataset("digits", "calib")
    x2, y2 = load_dataset("digits", "calib")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_digits_npz_matches_sklearn() -> None:
    pytest.importorskip("sklearn")
    from models.make_digits_data import make_digits_arrays

    fresh = make_digits_arrays()
    with np.load(DATA_PATH) as npz:
        assert sorted(npz.files) == sorted(fresh)
        for key, value in fresh.items():
            np.testing.assert_array_equal(npz[key], value, err_msg=key)


@pytest.mark.parametrize(
    ("name", "split", "match"),
    [("mnist", "test", "available: digits"), ("digits", "val", "available: train, calib, test, all")],
)
def test_load_dataset_rejects_unknown_names(name: str, split: str, match: str) -> None:
    assert DATASETS == ("digits",)
    with pytest.raises(ValueError, match=match):
        load_dataset(name, split)


def test_datasets_module_does_not_import_sklearn() -> None:
    source = (Path(__file__).resolve().parents[1] / "models" / "datasets.py").read_text()
    assert "sklearn" not in source


# --- committed digits MLP -------------------------------------------------------------------------------------


def test_mlp_digits_graph_shape() -> None:
    model = onnx.load(MODEL_PATH)
    onnx.checker.check_model(model)
    assert [(n.name, n.op_type) for n in model.graph.node] == [
        ("fc1", "Gemm"), ("relu1", "Relu"), ("fc2", "Gemm"), ("relu2", "Relu"), ("fc3", "Gemm"),
    ]
    assert all(a.i == 1 for n in model.graph.node if n.op_type == "Gemm" for a in n.attribute if a.name == "transB")
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert dims["fc1.weight"] == (256, 64) and dims["fc2.weight"] == (128, 256) and dims["fc3.weight"] == (10, 128)
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == 13


def test_mlp_digits_accuracy_with_onnxruntime() -> None:
    assert onnxruntime_accuracy(onnx.load(MODEL_PATH), "test") >= 0.95


def test_mlp_digits_export_is_reproducible() -> None:
    fresh = build_mlp_digits().SerializeToString()
    assert hashlib.md5(fresh).hexdigest() == hashlib.md5(MODEL_PATH.read_bytes()).hexdigest()


# --- PUMA MLP -------------------------------------------------------------------------------------------------


def test_puma_mlp_shapes_and_onnxruntime() -> None:
    model = build_puma_mlp()
    weights = [t for t in model.graph.initializer if t.name.endswith(".weight")]
    assert [tuple(t.dims) for t in weights] == [(1024, 784), (512, 1024), (200, 512), (10, 200)]
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Sigmoid"] * 4
    x = puma_input()
    assert x.shape == (1, 784) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() < 1.0
    (y,) = run_ort(model, {"input": x})
    assert y.shape == (1, 10) and np.all((y > 0) & (y < 1))


def test_puma_mlp_weights_follow_the_recipe() -> None:
    rng = np.random.default_rng(0)
    first = rng.normal(0, 1 / np.sqrt(784), size=(1024, 784)).astype(np.float32)
    second = rng.normal(0, 1 / np.sqrt(1024), size=(512, 1024)).astype(np.float32)
    init = {t.name: onnx.numpy_helper.to_array(t) for t in build_puma_mlp().graph.initializer}
    np.testing.assert_array_equal(init["fc1.weight"], first)
    np.testing.assert_array_equal(init["fc2.weight"], second)
    assert not any(init[f"fc{i}.bias"].any() for i in range(1, 5))
    np.testing.assert_array_equal(puma_input(), puma_input())


# --- sklearn MLP via skl2onnx ---------------------------------------------------------------------------------

SKLEARN_OPS = ["Cast", "MatMul", "Add", "{act}", "Softmax", "Identity", "ArgMax", "ArrayFeatureExtractor", "Reshape"]


@pytest.mark.parametrize(("activation", "onnx_act"), [("relu", "Relu"), ("tanh", "Tanh"), ("logistic", "Sigmoid")])
def test_sklearn_mlp_export_matches_predict(activation: str, onnx_act: str) -> None:
    pytest.importorskip("skl2onnx")
    from models.sklearn_mlp import export_sklearn_mlp, op_types, train_sklearn_mlp

    clf = train_sklearn_mlp(activation)
    model = export_sklearn_mlp(clf)
    assert op_types(model) == [op.format(act=onnx_act) for op in SKLEARN_OPS]
    x, y = load_dataset("digits", "test")
    label, probabilities = run_ort(model, {"input": x})
    np.testing.assert_array_equal(label, clf.predict(x))
    np.testing.assert_allclose(probabilities, clf.predict_proba(x), atol=1e-5)
    assert np.mean(label == y) >= 0.93
