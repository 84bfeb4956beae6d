"""Train a small residual network on the 8x8 digits and export ``models/resnet_digits.onnx``.

Topology (input ``input`` float32 [N, 1, 8, 8], output ``logits`` float32 [N, 10], opset 13, ir_version 8,
metadata ``xbarc.dataset = digits_image``)::

    stem:    Conv 1->16 3x3 pad 1 -> BatchNormalization -> Relu                                  (16 x 8 x 8)
    block 1: Conv 16->16 3x3 -> BN -> Relu -> Conv 16->16 3x3 -> BN -> Add(identity) -> Relu      (16 x 8 x 8)
    block 2: Conv 16->32 3x3 stride 2 -> BN -> Relu -> Conv 32->32 3x3 -> BN
             -> Add(skip: Conv 16->32 1x1 stride 2 -> BN) -> Relu                                 (32 x 4 x 4)
    block 3: Conv 32->32 3x3 -> BN -> Relu -> Conv 32->32 3x3 -> BN -> Add(identity) -> Relu      (32 x 4 x 4)
    head:    GlobalAveragePool -> Flatten -> Gemm 32->10 (transB=1)

All 3x3 convolutions use pads 1. Node names are ``stem_conv stem_bn stem_relu``, ``b{i}_conv1 b{i}_bn1 b{i}_relu1
b{i}_conv2 b{i}_bn2 [b2_skip_conv b2_skip_bn] b{i}_add b{i}_relu2``, ``gap flatten fc``; as in a torchvision
export the convolutions have no bias (the BN that follows carries it).

Training (numpy-only, reproducible, like ``models/train_mlp_digits.py``): the network is trained *without*
batch normalization -- every convolution has a bias instead -- with He-normal initialisation and mini-batch order
from ``numpy.random.default_rng(seed)``, float64 Adam on softmax cross-entropy, convolutions as im2col products
(the helpers of ``models/train_lenet5_digits.py``). At export every convolution gets a BatchNormalization node
with non-trivial parameters: scale ``gamma``, running ``mean`` and ``var`` are drawn from the same generator, and
the exported conv weights and BN bias are pre-compensated so the exported network computes exactly the trained
function (up to float32 rounding)::

    s = gamma / sqrt(var + eps);   W_exported = W / s;   beta = b + s * mean
    BN(W_exported * x) = s * (W x / s - mean) + beta = W x + b

So a compiler that folds BN into the preceding convolution recovers the trained weights, and the accuracy of the
model is meaningful; the BN statistics themselves are synthetic (they are not statistics of the data).
Running the script twice writes a byte-identical file.

Run: ``python -m models.build_resnet_digits`` (``--fit512``: the variant trained on the first 512 ``fit`` images,
``resnet_digits_fit512.onnx``, whose held-out images are what the precision search selects on).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models import _export
from models.datasets import load_dataset
from models.train_lenet5_digits import Adam, conv_backward, conv_forward, single_threaded_blas, softmax_xent_grad

MODEL_PATH = Path(__file__).resolve().parent / "resnet_digits.onnx"
#: The same network trained on only the first 512 ``fit`` images (the precision search's default search split), so
#: that 925 digits images it never saw (``val`` and the rest of ``fit``) are left for the search's selection
#: split and the test split stays the report's (docs/search.md): ``python -m models.build_resnet_digits --fit512``.
FIT512_PATH = MODEL_PATH.with_name("resnet_digits_fit512.onnx")
FIT512_EPOCHS = 40  # 512 images: as many optimizer steps as about 15 epochs over the 1,437 train images
DATASET = "digits_image"
EPOCHS = 15
BATCH = 32
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
BN_EPS = 1e-5
OPSET = 13

# conv name -> (in channels, out channels, kernel, stride, pad), in definition (= initialisation) order
CONVS = {
    "stem_conv": (1, 16, 3, 1, 1),
    "b1_conv1": (16, 16, 3, 1, 1),
    "b1_conv2": (16, 16, 3, 1, 1),
    "b2_conv1": (16, 32, 3, 2, 1),
    "b2_conv2": (32, 32, 3, 1, 1),
    "b2_skip_conv": (16, 32, 1, 2, 0),
    "b3_conv1": (32, 32, 3, 1, 1),
    "b3_conv2": (32, 32, 3, 1, 1),
}
NUM_CLASSES = 10

Params = dict[str, np.ndarray]


def bn_name(conv: str) -> str:
    """The BatchNormalization node that follows a convolution (stem_conv -> stem_bn, b1_conv2 -> b1_bn2)."""
    return conv.replace("conv", "bn")


def init_params(rng: np.random.Generator) -> Params:
    """He-normal weights and zero biases, in ``CONVS`` order then the classifier."""
    params: Params = {}
    for name, (cin, cout, k, _, _) in CONVS.items():
        params[f"{name}.weight"] = rng.normal(0.0, np.sqrt(2.0 / (cin * k * k)), size=(cout, cin, k, k))
        params[f"{name}.bias"] = np.zeros(cout)
    params["fc.weight"] = rng.normal(0.0, np.sqrt(2.0 / 32), size=(NUM_CLASSES, 32))
    params["fc.bias"] = np.zeros(NUM_CLASSES)
    return params


def _conv(p: Params, name: str, x: np.ndarray, caches: dict, bn: Params | None) -> np.ndarray:
    """A convolution of the network (bias if the params have one), then BN inference if ``bn`` is given."""
    _, _, _, stride, pad = CONVS[name]
    out, caches[name] = conv_forward(x, p[f"{name}.weight"], p.get(f"{name}.bias"), stride, pad)
    if bn is not None:
        b = bn_name(name)
        scale = bn[f"{b}.weight"] / np.sqrt(bn[f"{b}.running_var"] + BN_EPS)
        shift = bn[f"{b}.bias"] - scale * bn[f"{b}.running_mean"]
        out = out * scale[:, None, None] + shift[:, None, None]
    return out


def forward(p: Params, x: np.ndarray, bn: Params | None = None) -> tuple[np.ndarray, dict]:
    """Logits and the caches for backprop. Training params have conv biases and no BN; with ``bn`` (the exported
    BN parameters) this is the numpy reference of the exported graph."""
    c: dict = {}
    h = np.maximum(_conv(p, "stem_conv", x, c, bn), 0.0)
    for blk in ("b1", "b2", "b3"):
        c[f"{blk}_in"] = h
        t = c[f"{blk}_relu1"] = np.maximum(_conv(p, f"{blk}_conv1", h, c, bn), 0.0)
        t = _conv(p, f"{blk}_conv2", t, c, bn)
        skip = _conv(p, f"{blk}_skip_conv", h, c, bn) if f"{blk}_skip_conv" in CONVS else h
        h = c[f"{blk}_out"] = np.maximum(t + skip, 0.0)
    c["gap"] = g = h.mean(axis=(2, 3))
    return g @ p["fc.weight"].T + p["fc.bias"], c


def gradients(p: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """Gradients of the mean softmax cross-entropy of the BN-free training network."""
    logits, c = forward(p, x)
    g: Params = {}
    d = softmax_xent_grad(logits, y)
    g["fc.weight"], g["fc.bias"] = d.T @ c["gap"], d.sum(axis=0)
    d = d @ p["fc.weight"]
    h = c["b3_out"]
    d = np.broadcast_to(d[:, :, None, None] / (h.shape[2] * h.shape[3]), h.shape)
    for blk in ("b3", "b2", "b1"):
        d = d * (c[f"{blk}_out"] > 0)
        dt, g[f"{blk}_conv2.weight"], g[f"{blk}_conv2.bias"] = conv_backward(d, c[f"{blk}_conv2"])
        dt = dt * (c[f"{blk}_relu1"] > 0)
        dt, g[f"{blk}_conv1.weight"], g[f"{blk}_conv1.bias"] = conv_backward(dt, c[f"{blk}_conv1"])
        if f"{blk}_skip_conv" in CONVS:
            d, g[f"{blk}_skip_conv.weight"], g[f"{blk}_skip_conv.bias"] = conv_backward(d, c[f"{blk}_skip_conv"])
        d = d + dt
    d = d * (c["b1_in"] > 0)
    _, g["stem_conv.weight"], g["stem_conv.bias"] = conv_backward(d, c["stem_conv"], need_dx=False)
    return g


def train(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = EPOCHS) -> Params:
    """Mini-batch Adam on the BN-free network; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    opt = Adam(params, LEARNING_RATE, WEIGHT_DECAY)
    with single_threaded_blas():
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), BATCH):
                batch = order[start : start + BATCH]
                opt.update(gradients(params, x[batch], y[batch]))
    return params


