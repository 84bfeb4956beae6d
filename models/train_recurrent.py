"""The numpy trainer of the bundled recurrent classifiers: one LSTM or GRU layer over the whole series, then a dense
layer on the last hidden state. Backpropagation through time written out in numpy (float64 Adam, softmax
cross-entropy, gradient-norm clipping), seeded; exported with ``onnx.helper`` as what a batch-first PyTorch export
looks like: ``Transpose`` (perm [1, 0, 2]: the batch-first input (N, T, C) made time-major), ``LSTM``/``GRU``
(``layout=0``, the one onnxruntime implements: Y_h (1, N, H)), ``Transpose`` back to (N, 1, H), ``Flatten``,
``Gemm`` (transB=1).

Gate order is ONNX's (LSTM: i, o, f, c; GRU: z, r, h). The GRU is PyTorch's (``linear_before_reset=1``: the
candidate's recurrent product is computed before the reset gate multiplies it), the form whose input and
recurrent products all come out of one crossbar MVM of [x_t ; h_{t-1}].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models import _export
from models.datasets import load_dataset

OPSET = 14


@dataclass(frozen=True)
class RecurrentSpec:
    """What to train: cell ("lstm" or "gru"), data set, hidden size, epochs, and where the model goes."""

    cell: str
    dataset: str
    hidden: int
    epochs: int
    path: Path
    batch: int = 16
    lr: float = 1e-2
    seed: int = 0
    clip: float = 5.0

    @property
    def gates(self) -> int:
        """Gates per unit: 4 for an LSTM, 3 for a GRU."""
        return 4 if self.cell == "lstm" else 3


Params = dict[str, np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def init_params(spec: RecurrentSpec, inputs: int, classes: int, rng: np.random.Generator) -> Params:
    """ONNX-shaped float64 parameters: W (G*H, C), R (G*H, H), B (2*G*H,), classifier (classes, H) and bias."""
    g, h = spec.gates, spec.hidden
    k = 1.0 / np.sqrt(h)
    p = {"W": rng.uniform(-k, k, (g * h, inputs)), "R": rng.uniform(-k, k, (g * h, h)),
         "B": np.zeros(2 * g * h), "fc_w": rng.normal(0.0, np.sqrt(1.0 / h), (classes, h)), "fc_b": np.zeros(classes)}
    if spec.cell == "lstm":
        p["B"][2 * h:3 * h] = 1.0  # forget-gate bias 1 (ONNX order i, o, f, c)
    return p


def _lstm_step(p: Params, x: np.ndarray, h: np.ndarray, c: np.ndarray, hid: int) -> tuple:
    a = x @ p["W"].T + h @ p["R"].T + p["B"][:4 * hid] + p["B"][4 * hid:]
    i, o, f = (_sigmoid(a[:, k * hid:(k + 1) * hid]) for k in range(3))
    g = np.tanh(a[:, 3 * hid:])
    c2 = f * c + i * g
    tc = np.tanh(c2)
    return o * tc, c2, (x, h, c, i, o, f, g, tc)


def _gru_step(p: Params, x: np.ndarray, h: np.ndarray, hid: int) -> tuple:
    wb, rb = p["B"][:3 * hid], p["B"][3 * hid:]
    ax, ah = x @ p["W"].T + wb, h @ p["R"].T + rb
    z = _sigmoid(ax[:, :hid] + ah[:, :hid])
    r = _sigmoid(ax[:, hid:2 * hid] + ah[:, hid:2 * hid])
    n = np.tanh(ax[:, 2 * hid:] + r * ah[:, 2 * hid:])
    return (1 - z) * n + z * h, (x, h, z, r, n, ah[:, 2 * hid:])


def forward(spec: RecurrentSpec, p: Params, x: np.ndarray) -> tuple[np.ndarray, list, np.ndarray]:
    """Logits, the per-step caches and the last hidden state of a batch x (N, T, C)."""
    n, hid = len(x), spec.hidden
    h, c = np.zeros((n, hid)), np.zeros((n, hid))
    caches = []
    for t in range(x.shape[1]):
        if spec.cell == "lstm":
            h, c, cache = _lstm_step(p, x[:, t], h, c, hid)
        else:
            h, cache = _gru_step(p, x[:, t], h, hid)
        caches.append(cache)
    return h @ p["fc_w"].T + p["fc_b"], caches, h


def _lstm_back(p: Params, cache: tuple, dh: np.ndarray, dc: np.ndarray, grads: Params, hid: int) -> tuple:
    x, h, c, i, o, f, g, tc = cache
    do = dh * tc
    dc = dc + dh * o * (1 - tc ** 2)
    di, df, dg = dc * g, dc * c, dc * i
    da = np.concatenate([di * i * (1 - i), do * o * (1 - o), df * f * (1 - f), dg * (1 - g ** 2)], axis=1)
    grads["W"] += da.T @ x
    grads["R"] += da.T @ h
    grads["B"][:4 * hid] += da.sum(0)
    grads["B"][4 * hid:] += da.sum(0)
    return da @ p["R"], dc * f


def _gru_back(p: Params, cache: tuple, dh: np.ndarray, grads: Params, hid: int) -> np.ndarray:
    x, h, z, r, n, ahn = cache
    dn = dh * (1 - z)
    dz = dh * (h - n)
    dan = dn * (1 - n ** 2)
    dr = dan * ahn
    dax = np.concatenate([dz * z * (1 - z), dr * r * (1 - r), dan], axis=1)
    dah = np.concatenate([dax[:, :2 * hid], dan * r], axis=1)
    grads["W"] += dax.T @ x
    grads["R"] += dah.T @ h
    grads["B"][:3 * hid] += dax.sum(0)
    grads["B"][3 * hid:] += dah.sum(0)
    return dah @ p["R"] + dh * z


def gradients(spec: RecurrentSpec, p: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """Gradients of the mean softmax cross-entropy, by backpropagation through time."""
    logits, caches, h = forward(spec, p, x)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(len(y)), y] -= 1.0
    dlog = prob / len(y)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    grads["fc_w"], grads["fc_b"] = dlog.T @ h, dlog.sum(0)
    dh, dc = dlog @ p["fc_w"], np.zeros_like(h)
    for cache in reversed(caches):
        if spec.cell == "lstm":
            dh, dc = _lstm_back(p, cache, dh, dc, grads, spec.hidden)
        else:
            dh = _gru_back(p, cache, dh, grads, spec.hidden)
    return grads


def train(spec: RecurrentSpec, x: np.ndarray, y: np.ndarray) -> Params:
    """Mini-batch Adam with global gradient-norm clipping; deterministic for the spec's seed."""
    rng = np.random.default_rng(spec.seed)
    p = init_params(spec, x.shape[2], int(y.max()) + 1, rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    step = 0
    for _ in range(spec.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), spec.batch):
            batch = order[start:start + spec.batch]
            grads = gradients(spec, p, x[batch], y[batch])
            norm = np.sqrt(sum(float((g * g).sum()) for g in grads.values()))
            scale = min(1.0, spec.clip / (norm + 1e-12))
            step += 1
            for k in p:
                g = grads[k] * scale
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                p[k] -= spec.lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
    return p


