"""An sklearn ``MLPClassifier`` trained on digits and exported by skl2onnx (needs the ``test`` extra).

The exported graph (skl2onnx 1.20, ``zipmap=False``, target opset 13, input ``input`` float [None, 64]) has
outputs ``label`` (int64 [None]) and ``probabilities`` (float [None, 10]) and contains these ONNX ops
(``python -m models.sklearn_mlp`` prints them):

- relu:     Cast, MatMul, Add, Relu, Softmax, Identity, ArgMax, ArrayFeatureExtractor, Reshape
- tanh:     Cast, MatMul, Add, Tanh, Softmax, Identity, ArgMax, ArrayFeatureExtractor, Reshape
- logistic: Cast, MatMul, Add, Sigmoid, Softmax, Identity, ArgMax, ArrayFeatureExtractor, Reshape

Node by node (one hidden layer): Cast(input, to=FLOAT) -> MatMul(x, coefficient [64, 64]) -> Add(intercepts
[1, 64]) -> activation -> MatMul(coefficient1 [64, 10]) -> Add(intercepts1 [1, 10]) -> Softmax(axis=1) ->
Identity -> ``probabilities``; ArgMax(probabilities, axis=1) -> ArrayFeatureExtractor(classes int32 [10], .)
(domain ``ai.onnx.ml``, opset 1) -> Reshape([-1]) -> Cast(to=INT64) -> ``label``. Weights are [in, out]
(MatMul, not Gemm), biases [1, out]. Each extra hidden layer adds MatMul, Add and the activation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from models.datasets import load_dataset

TARGET_OPSET = 13
MAX_ITER = 500


def train_sklearn_mlp(activation: str = "relu", hidden: tuple[int, ...] = (64,), seed: int = 0) -> Any:
    """A fitted ``MLPClassifier`` on the digits train split (float inputs in [0, 1])."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y = load_dataset("digits", "train")
    clf = MLPClassifier(hidden_layer_sizes=hidden, activation=activation, random_state=seed, max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def export_sklearn_mlp(clf: Any) -> onnx.ModelProto:
    """skl2onnx conversion of a fitted classifier without the ZipMap post-processing."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    return convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )


def build_sklearn_mlp(activation: str = "relu", hidden: tuple[int, ...] = (64,), seed: int = 0) -> onnx.ModelProto:
    """Train an sklearn MLP on digits and export it to ONNX (op lists in the module docstring)."""
    return export_sklearn_mlp(train_sklearn_mlp(activation, hidden, seed))


def op_types(model: onnx.ModelProto) -> list[str]:
    """Distinct op types of the main graph in first-use order."""
    return list(dict.fromkeys(node.op_type for node in model.graph.node))


def main() -> None:
    for activation in ("relu", "tanh", "logistic"):
        model = build_sklearn_mlp(activation)
        print(f"{activation}: {', '.join(op_types(model))}")
        print(f"  nodes: {[(n.op_type, list(n.input), list(n.output)) for n in model.graph.node]}")
        opsets = [(o.domain, o.version) for o in model.opset_import]
        print(f"  outputs: {[o.name for o in model.graph.output]}, opsets: {opsets}")
        x, y = load_dataset("digits", "test")
        print(f"  test accuracy (sklearn): {np.mean(train_sklearn_mlp(activation).predict(x) == y):.4f}")


if __name__ == "__main__":
    main()
