"""The float reference interpreter: the IR executed in floating point on the internal layout ((B, H, W, C) for
(C, H, W) tensors, else (B, F)), each op by its kind's ``float_eval`` (`compiler.ops`) and then its fused
activation. Calibration, the quantization health check and the search's proxies read it.

``dtype`` is float64 (the default: the reference for accuracy checks) or float32 (calibration: half the memory;
the formats come from ranges, see docs/semantics.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Graph, Op
from .ops import crossbar_kind, kind_of
from .ops.base import out_hw
from .quant.windows import internal, to_hwc

FloatEnv = dict[str, np.ndarray]


def apply_act(attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Float activation named by ``attrs['act']``."""
    fn = attrs.get("act", "none")
    if fn == "relu":
        return np.asarray(np.maximum(x, 0.0))
    if fn == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    if fn == "tanh":
        return np.asarray(np.tanh(x))
    if fn == "leaky_relu":
        return np.asarray(np.maximum(x, attrs["alpha"] * x))
    if fn == "clip":
        return np.asarray(np.clip(x, attrs["lo"], attrs["hi"]))
    return x


def run_op(g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
    """One op on internal-layout float inputs (the result has their dtype)."""
    return apply_act(op.attrs, kind_of(op).float_eval(g, op, xs))


def float_forward(g: Graph, inputs: FloatEnv, dtype: type = np.float64) -> FloatEnv:
    """Every value of the graph in ``dtype``, internal layout (B, H, W, C) or (B, F), from ONNX-layout inputs."""
    env = {k: to_hwc(np.asarray(v, dtype=dtype), g.values[k].shape) for k, v in inputs.items()}
    for op in g.ops:
        y = run_op(g, op, [env[i] for i in op.inputs])
        env[op.outputs[0]] = internal(y.astype(dtype, copy=False), g.values[op.outputs[0]].shape)
    return env


def layer_inputs(g: Graph, op: Op, x: np.ndarray) -> np.ndarray:
    """The (rows, K) matrix a crossbar layer multiplies: flat inputs (dense) or im2col windows (conv)."""
    return crossbar_kind(op).rows(g, op, x)


__all__ = ["FloatEnv", "apply_act", "float_forward", "layer_inputs", "out_hw", "run_op"]
