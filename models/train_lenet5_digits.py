"""The project's LeNet-5 trainer; run as a script it trains on the digits upsampled to 32x32 (``digits32``) and exports
``models/lenet5_digits.onnx``.

The classic LeNet-5 geometry (ReLU and average pooling instead of tanh/subsampling): conv1 1->6 5x5 -> ReLU ->
AveragePool 2x2/2 -> conv2 6->16 5x5 -> ReLU -> AveragePool 2x2/2 -> Flatten (16*5*5 = 400) -> fc1 400->120 -> ReLU
-> fc2 120->84 -> ReLU -> fc3 84->10 (logits). The 8x8 digits are upsampled 4x by nearest neighbour
(``load_dataset("digits32", ...)``) to get the 32x32 input the geometry needs.

One trainer, several models: a ``LeNetSpec`` names the data set, the input size, conv1's zero padding, the number of
epochs, the graph name and the output file. ``DIGITS`` is the spec of ``lenet5_digits.onnx`` (32x32 input, no
padding); ``models/train_lenet5_mnist.py`` trains ``lenet5_mnist.onnx`` with its own spec (28x28 MNIST input,
conv1 padding 2 as the classic PyTorch LeNet does, so that conv1's output is 28x28 and the rest of the network is
the same).

Numpy-only and reproducible, like ``models/train_mlp_digits.py``: He-normal initialisation and mini-batch order from
``numpy.random.default_rng(0)``, float64 Adam on softmax cross-entropy (convolutions as im2col matrix products),
weights rounded to float32 at export. The graph is what a PyTorch export of the equivalent ``nn.Sequential`` looks
like: input ``input`` float32 [N, 1, 32, 32], nodes ``conv1 relu1 pool1 conv2 relu2 pool2 flatten fc1 relu3 fc2
relu4 fc3`` (Conv weights [out, in, kh, kw] with bias, Gemm with transB=1), output ``logits`` float32 [N, 10],
opset 13, ir_version 8, metadata ``xbarc.dataset = digits32`` (the spec's data set). Running the script twice on one
machine writes a byte-identical file.

The im2col layer helpers (``conv_forward``/``conv_backward``, ``avgpool_*``, ``Adam``) are reused by
``models/build_resnet_digits.py``.

Run: ``python -m models.train_lenet5_digits`` (``--val-curve N``: print the val accuracy after each of N epochs, which
is how ``epochs`` is chosen, and write nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models import _export
from models.datasets import load_dataset

MODEL_PATH = Path(__file__).resolve().parent / "lenet5_digits.onnx"
DATASET = "digits32"
EPOCHS = 12  # chosen on the val split: 8 epochs 96.9 %, 12 98.0 %, 16 98.0 %
BATCH = 32
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
OPSET = 13

CONVS = (("conv1", 1, 6, 5), ("conv2", 6, 16, 5))  # name, in channels, out channels, kernel
FCS = (("fc1", 400, 120), ("fc2", 120, 84), ("fc3", 84, 10))

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class LeNetSpec:
    """What distinguishes one bundled LeNet-5 from another: its data, input size, conv1 padding and epochs."""

    name: str  # ONNX graph name
    dataset: str  # bundled data set (image layout): trained on its fit split, recorded as xbarc.dataset
    side: int  # input is [N, 1, side, side]
    conv1_pad: int  # zero padding of conv1 on every side
    epochs: int
    path: Path  # the committed file

    def __post_init__(self) -> None:
        if self.side + 2 * self.conv1_pad != 32:  # conv1 output 28x28, so pool2 is 16x5x5 = fc1's 400 inputs
            raise ValueError(f"LeNet-5 needs side + 2 * conv1_pad == 32, not {self.side} + 2 * {self.conv1_pad}")


DIGITS = LeNetSpec("lenet5_digits", DATASET, 32, 0, EPOCHS, MODEL_PATH)


# --- numpy layers (im2col) ------------------------------------------------------------------------------------


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Patches of an NCHW batch as a matrix [N*Ho*Wo, C*kh*kw] (rows in N, Ho, Wo order; columns C, kh, kw)."""
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, ho, wo = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1, pad: int = 0
                 ) -> tuple[np.ndarray, tuple]:
    """ONNX Conv (group 1, square stride/pads) on an NCHW batch; returns (output, cache for the backward pass)."""
    n, _, h, wd = x.shape
    o, c, kh, kw = w.shape
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    cols = im2col(x, kh, kw, stride, pad)
    out = cols @ w.reshape(o, -1).T
    if b is not None:
        out += b
    return out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2), (x.shape, cols, w, stride, pad)


