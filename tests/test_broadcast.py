"""Element-wise ops of two activations whose second operand broadcasts over rows or columns ((C, H, 1), (C, 1, W))
as well as over pixels ((C, 1, 1)): the operand's pointer does not advance along a broadcast axis (rule ELTWISE).
Bit-exact against the functional model and within `error_bound` of onnxruntime (`test_fold._check`)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_fold import RNG, _check, _conv_w, _model

from compiler.driver import import_graph
from isa.errors import ModelError
from isa.hardware import DEFAULT


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
@pytest.mark.parametrize("pool", [[1, 5], [4, 1], [4, 5]], ids=["rows", "cols", "pixels"])
@pytest.mark.parametrize("swap", [False, True])
def test_broadcast_over_rows_or_columns(op: str, pool: list[int], swap: bool) -> None:
    """conv -> (C, 4, 5); a max pool over a whole column/row of it gives the (C, 1, 5) / (C, 4, 1) operand."""
    if swap and op == "Sub":
        pytest.skip("Sub's broadcast operand must be the second")
    b = helper.make_node("MaxPool", ["c"], ["b"], kernel_shape=pool)
    ins = ["b", "c"] if swap else ["c", "b"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), b,
             helper.make_node(op, ins, ["y"])]
    m = _model(nodes, {"w": _conv_w(3, 2)}, ["N", 2, 4, 5])
    x = RNG.uniform(-1, 1, (2, 2, 4, 5))
    _check(m, x)
    _check(m, x, hw=DEFAULT.with_changes(cores_per_tile=1))


def test_broadcast_over_channels_is_refused() -> None:
    nodes = [helper.make_node("ReduceMax", ["x"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Mul", ["x", "m"], ["y"], name="scale_all")]
    m = _model(nodes, {}, ["N", 3, 4, 4], out_shape=["N", 3, 4, 4])
    with pytest.raises(ModelError, match=r"node 'scale_all' \(Mul\): Mul of activations with shapes \(3, 4, 4\) "
                                         r"and \(1, 4, 4\)"):
        import_graph(m)


def test_spatial_broadcast_example() -> None:
    """docs/semantics.md, ELTWISE: a (1, 2, 2) plus b (1, 1, 2) in one format."""
    from compiler.ir import Graph, Op, Value
    from compiler.ops import IntContext, kind_of

    vals = {"a": Value("a", (1, 2, 2)), "b": Value("b", (1, 1, 2)), "y": Value("y", (1, 2, 2))}
    op = Op("eltwise", "add", ["a", "b"], ["y"], {"act": "none"})
    g = Graph("g", [vals["a"], vals["b"]], [op], ["y"], vals)
    a = np.array([[1, 2], [3, 4]]).reshape(1, 2, 2, 1)  # (B, H, W, C)
    b = np.array([10, 20]).reshape(1, 1, 2, 1)
    y, frac = kind_of(op).int_eval(g, op, [a, b], IntContext({}, {k: (16, 4) for k in vals}, DEFAULT))
    assert frac == 4 and y.reshape(2, 2).tolist() == [[11, 22], [13, 24]]