def export_onnx(spec: RecurrentSpec, p: Params, steps: int) -> onnx.ModelProto:
    """The batch-first recurrent classifier graph with float32 initializers (module docstring)."""
    g, hid = spec.gates, spec.hidden
    f32 = {k: v.astype(np.float32) for k, v in p.items()}
    inits = [numpy_helper.from_array(f32["W"][None], "rnn.W"), numpy_helper.from_array(f32["R"][None], "rnn.R"),
             numpy_helper.from_array(f32["B"][None], "rnn.B"), numpy_helper.from_array(f32["fc_w"], "fc.weight"),
             numpy_helper.from_array(f32["fc_b"], "fc.bias")]
    attrs = {"hidden_size": hid}
    if spec.cell == "gru":
        attrs["linear_before_reset"] = 1
    op = "LSTM" if spec.cell == "lstm" else "GRU"
    nodes = [helper.make_node("Transpose", ["input"], ["x_tnc"], name="time_major", perm=[1, 0, 2]),
             helper.make_node(op, ["x_tnc", "rnn.W", "rnn.R", "rnn.B"], ["Y", "Y_h"] + (["Y_c"] * (g == 4)),
                              name=spec.cell, **attrs),
             helper.make_node("Transpose", ["Y_h"], ["h_n"], name="batch_first", perm=[1, 0, 2]),
             helper.make_node("Flatten", ["h_n"], ["last"], name="flatten", axis=1),
             helper.make_node("Gemm", ["last", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
    classes = p["fc_w"].shape[0]
    graph = helper.make_graph(
        nodes, f"{spec.cell}_{spec.dataset}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", steps, p["W"].shape[1]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xbarc")
    helper.set_model_props(model, {"xbarc.dataset": spec.dataset})
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build(spec: RecurrentSpec) -> tuple[onnx.ModelProto, float]:
    """Train on the data set's train split, export, and give the float32 numpy test accuracy of the export."""
    x, y = load_dataset(spec.dataset, "train")
    p = train(spec, x.astype(np.float64), y)
    xt, yt = load_dataset(spec.dataset, "test")
    model = export_onnx(spec, p, x.shape[1])
    p32 = {k: v.astype(np.float32).astype(np.float64) for k, v in p.items()}
    acc = float(np.mean(forward(spec, p32, xt.astype(np.float64))[0].argmax(axis=1) == yt))
    return model, acc


def main(spec: RecurrentSpec) -> None:
    """Train, export and write ``spec.path`` once onnxruntime reproduces the numpy accuracy."""
    model, acc = build(spec)
    _export.check_and_write(model, spec.path, acc, spec.dataset, f"{spec.cell} on {spec.dataset}: ")
