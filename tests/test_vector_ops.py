"""Ops on the vector unit (issue 14, part 3): standalone affine ops (BatchNormalization, Add/Sub/Mul/Div by
constants that fold into no Conv/Gemm: rule AFFINE), Add/Sub/Mul of two activations with channel broadcast
(squeeze-excite gating, SiLU as Mul(x, Sigmoid(x))), HardSigmoid and HardSwish.

Every case compiles at 16 bits calibrating on its own inputs, runs on the runtime bit for bit against the
functional model, and matches onnxruntime on the original model within `error_bound` (the fixed-point error
the compiled formats allow) plus float32 rounding (`test_fold._check`).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_fold import RNG, _check, _conv_w, _kinds, _model

from compiler.driver import import_graph
from isa.errors import ModelError


def _bn_inits(c: int) -> dict[str, np.ndarray]:
    return {"s": RNG.uniform(0.5, 1.5, c), "b": RNG.normal(0, 0.1, c), "m": RNG.normal(0, 0.1, c),
            "v": RNG.uniform(0.5, 1.5, c)}


# --- standalone affine -----------------------------------------------------------------------------------------

def test_batchnorm_after_pool_with_relu():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2]),
             helper.make_node("BatchNormalization", ["p", "s", "b", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["y"])]
    m = _model(nodes, _bn_inits(3), ["N", 3, 4, 4])
    g = import_graph(m)[0]
    assert [(op.kind, op.attrs.get("act")) for op in g.ops] == [("pool", "none"), ("affine", "relu")]
    _check(m, RNG.uniform(-1, 1, (3, 3, 4, 4)))


def test_batchnorm_after_concat_densenet_style():
    """DenseNet: concat of two conv outputs -> BN -> ReLU -> 1x1 conv (with padding elsewhere: the BN's shift
    could fold into this unpadded conv, but the ReLU between them blocks it)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("BatchNormalization", ["c", "s", "b0", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("Conv", ["r", "w3"], ["y"], kernel_shape=[1, 1])]
    inits = {"w1": _conv_w(2, 3), "w2": _conv_w(3, 3, 1), "w3": _conv_w(4, 5, 1)}
    bn = _bn_inits(5)
    inits.update({"s": bn["s"], "b0": bn["b"], "m": bn["m"], "v": bn["v"]})
    m = _model(nodes, inits, ["N", 3, 5, 5])
    assert _kinds(m) == ["conv", "conv", "concat", "affine", "conv"]
    _check(m, RNG.uniform(-1, 1, (3, 3, 5, 5)))


def test_per_element_constant_on_the_vector_unit():
    """A constant varying over pixels ((C, H, W)) is stored per element and read with the pixels."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2]),
             helper.make_node("Mul", ["p", "k"], ["q"]),
             helper.make_node("Sub", ["q", "t"], ["y"])]
    m = _model(nodes, {"k": RNG.normal(0, 1, (3, 3, 3)), "t": RNG.normal(0, 1, (3, 1, 3))}, ["N", 3, 4, 4],
               ["N", 3, 3, 3])
    assert _kinds(m) == ["pool", "affine"]
    _check(m, RNG.uniform(-1, 1, (3, 3, 4, 4)))


def test_input_normalization_before_a_padded_conv():
    nodes = [helper.make_node("Sub", ["x", "mean"], ["xs"]), helper.make_node("Div", ["xs", "std"], ["xn"]),
             helper.make_node("Conv", ["xn", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = {"mean": np.array([0.4, 0.5, 0.6]).reshape(1, 3, 1, 1), "std": np.array([0.2, 0.25, 0.3]).reshape(3, 1, 1),
             "w": _conv_w(2, 3)}
    m = _model(nodes, inits, ["N", 3, 5, 5])
    assert _kinds(m) == ["affine", "conv"]
    _check(m, RNG.uniform(0, 1, (2, 3, 5, 5)))


def test_flat_affine_graph_output():
    """A Div after a Gemm with a ReLU between (no fold), the graph output: flat per-element constants."""
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"]), helper.make_node("Relu", ["g"], ["r"]),
             helper.make_node("Div", ["r", "k"], ["y"])]
    m = _model(nodes, {"w": RNG.normal(0, 0.5, (6, 4)), "k": np.array([2.0, 3.0, 0.5, -4.0])}, ["N", 6], ["N", 4])
    assert _kinds(m) == ["dense", "affine"]
    _check(m, RNG.uniform(-1, 1, (5, 6)))


# --- two activations -------------------------------------------------------------------------------------------

def test_squeeze_excite_gating():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr", "w2"], ["e"]),
             helper.make_node("Sigmoid", ["e"], ["s"]),
             helper.make_node("Unsqueeze", ["s", "axes"], ["s4"]),
             helper.make_node("Mul", ["s4", "r"], ["y"])]
    inits = {"w": _conv_w(4, 3), "w1": RNG.normal(0, 0.5, (4, 2)), "w2": RNG.normal(0, 0.5, (2, 4)),
             "axes": np.array([2, 3], np.int64)}
    m = _model(nodes, inits, ["N", 3, 5, 5])
    assert _kinds(m) == ["conv", "gap", "dense", "dense", "eltwise"]
    _check(m, RNG.uniform(-1, 1, (3, 3, 5, 5)))


def test_silu_as_mul_of_sigmoid():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", ["c", "s"], ["y"])]
    m = _model(nodes, {"w": _conv_w(4, 3)}, ["N", 3, 5, 5])
    g = import_graph(m)[0]
    assert [(op.kind, op.attrs.get("act"), op.attrs.get("op")) for op in g.ops] == [
        ("conv", "none", None), ("eltwise", "sigmoid", None), ("eltwise", "none", "mul")]
    _check(m, RNG.uniform(-1, 1, (3, 3, 5, 5)))


def test_sub_and_add_with_channel_broadcast():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Sub", ["c", "g"], ["d"]),
             helper.make_node("Add", ["g", "d"], ["y"])]
    m = _model(nodes, {"w": _conv_w(4, 3)}, ["N", 3, 5, 5])
    assert _kinds(m) == ["conv", "gap", "eltwise", "eltwise"]
    _check(m, RNG.uniform(-1, 1, (3, 3, 5, 5)))


def test_two_activation_errors_name_the_node():
    conv = helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    gap = helper.make_node("GlobalAveragePool", ["c"], ["g"])
    for node, msg in ((helper.make_node("Div", ["c", "g"], ["y"], name="d"), r"node 'd' \(Div\): Div of two"),
                      (helper.make_node("Sub", ["g", "c"], ["y"], name="s"), r"node 's' \(Sub\): .*must be the "
                                                                              r"second")):
        m = _model([conv, gap, node], {"w": _conv_w(4, 3)}, ["N", 3, 5, 5])
        with pytest.raises(ModelError, match=msg):
            import_graph(m)


# --- HardSigmoid, HardSwish ------------------------------------------------------------------------------------

def test_hardsigmoid_folds_into_conv():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("HardSigmoid", ["c"], ["y"], alpha=0.3, beta=0.4)]
    m = _model(nodes, {"w": _conv_w(4, 3)}, ["N", 3, 5, 5], opset=14)
    g = import_graph(m)[0]
    assert [(op.kind, op.attrs.get("act")) for op in g.ops] == [("conv", "clip")]
    _check(m, RNG.uniform(-3, 3, (3, 3, 5, 5)))


def test_hardsigmoid_after_pool_on_the_vector_unit():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2]),
             helper.make_node("HardSigmoid", ["p"], ["y"])]
    m = _model(nodes, {}, ["N", 3, 5, 5], opset=14)
    assert _kinds(m) == ["pool", "affine"]
    _check(m, RNG.uniform(-5, 5, (3, 3, 5, 5)))


def test_hardswish():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["c"], ["y"], name="hs")]
    m = _model(nodes, {"w": _conv_w(4, 3)}, ["N", 3, 5, 5], opset=14)
    g = import_graph(m)[0]
    assert [(op.kind, op.attrs.get("act"), op.attrs.get("op")) for op in g.ops] == [
        ("conv", "none", None), ("affine", "clip", None), ("eltwise", "none", "mul")]
    _check(m, RNG.uniform(-3, 3, (3, 3, 5, 5)))


def test_bad_attributes_are_errors():
    """A non-finite HardSigmoid alpha is an error naming the node; an attribute HardSwish does not have is
    rejected (onnx's checker already names it)."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2]),
             helper.make_node("HardSigmoid", ["p"], ["y"], name="hs", alpha=float("inf"))]
    m = _model(nodes, {}, ["N", 3, 5, 5], ["N", 3, 4, 4], opset=14)
    with pytest.raises(ModelError, match=r"node 'hs' \(HardSigmoid\): its scale is not finite"):
        import_graph(m)
    nodes[1] = helper.make_node("HardSwish", ["p"], ["y"], name="hw")
    m = _model(nodes, {}, ["N", 3, 5, 5], opset=14)
    m.graph.node[1].attribute.append(helper.make_attribute("alpha", 0.5))  # not in HardSwish's schema
    with pytest.raises(ModelError, match=r"HardSwish"):
        import_graph(m)


@pytest.mark.parametrize("per_pixel", [False, True])
def test_affine_and_gating_over_several_channel_chunks(per_pixel):
    """1100 channels: two chunks of the affine's four register regions (`plan.vector_chunk`) and of the
    eltwise's two; constants addressed per chunk."""
    c = 1100
    k = RNG.normal(0, 1, (c, 2, 2) if per_pixel else (c, 1, 1))
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[1, 1]),
             helper.make_node("Mul", ["p", "k"], ["q"]), helper.make_node("Add", ["q", "b"], ["a"]),
             helper.make_node("GlobalAveragePool", ["a"], ["g"]), helper.make_node("Mul", ["a", "g"], ["y"])]
    m = _model(nodes, {"k": k, "b": RNG.normal(0, 1, (c, 1, 1))}, ["N", c, 2, 2], ["N", c, 2, 2])
    assert _kinds(m) == ["pool", "affine", "gap", "eltwise"]
    _check(m, RNG.uniform(-1, 1, (2, c, 2, 2)))


