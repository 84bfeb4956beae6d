"""Float execution of the IR (internal HWC layout) and activation-range calibration on data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Graph, Op, broadcast_param
from .windows import from_hwc, im2col, pad_hwc, to_hwc, windows

FloatEnv = dict[str, np.ndarray]


@dataclass(frozen=True)
class LayerRange:
    """Largest magnitudes seen for one crossbar layer: its weights, its input, its accumulator (partial sums
    over crossbar row blocks, bias included, and the pre-activation value) and its output."""

    weight: float
    input: float
    acc: float
    output: float


class Ranges(dict):  # type: ignore[type-arg]
    """Crossbar-layer ranges by layer name, plus ``values``: the largest magnitude of every tensor."""

    values: dict[str, float]

    def __init__(self, *a: Any, values: dict[str, float] | None = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.values = values or {}


def apply_act(attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Float activation named by ``attrs['act']``."""
    fn = attrs.get("act", "none")
    if fn == "relu":
        return np.maximum(x, 0.0)
    if fn == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    if fn == "tanh":
        return np.tanh(x)
    if fn == "leaky_relu":
        return np.maximum(x, attrs["alpha"] * x)
    if fn == "clip":
        return np.clip(x, attrs["lo"], attrs["hi"])
    return x


def out_hw(g: Graph, op: Op) -> tuple[int, int]:
    """Spatial output size of a windowed op."""
    shape = g.values[op.outputs[0]].shape
    return shape[1], shape[2]


def _pre_activation(g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
    x, b = xs[0], len(xs[0])
    k = op.kind
    if k == "dense":
        return x.reshape(b, -1) @ op.params["weight"] + op.params.get("bias", 0.0)
    if k == "conv":
        oh, ow = out_hw(g, op)
        y = im2col(x, op, (oh, ow)) @ op.params["weight"] + op.params.get("bias", 0.0)
        return y.reshape(b, oh, ow, -1)
    if k == "pool" and op.attrs["mode"] == "max":
        return windows(x, op, out_hw(g, op), -np.inf).max(axis=(3, 4))
    if k == "pool":
        (kh, kw) = op.attrs["kernel"]
        return windows(x, op, out_hw(g, op), 0.0).sum(axis=(3, 4)) / (kh * kw)
    if k == "gap":
        return x.mean(axis=(1, 2), keepdims=True)
    if k == "eltwise":
        return sum(xs[1:], xs[0])
    if k == "concat":
        return np.concatenate(xs, axis=-1)
    if k == "pad":
        return pad_hwc(x, op.attrs["pads"], 0.0)
    if k == "affine":
        shape = g.values[op.inputs[0]].shape
        scale, shift = (to_hwc(broadcast_param(op.params[p], shape)[None], shape)[0] for p in ("scale", "shift"))
        return x * scale + shift
    if k == "reshape":
        return to_hwc(from_hwc(x, g.values[op.inputs[0]].shape), g.values[op.outputs[0]].shape)
    return x


def run_op(g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
    """One op in float64 on internal-layout inputs."""
    return apply_act(op.attrs, _pre_activation(g, op, xs))


def float_forward(g: Graph, inputs: FloatEnv) -> FloatEnv:
    """Every value of the graph in float64, internal layout (B, H, W, C) or (B, F), from ONNX-layout inputs."""
    env = {k: to_hwc(np.asarray(v, dtype=np.float64), g.values[k].shape) for k, v in inputs.items()}
    for op in g.ops:
        env[op.outputs[0]] = run_op(g, op, [env[i] for i in op.inputs])
    return env


def layer_inputs(g: Graph, op: Op, x: np.ndarray) -> np.ndarray:
    """The (rows, K) matrix a crossbar layer multiplies: flat inputs (dense) or im2col windows (conv)."""
    return im2col(x, op, out_hw(g, op)) if op.kind == "conv" else x.reshape(len(x), -1)


def calibrate(g: Graph, inputs: FloatEnv, row_block: int) -> Ranges:
    """Ranges of every crossbar layer and tensor on calibration data (accumulators include row-block partials)."""
    env = float_forward(g, inputs)
    out = Ranges(values={k: float(np.abs(v).max(initial=0.0)) for k, v in env.items()})
    for op in g.crossbar_ops():
        x = layer_inputs(g, op, env[op.inputs[0]])
        w = op.params["weight"]
        partial = np.zeros((x.shape[0], w.shape[1]))
        acc = 0.0
        for r0 in range(0, w.shape[0], row_block):
            partial = partial + x[:, r0:r0 + row_block] @ w[r0:r0 + row_block]
            acc = max(acc, float(np.abs(partial).max(initial=0.0)))
        if "bias" in op.params:
            acc = max(acc, float(np.abs(partial + op.params["bias"]).max(initial=0.0)))
        out[op.name] = LayerRange(float(np.abs(w).max(initial=0.0)), float(np.abs(x).max(initial=0.0)), acc,
                                  out.values[op.outputs[0]])
    return out