def compensated_bn(params: Params, rng: np.random.Generator) -> tuple[Params, Params]:
    """(bias-free conv + fc params, BN params) computing the same function as the trained ``params``."""
    weights: Params = {"fc.weight": params["fc.weight"], "fc.bias": params["fc.bias"]}
    bn: Params = {}
    for name, (_, cout, _, _, _) in CONVS.items():
        gamma = rng.uniform(0.5, 2.0, cout)
        mean = rng.normal(0.0, 0.5, cout)
        var = rng.uniform(0.25, 4.0, cout)
        s = gamma / np.sqrt(var + BN_EPS)
        weights[f"{name}.weight"] = params[f"{name}.weight"] / s[:, None, None, None]
        b = bn_name(name)
        bn[f"{b}.weight"], bn[f"{b}.bias"] = gamma, params[f"{name}.bias"] + s * mean
        bn[f"{b}.running_mean"], bn[f"{b}.running_var"] = mean, var
    return weights, bn


def export_onnx(weights: Params, bn: Params) -> onnx.ModelProto:
    """The torchvision-style Conv(no bias)/BatchNormalization/Relu/Add graph with float32 initializers."""
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in {**weights, **bn}.items()]
    nodes: list[onnx.NodeProto] = []

    def conv_bn(name: str, x: str) -> str:
        _, _, k, stride, pad = CONVS[name]
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight"], [f"{name}_out"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4))
        b = bn_name(name)
        nodes.append(helper.make_node(
            "BatchNormalization",
            [f"{name}_out", f"{b}.weight", f"{b}.bias", f"{b}.running_mean", f"{b}.running_var"],
            [f"{b}_out"], name=b, epsilon=BN_EPS,
        ))
        return f"{b}_out"

    def relu(name: str, x: str) -> str:
        nodes.append(helper.make_node("Relu", [x], [f"{name}_out"], name=name))
        return f"{name}_out"

    h = relu("stem_relu", conv_bn("stem_conv", "input"))
    for blk in ("b1", "b2", "b3"):
        t = relu(f"{blk}_relu1", conv_bn(f"{blk}_conv1", h))
        t = conv_bn(f"{blk}_conv2", t)
        skip = conv_bn(f"{blk}_skip_conv", h) if f"{blk}_skip_conv" in CONVS else h
        nodes.append(helper.make_node("Add", [t, skip], [f"{blk}_add_out"], name=f"{blk}_add"))
        h = relu(f"{blk}_relu2", f"{blk}_add_out")
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["gap_out"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap_out"], ["flatten_out"], name="flatten", axis=1))
    nodes.append(helper.make_node("Gemm", ["flatten_out", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes,
        "resnet_digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NUM_CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xbarc")
    helper.set_model_props(model, {"xbarc.dataset": DATASET})  # calibration data for `xbarc compile`
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_resnet_digits(seed: int = 0, epochs: int = EPOCHS, split: str = "train", images: int = 0
                        ) -> onnx.ModelProto:
    """Train on the first ``images`` (0: all) of the digits ``split`` and export (``seed=0`` and the defaults give
    the committed ``resnet_digits.onnx``; ``split="fit", images=512, epochs=FIT512_EPOCHS`` give
    ``resnet_digits_fit512.onnx``). ``epochs=0`` gives the untrained He-initialised network (fast, for graph-only
    tests)."""
    x, y = load_dataset(DATASET, split)
    if images:
        x, y = x[:images], y[:images]
    params = train(x.astype(np.float64), y, seed, epochs)
    return export_onnx(*compensated_bn(params, np.random.default_rng([seed, 1])))


def onnxruntime_accuracy(model: onnx.ModelProto, split: str = "test") -> float:
    """Top-1 accuracy of the model run by onnxruntime on a split of its data set."""
    return _export.onnxruntime_accuracy(model, DATASET, split)


def main() -> None:
    fit512 = "--fit512" in sys.argv[1:]
    start = time.perf_counter()
    model = build_resnet_digits(epochs=FIT512_EPOCHS, split="fit", images=512) if fit512 else build_resnet_digits()
    elapsed = time.perf_counter() - start
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    weights = {k: v for k, v in init.items() if not k.startswith(tuple(bn_name(c) for c in CONVS))}
    bn = {k: v for k, v in init.items() if k not in weights}
    x, y = load_dataset(DATASET, "test")
    numpy_acc = float(np.mean(forward(weights, x.astype(np.float64), bn)[0].argmax(axis=1) == y))
    _export.check_and_write(model, FIT512_PATH if fit512 else MODEL_PATH, numpy_acc, DATASET,
                            f"trained in {elapsed:.1f} s; ")


if __name__ == "__main__":
    main()