@pytest.mark.parametrize(("precision", "mapping"), [("8bit", "temporal"), ("4bit", "naive"), ("16bit", "spatial")])
def test_mobilenet_style_block_bit_exact(precision, mapping):
    """conv -> pool -> BN -> HardSwish -> squeeze-excite (GAP, Sigmoid, Mul) -> conv: every vector op in one
    program, bit-exact against the functional model at several precisions and mapping modes."""
    from compiler import runner
    from compiler.driver import compile_model

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2]),
             helper.make_node("BatchNormalization", ["p", "s", "b", "m", "v"], ["bn"]),
             helper.make_node("HardSwish", ["bn"], ["h"]),
             helper.make_node("GlobalAveragePool", ["h"], ["g"]),
             helper.make_node("Sigmoid", ["g"], ["sg"]),
             helper.make_node("Mul", ["h", "sg"], ["q"]),
             helper.make_node("Conv", ["q", "w2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    m = _model(nodes, {"w": _conv_w(4, 3), "w2": _conv_w(2, 4), **_bn_inits(4)}, ["N", 3, 6, 6], opset=14)
    x = {"x": RNG.uniform(-1, 1, (4, 3, 6, 6))}
    cm = compile_model(m, precision, calib=x, mapping=mapping)
    assert [op.kind for op in cm.graph.ops] == ["conv", "pool", "affine", "affine", "eltwise", "gap", "eltwise",
                                               "conv"]
    assert runner.bit_exact(cm, x, runner.run(cm, x))
    if precision == "16bit":
        _check(m, x["x"])
