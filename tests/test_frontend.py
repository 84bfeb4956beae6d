"""ONNX frontend: converters against onnxruntime, unsupported-op reporting, canonicalization, IR dump."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from compiler.driver import import_graph
from compiler.frontend import import_onnx
from compiler.ir import dump, verify
from compiler.quant import float_forward
from compiler.runner import reference_outputs
from isa.errors import ModelError


def _model(text: str, **inits: np.ndarray) -> onnx.ModelProto:
    m = onnx.parser.parse_model(text)
    for name, arr in inits.items():
        arr = arr if arr.dtype == np.int64 else arr.astype(np.float32)
        m.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
    onnx.checker.check_model(m)
    return m


GEMM = """
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 6] x) => (float[N, 4] y) {
    h = Gemm<transB = 1, alpha = 0.5, beta = 2.0>(x, w1, b1)
    a = Tanh(h)
    m = MatMul(a, w2)
    z = Add(bias2, m)
    d = Dropout(z)
    y = Sigmoid(d)
}
"""


def test_converters_match_onnxruntime():
    rng = np.random.default_rng(1)
    m = _model(GEMM, w1=rng.normal(size=(5, 6)), b1=rng.normal(size=(5,)), w2=rng.normal(size=(5, 4)),
               bias2=rng.normal(size=(4,)))
    g, host, _ = import_graph(m)
    assert host is None
    assert [op.kind for op in g.ops] == ["dense", "dense"]
    assert [op.attrs["act"] for op in g.ops] == ["tanh", "sigmoid"]
    x = rng.normal(size=(7, 6)).astype(np.float32)
    ours = float_forward(g, {"x": x})[g.outputs[0]]
    ref = reference_outputs(m, {"x": x}, ["y"])["y"]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)  # float32 (ORT) vs float64 (IR)


def test_ir_dump_is_stable():
    rng = np.random.default_rng(1)
    m = _model(GEMM, w1=rng.normal(size=(5, 6)), b1=rng.normal(size=(5,)), w2=rng.normal(size=(5, 4)),
               bias2=rng.normal(size=(4,)))
    g, _, _ = import_graph(m)
    assert dump(g) == (
        "graph agraph(%x: [6]) {\n"
        "  %a: [5] = dense(%x) act=tanh bias:[5] weight:[6x5]  # h\n"
        "  %y: [4] = dense(%a) act=sigmoid bias:[4] weight:[5x4]  # m\n"
        "  return %y\n"
        "}")


def test_all_unsupported_ops_reported_at_once():
    m = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 4] x) => (float[N, 4] y) {
    a = Exp(x)
    b = Relu(a)
    y = Log(b)
}
""")
    with pytest.raises(ModelError) as e:
        import_onnx(m)
    msg = str(e.value)
    assert "2 unsupported ONNX op(s)" in msg
    assert "Exp (node 'a')" in msg or "Exp (node" in msg
    assert "Log (node" in msg
    assert "supported on the device: " in msg and "Gemm" in msg and "MatMul" in msg


def test_matmul_of_two_activations_names_the_node():
    m = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 4] x) => (float[N, 4] y) {
    y = MatMul(x, x2)
    x2 = Relu(x)
}
""".replace("y = MatMul(x, x2)\n    x2 = Relu(x)", "x2 = Relu(x)\n    y = MatMul(x, x2)"))
    with pytest.raises(ModelError, match=r"\(MatMul\): MatMul of two activations"):
        import_onnx(m)


def test_host_tail_and_reshape_flatten():
    rng = np.random.default_rng(2)
    m = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2, 3] x) => (float[N, 3] p, int64[N] k) {
    f = Flatten<axis = 1>(x)
    h = Gemm(f, w)
    r = Reshape(h, shp)
    p = Softmax<axis = 1>(r)
    k = ArgMax<axis = 1, keepdims = 0>(p)
}
""", w=rng.normal(size=(6, 3)), shp=np.array([-1, 3], dtype=np.int64))
    g, host, _ = import_graph(m)
    assert host is not None
    assert [h.split("(")[0] for h in g.host_ops] == ["Reshape", "Softmax", "ArgMax"]
    assert [op.kind for op in g.ops] == ["dense"]
    verify(g)
