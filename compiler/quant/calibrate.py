"""Float execution of the IR and activation-range calibration on data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Op

FloatEnv = dict[str, np.ndarray]


@dataclass(frozen=True)
class LayerRange:
    """Largest magnitudes seen for one crossbar layer: its weights, its input, its accumulator (partial sums
    over crossbar row blocks, bias included, and the pre-activation value) and its output."""

    weight: float
    input: float
    acc: float
    output: float


Ranges = dict[str, LayerRange]


def apply_act(fn: str, x: np.ndarray) -> np.ndarray:
    """Float activation."""
    if fn == "relu":
        return np.maximum(x, 0.0)
    if fn == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    if fn == "tanh":
        return np.tanh(x)
    return x


def _run_op(op: Op, x: np.ndarray) -> np.ndarray:
    b = x.shape[0]
    if op.kind == "dense":
        y = x.reshape(b, -1) @ op.params["weight"]
        if "bias" in op.params:
            y = y + op.params["bias"]
        return apply_act(op.attrs.get("act", "none"), y)
    if op.kind == "bias_add":
        return x + op.params["bias"]
    if op.kind == "act":
        return apply_act(op.attrs["fn"], x)
    return x


def float_forward(g: Graph, inputs: FloatEnv) -> FloatEnv:
    """Every value of the graph computed in float64 on a batch (keys: value names; arrays (B, ...))."""
    env = {k: np.asarray(v, dtype=np.float64).reshape((len(v),) + g.values[k].shape) for k, v in inputs.items()}
    for op in g.ops:
        y = _run_op(op, env[op.inputs[0]])
        env[op.outputs[0]] = y.reshape((y.shape[0],) + g.values[op.outputs[0]].shape)
    return env


def calibrate(g: Graph, inputs: FloatEnv, row_block: int) -> Ranges:
    """Ranges of every crossbar layer on calibration data; accumulators include partial sums per row block."""
    env = float_forward(g, inputs)
    out = {}
    for op in g.crossbar_ops():
        x = env[op.inputs[0]].reshape(len(env[op.inputs[0]]), -1)
        w = op.params["weight"]
        partial = np.zeros((x.shape[0], w.shape[1]))
        acc = 0.0
        for r0 in range(0, w.shape[0], row_block):
            partial = partial + x[:, r0:r0 + row_block] @ w[r0:r0 + row_block]
            acc = max(acc, float(np.abs(partial).max(initial=0.0)))
        if "bias" in op.params:
            acc = max(acc, float(np.abs(partial + op.params["bias"]).max(initial=0.0)))
        out[op.name] = LayerRange(float(np.abs(w).max(initial=0.0)), float(np.abs(x).max(initial=0.0)), acc,
                                  float(np.abs(env[op.outputs[0]]).max(initial=0.0)))
    return out