def conv_backward(dout: np.ndarray, cache: tuple, need_dx: bool = True
                  ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(dx, dw, db) of ``conv_forward`` given the output gradient (dx is None when not needed)."""
    (n, c, h, wd), cols, w, stride, pad = cache
    o, _, kh, kw = w.shape
    ho, wo = dout.shape[2:]
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d2.T @ cols).reshape(w.shape)
    db = d2.sum(axis=0)
    if not need_dx:
        return None, dw, db
    dcols = (d2 @ w.reshape(o, -1)).reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    dx = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += dcols[:, :, i, j]
    return dx[:, :, pad : pad + h, pad : pad + wd], dw, db


def avgpool_forward(x: np.ndarray) -> np.ndarray:
    """AveragePool kernel 2x2, stride 2 (even spatial size)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def avgpool_backward(dout: np.ndarray) -> np.ndarray:
    return dout.repeat(2, axis=2).repeat(2, axis=3) / 4.0


def softmax_xent_grad(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the mean softmax cross-entropy with respect to the logits."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p / len(y)


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread while training, if threadpoolctl (a scikit-learn dependency) is installed.

    The matrices are small: multi-threaded BLAS gains little and, on a loaded machine, oversubscription makes
    training several times slower. The results are the same bytes either way (BLAS does not split the reduction
    dimension across threads), so this only affects speed.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class Adam:
    """Adam on a dict of float64 arrays (updated in place), with L2 weight decay on the ``.weight`` entries."""

    def __init__(self, params: Params, lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.step = 0

    def update(self, grads: Params) -> None:
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        self.step += 1
        for k, a in self.params.items():
            g = grads[k] + self.weight_decay * a if k.endswith(".weight") else grads[k]
            m, v = self.m[k], self.v[k]
            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * g * g
            a -= self.lr * (m / (1 - beta1**self.step)) / (np.sqrt(v / (1 - beta2**self.step)) + eps)


# --- LeNet-5 --------------------------------------------------------------------------------------------------


def init_params(rng: np.random.Generator) -> Params:
    """He-normal weights and zero biases, drawn layer by layer (conv1, conv2, fc1, fc2, fc3)."""
    params: Params = {}
    for name, cin, cout, k in CONVS:
        params[f"{name}.weight"] = rng.normal(0.0, np.sqrt(2.0 / (cin * k * k)), size=(cout, cin, k, k))
        params[f"{name}.bias"] = np.zeros(cout)
    for name, fan_in, fan_out in FCS:
        params[f"{name}.weight"] = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))
        params[f"{name}.bias"] = np.zeros(fan_out)
    return params


def forward(p: Params, x: np.ndarray, conv1_pad: int = 0) -> tuple[np.ndarray, dict]:
    """Logits and the caches of every layer (for backprop)."""
    c: dict = {}
    h, c["conv1"] = conv_forward(x, p["conv1.weight"], p["conv1.bias"], pad=conv1_pad)
    c["relu1"] = h = np.maximum(h, 0.0)
    h = avgpool_forward(h)
    h, c["conv2"] = conv_forward(h, p["conv2.weight"], p["conv2.bias"])
    c["relu2"] = h = np.maximum(h, 0.0)
    h = avgpool_forward(h)
    c["flatten"] = h = h.reshape(len(h), -1)
    for i, (name, _, _) in enumerate(FCS):
        h = h @ p[f"{name}.weight"].T + p[f"{name}.bias"]
        if i < len(FCS) - 1:
            c[name] = h = np.maximum(h, 0.0)
    return h, c


def gradients(p: Params, x: np.ndarray, y: np.ndarray, conv1_pad: int = 0) -> Params:
    """Gradients of the mean softmax cross-entropy (weight decay is added by the optimizer)."""
    logits, c = forward(p, x, conv1_pad)
    g: Params = {}
    d = softmax_xent_grad(logits, y)
    fc_inputs = [c["flatten"], c["fc1"], c["fc2"]]
    for i in reversed(range(len(FCS))):
        name = FCS[i][0]
        g[f"{name}.weight"], g[f"{name}.bias"] = d.T @ fc_inputs[i], d.sum(axis=0)
        d = d @ p[f"{name}.weight"]
        if i > 0:
            d = d * (fc_inputs[i] > 0)
    d = avgpool_backward(d.reshape(len(d), 16, 5, 5)) * (c["relu2"] > 0)
    d, g["conv2.weight"], g["conv2.bias"] = conv_backward(d, c["conv2"])
    d = avgpool_backward(d) * (c["relu1"] > 0)
    _, g["conv1.weight"], g["conv1.bias"] = conv_backward(d, c["conv1"], need_dx=False)
    return g


def train(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = EPOCHS, conv1_pad: int = 0,
          after_epoch: Callable[[int, Params], None] | None = None) -> Params:
    """Mini-batch Adam; deterministic for a given seed. ``after_epoch(epoch, params)`` (1-based) may look at the
    parameters after each epoch (it must not change them)."""
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    opt = Adam(params, LEARNING_RATE, WEIGHT_DECAY)
    with single_threaded_blas():
        for epoch in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), BATCH):
                batch = order[start : start + BATCH]
                opt.update(gradients(params, x[batch], y[batch], conv1_pad))
            if after_epoch is not None:
                after_epoch(epoch + 1, params)
    return params


