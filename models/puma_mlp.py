"""The PUMA paper's 784-1024-512-200-10 MLP benchmark, built in code (not committed as .onnx).

Four Gemm(transB=1) layers with weights [out, in] ~ N(0, std = 1/sqrt(fan_in)), drawn layer by layer in order
from one ``numpy.random.default_rng(0)``, zero biases and a Sigmoid after every layer (the last included).
Input ``input`` float32 [N, 784], output ``output`` float32 [N, 10].
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PUMA_LAYER_SIZES = (784, 1024, 512, 200, 10)
OPSET = 13


def puma_weights(seed: int = 0) -> list[np.ndarray]:
    """The float32 weight matrices [out, in] of the four layers."""
    rng = np.random.default_rng(seed)
    sizes = zip(PUMA_LAYER_SIZES[:-1], PUMA_LAYER_SIZES[1:])
    return [rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(out, fan_in)).astype(np.float32) for fan_in, out in sizes]


def build_puma_mlp() -> onnx.ModelProto:
    """The ONNX model: fc1 sig1 fc2 sig2 fc3 sig3 fc4 sig4."""
    nodes, inits = [], []
    h = "input"
    weights = puma_weights()
    for i, w in enumerate(weights, start=1):
        name = f"fc{i}"
        inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        inits.append(numpy_helper.from_array(np.zeros(w.shape[0], np.float32), f"{name}.bias"))
        gemm_inputs = [h, f"{name}.weight", f"{name}.bias"]
        nodes.append(helper.make_node("Gemm", gemm_inputs, [f"{name}_out"], name=name, transB=1))
        h = "output" if i == len(weights) else f"sig{i}_out"
        nodes.append(helper.make_node("Sigmoid", [f"{name}_out"], [h], name=f"sig{i}"))
    graph = helper.make_graph(
        nodes,
        "puma_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", PUMA_LAYER_SIZES[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", PUMA_LAYER_SIZES[-1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xbarc")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def puma_input() -> np.ndarray:
    """The fixed (1, 784) float32 input in [0, 1) used for the PUMA benchmark."""
    return np.random.RandomState(1).uniform(0, 1, size=(1, PUMA_LAYER_SIZES[0])).astype(np.float32)
