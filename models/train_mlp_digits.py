"""Train the 64-256-128-10 ReLU MLP on the digits train split and export ``models/mlp_digits.onnx``.

Numpy-only and reproducible: He-normal initialisation and mini-batch order from ``numpy.random.default_rng(0)``,
float64 Adam on softmax cross-entropy, weights rounded to float32 at export. The graph is what a PyTorch export
of ``nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)`` looks like: input ``input`` float32 [N, 64], nodes
``fc1 relu1 fc2 relu2 fc3`` (Gemm with transB=1, weights [out, in]), output ``logits`` float32 [N, 10], opset 13.
Running the script twice writes a byte-identical file.

Run: ``python -m models.train_mlp_digits``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models import _export
from models.datasets import load_dataset

MODEL_PATH = Path(__file__).resolve().parent / "mlp_digits.onnx"
LAYER_SIZES = (64, 256, 128, 10)
EPOCHS = 40
BATCH = 32
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
OPSET = 13

Params = list[tuple[np.ndarray, np.ndarray]]


def init_params(rng: np.random.Generator) -> Params:
    """He-normal weights [out, in] and zero biases, drawn layer by layer."""
    params = []
    for fan_in, fan_out in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:]):
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))
        params.append((w, np.zeros(fan_out)))
    return params


def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the input of every layer (for backprop)."""
    inputs = []
    h = x
    for i, (w, b) in enumerate(params):
        inputs.append(h)
        h = h @ w.T + b
        if i < len(params) - 1:
            h = np.maximum(h, 0.0)
    return h, inputs


def gradients(params: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """Gradients of the mean softmax cross-entropy (plus L2 on weights)."""
    logits, inputs = forward(params, x)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    delta = p / len(y)
    grads: Params = []
    for i in reversed(range(len(params))):
        w, _ = params[i]
        grads.append((delta.T @ inputs[i] + WEIGHT_DECAY * w, delta.sum(axis=0)))
        if i > 0:
            delta = (delta @ w) * (inputs[i] > 0)
    return grads[::-1]


def train(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Params:
    """Mini-batch Adam; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    flat = [a for pair in params for a in pair]
    m = [np.zeros_like(a) for a in flat]
    v = [np.zeros_like(a) for a in flat]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(y))
        for start in range(0, len(y), BATCH):
            batch = order[start : start + BATCH]
            grads = [g for pair in gradients(params, x[batch], y[batch]) for g in pair]
            step += 1
            for a, g, m_a, v_a in zip(flat, grads, m, v):
                m_a[...] = beta1 * m_a + (1 - beta1) * g
                v_a[...] = beta2 * v_a + (1 - beta2) * g * g
                m_hat = m_a / (1 - beta1**step)
                v_hat = v_a / (1 - beta2**step)
                a -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + eps)
    return params


def export_onnx(params: Params) -> onnx.ModelProto:
    """The PyTorch-style Gemm/Relu graph with float32 initializers."""
    nodes, inits = [], []
    h = "input"
    for i, (w, b) in enumerate(params, start=1):
        name = f"fc{i}"
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"{name}.weight"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"{name}.bias"))
        out = "logits" if i == len(params) else f"{name}_out"
        nodes.append(helper.make_node("Gemm", [h, f"{name}.weight", f"{name}.bias"], [out], name=name, transB=1))
        h = out
        if i < len(params):
            h = f"relu{i}_out"
            nodes.append(helper.make_node("Relu", [out], [h], name=f"relu{i}"))
    graph = helper.make_graph(
        nodes,
        "mlp_digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", LAYER_SIZES[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", LAYER_SIZES[-1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xbarc")
    helper.set_model_props(model, {"xbarc.dataset": "digits"})  # calibration data for `xbarc compile`
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_mlp_digits() -> onnx.ModelProto:
    """Train on the digits train split and export (the committed ``mlp_digits.onnx``)."""
    x, y = load_dataset("digits", "train")
    return export_onnx(train(x.astype(np.float64), y))


def onnxruntime_accuracy(model: onnx.ModelProto, split: str = "test") -> float:
    """Top-1 accuracy of the model run by onnxruntime on a split of its data set."""
    return _export.onnxruntime_accuracy(model, "digits", split)


def main() -> None:
    model = build_mlp_digits()
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    params = [(init[f"fc{i}.weight"], init[f"fc{i}.bias"]) for i in range(1, len(LAYER_SIZES))]
    x, y = load_dataset("digits", "test")
    numpy_acc = float(np.mean(forward(params, x)[0].argmax(axis=1) == y))
    _export.check_and_write(model, MODEL_PATH, numpy_acc, "digits", "")


if __name__ == "__main__":
    main()
