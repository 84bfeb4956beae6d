"""Committed data set, committed/built ONNX models (MLP, LeNet-5, ResNet), the CNN zoo and the skl2onnx export."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.datasets import DATASETS, load_dataset
from models.puma_mlp import build_puma_mlp, puma_input
from models.build_resnet_digits import MODEL_PATH as RESNET_PATH
from models.build_resnet_digits import build_resnet_digits
from models.build_resnet_digits import onnxruntime_accuracy as resnet_accuracy
from models.cnn_zoo import ZOO, parameter_count, resnet18
from models.train_lenet5_digits import MODEL_PATH as LENET_PATH
from models.train_lenet5_digits import build_lenet5_digits
from models.train_lenet5_digits import onnxruntime_accuracy as lenet_accuracy
from models.train_mlp_digits import MODEL_PATH, build_mlp_digits, onnxruntime_accuracy

DATA_PATH = Path(__file__).resolve().parents[1] / "models" / "data" / "digits.npz"


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# --- data set -------------------------------------------------------------------------------------------------


def test_digits_split_sizes_and_dtypes() -> None:
    sizes = {split: len(load_dataset("digits", split)[1]) for split in ("train", "calib", "val", "fit", "test", "all")}
    assert sizes == {"train": 1437, "calib": 256, "val": 256, "fit": 1181, "test": 360, "all": 1797}
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
        train, calib, test, val, fit = (set(npz[k].tolist()) for k in ("train", "calib", "test", "val", "fit"))
        assert npz["images"].shape == (1797, 64) and npz["images"].dtype == np.uint8
        assert npz["images"].max() == 16 and npz["labels"].dtype == np.uint8
    assert len(train) == 1437 and len(test) == 360 and len(calib) == 256
    assert not train & test
    assert train | test == set(range(1797))
    assert calib <= train
    assert len(val) == 256 and not val & calib and val | fit == train and not val & fit  # val: held out from fit


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
    [("mnist", "test", "available: digits"), ("digits", "valid", "available: train, calib, val, fit, test, all")],
)
def test_load_dataset_rejects_unknown_names(name: str, split: str, match: str) -> None:
    assert DATASETS == ("digits", "digits_image", "digits32")
    with pytest.raises(ValueError, match=match):
        load_dataset(name, split)


def test_digits_image_dataset_defaults_to_image_layout() -> None:
    image, y_image = load_dataset("digits_image", "calib")
    ref, y_ref = load_dataset("digits", "calib", layout="image")
    assert image.shape == (256, 1, 8, 8)
    np.testing.assert_array_equal(image, ref)
    np.testing.assert_array_equal(y_image, y_ref)
    np.testing.assert_array_equal(load_dataset("digits_image", "calib", layout="flat")[0], ref.reshape(256, 64))


def test_digits32_is_a_4x_nearest_neighbour_upsampling() -> None:
    x32, y32 = load_dataset("digits32", "test")
    x8, y8 = load_dataset("digits", "test", layout="image")
    assert x32.shape == (360, 1, 32, 32) and x32.dtype == np.float32
    np.testing.assert_array_equal(y32, y8)
    np.testing.assert_array_equal(x32, np.kron(x8, np.ones((1, 1, 4, 4), dtype=np.float32)))
    np.testing.assert_array_equal(x32[:, :, ::4, ::4], x8)
    assert load_dataset("digits32", "calib", layout="flat")[0].shape == (256, 1024)
    assert len(load_dataset("digits32", "train")[1]) == 1437


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


# --- committed LeNet-5 (digits32) -----------------------------------------------------------------------------


def test_lenet5_digits_graph_shape() -> None:
    model = onnx.load(LENET_PATH)
    onnx.checker.check_model(model)
    assert [(n.name, n.op_type) for n in model.graph.node] == [
        ("conv1", "Conv"), ("relu1", "Relu"), ("pool1", "AveragePool"), ("conv2", "Conv"), ("relu2", "Relu"),
        ("pool2", "AveragePool"), ("flatten", "Flatten"), ("fc1", "Gemm"), ("relu3", "Relu"), ("fc2", "Gemm"),
        ("relu4", "Relu"), ("fc3", "Gemm"),
    ]
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert dims == {
        "conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
        "fc1.weight": (120, 400), "fc1.bias": (120,), "fc2.weight": (84, 120), "fc2.bias": (84,),
        "fc3.weight": (10, 84), "fc3.bias": (10,),
    }
    pools = [n for n in model.graph.node if n.op_type == "AveragePool"]
    assert all(onnx.helper.get_node_attr_value(n, "kernel_shape") == [2, 2] for n in pools)
    assert all(onnx.helper.get_node_attr_value(n, "strides") == [2, 2] for n in pools)
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == 13 and model.ir_version == 8
    assert {p.key: p.value for p in model.metadata_props} == {"xbarc.dataset": "digits32"}


def test_lenet5_digits_accuracy_with_onnxruntime() -> None:
    assert lenet_accuracy(onnx.load(LENET_PATH), "test") >= 0.95


def test_lenet5_digits_export_is_reproducible() -> None:
    fresh = build_lenet5_digits().SerializeToString()
    assert hashlib.md5(fresh).hexdigest() == hashlib.md5(LENET_PATH.read_bytes()).hexdigest()


# --- committed residual network (digits_image) ----------------------------------------------------------------


def test_resnet_digits_graph_shape() -> None:
    model = onnx.load(RESNET_PATH)
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 8 and ops.count("BatchNormalization") == 8 and ops.count("Add") == 3
    assert ops[-3:] == ["GlobalAveragePool", "Flatten", "Gemm"]
    names = [n.name for n in model.graph.node]
    assert names[:3] == ["stem_conv", "stem_bn", "stem_relu"] and "b2_skip_conv" in names
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert dims["stem_conv.weight"] == (16, 1, 3, 3) and dims["b2_conv1.weight"] == (32, 16, 3, 3)
    assert dims["b2_skip_conv.weight"] == (32, 16, 1, 1) and dims["fc.weight"] == (10, 32)
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert not np.allclose(init["b1_bn1.running_mean"], 0) and not np.allclose(init["b1_bn1.running_var"], 1)
    assert {p.key: p.value for p in model.metadata_props} == {"xbarc.dataset": "digits_image"}
    assert RESNET_PATH.stat().st_size < 1_000_000 and model.opset_import[0].version == 13
    # the untrained build has the same graph
    fresh = build_resnet_digits(epochs=0)
    assert [(n.name, n.op_type, list(n.input)) for n in fresh.graph.node] == [
        (n.name, n.op_type, list(n.input)) for n in model.graph.node
    ]


def test_resnet_digits_accuracy_with_onnxruntime() -> None:
    model = onnx.load(RESNET_PATH)
    x, _ = load_dataset("digits_image", "calib")
    (logits,) = run_ort(model, {"input": x})
    assert logits.shape == (256, 10) and np.isfinite(logits).all()
    assert resnet_accuracy(model, "test") >= 0.9


@pytest.mark.slow
def test_resnet_digits_export_is_reproducible() -> None:
    fresh = build_resnet_digits().SerializeToString()
    assert hashlib.md5(fresh).hexdigest() == hashlib.md5(RESNET_PATH.read_bytes()).hexdigest()


# --- CNN zoo (random ImageNet topologies, scaled down) --------------------------------------------------------


@pytest.mark.parametrize(("name", "convs", "gemms"), [("resnet18", 20, 1), ("resnet50", 53, 1), ("vgg16", 13, 3)])
def test_cnn_zoo_small_models_run_in_onnxruntime(name: str, convs: int, gemms: int) -> None:
    model = ZOO[name](resolution=32, width=0.25, num_classes=7)
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == convs and ops.count("Gemm") == gemms
    assert ops.count("MaxPool") == (5 if name == "vgg16" else 1)
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    (y,) = run_ort(model, {"input": x})
    assert y.shape == (2, 7) and np.isfinite(y).all()
    assert model.SerializeToString() == ZOO[name](resolution=32, width=0.25, num_classes=7).SerializeToString()


def test_cnn_zoo_resnet18_full_size() -> None:
    model = resnet18(batch=1)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 224, 224]
    # torchvision's count (BN running statistics are buffers, not parameters there)
    buffers = ("running_mean", "running_var")
    stats = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.name.endswith(buffers))
    assert parameter_count(model) - stats == 11_689_512


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


def test_a_data_set_name_resolves_to_the_variant_of_the_model_shape() -> None:
    from models.datasets import for_shape, sample_shape

    assert [sample_shape(d) for d in DATASETS] == [(64,), (1, 8, 8), (1, 32, 32)]
    assert for_shape("digits", (1, 32, 32)) == "digits32" and for_shape("digits32", (64,)) == "digits"
    assert for_shape("digits", (64,)) == "digits" and for_shape("digits", (1, 8, 8)) == "digits_image"
    with pytest.raises(ValueError, match=r"no variant has the model's per-sample input shape \(3, 32, 32\)"):
        for_shape("digits", (3, 32, 32))
    from compiler.driver import calibration_inputs, import_graph

    g, _, proto = import_graph(LENET_PATH)
    from models.datasets import load_for_shape

    x, desc = calibration_inputs(g, proto, "digits", data=load_for_shape)  # `--dataset digits` for LeNet-5
    assert desc == "digits calib split" and x["input"].shape == (256, 1, 32, 32)