def export_onnx(params: Params, spec: LeNetSpec = DIGITS) -> onnx.ModelProto:
    """The PyTorch-style Conv/Relu/AveragePool/Flatten/Gemm graph with float32 initializers."""
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in params.items()]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"], name="conv1",
                         kernel_shape=[5, 5], strides=[1, 1], pads=[spec.conv1_pad] * 4),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("AveragePool", ["relu1_out"], ["pool1_out"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["pool1_out", "conv2.weight", "conv2.bias"], ["conv2_out"], name="conv2",
                         kernel_shape=[5, 5], strides=[1, 1], pads=[0, 0, 0, 0]),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("AveragePool", ["relu2_out"], ["pool2_out"], name="pool2", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["pool2_out"], ["flatten_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flatten_out", "fc1.weight", "fc1.bias"], ["fc1_out"], name="fc1", transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu3_out"], name="relu3"),
        helper.make_node("Gemm", ["relu3_out", "fc2.weight", "fc2.bias"], ["fc2_out"], name="fc2", transB=1),
        helper.make_node("Relu", ["fc2_out"], ["relu4_out"], name="relu4"),
        helper.make_node("Gemm", ["relu4_out", "fc3.weight", "fc3.bias"], ["logits"], name="fc3", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        spec.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, spec.side, spec.side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xbarc")
    helper.set_model_props(model, {"xbarc.dataset": spec.dataset})  # calibration data for `xbarc compile`
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_lenet5(spec: LeNetSpec, epochs: int | None = None,
                 after_epoch: Callable[[int, Params], None] | None = None) -> onnx.ModelProto:
    """Train on the spec's fit split (train without val, which the precision search scores on) and export."""
    x, y = load_dataset(spec.dataset, "fit", layout="image")
    params = train(x.astype(np.float64), y, epochs=spec.epochs if epochs is None else epochs,
                   conv1_pad=spec.conv1_pad, after_epoch=after_epoch)
    return export_onnx(params, spec)


def build_lenet5_digits() -> onnx.ModelProto:
    """The committed ``lenet5_digits.onnx`` (trained on the digits32 fit split)."""
    return build_lenet5(DIGITS)


def onnxruntime_accuracy(model: onnx.ModelProto, split: str = "test", dataset: str = DATASET) -> float:
    """Top-1 accuracy of the model run by onnxruntime on a split of its data set."""
    return _export.onnxruntime_accuracy(model, dataset, split)


def numpy_accuracy(params: Params, spec: LeNetSpec, split: str) -> float:
    """Top-1 accuracy of the float64 numpy forward pass on a split of the spec's data set."""
    x, y = load_dataset(spec.dataset, split, layout="image")
    return float(np.mean(forward(params, x.astype(np.float64), spec.conv1_pad)[0].argmax(axis=1) == y))


def main(spec: LeNetSpec = DIGITS, argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=f"Train LeNet-5 on {spec.dataset} and write {spec.path.name}.")
    ap.add_argument("--val-curve", type=int, metavar="N", default=0,
                    help="train N epochs printing the val accuracy after each; write nothing")
    a = ap.parse_args(argv)
    if a.val_curve:
        start = time.perf_counter()

        def report(epoch: int, params: Params) -> None:
            print(f"epoch {epoch:3d}: val accuracy {numpy_accuracy(params, spec, 'val'):.4f} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)

        build_lenet5(spec, a.val_curve, report)
        return
    start = time.perf_counter()
    model = build_lenet5(spec)
    elapsed = time.perf_counter() - start
    params = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    note = f"trained {spec.epochs} epochs in {elapsed:.1f} s; val accuracy {numpy_accuracy(params, spec, 'val'):.4f}; "
    _export.check_and_write(model, spec.path, numpy_accuracy(params, spec, "test"), spec.dataset, note)


if __name__ == "__main__":
    main()
