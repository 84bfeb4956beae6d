"""Ops that lower to what xbarc already executes (issue 14, part 3): Squeeze/Unsqueeze/Flatten as relabels,
GlobalMaxPool as a max pool over the whole input, and 1-D Conv/MaxPool/AveragePool as the 2-D ops over
(C, 1, L). Each: against onnxruntime within the tolerance the 16-bit formats imply (`error_bound`), and the
runtime's integers against the functional model's, bit for bit."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from compiler import runner
from isa.errors import ModelError
from support import compile_model
from test_onnx_backend import error_bound


def _model(text: str, consts: dict[str, np.ndarray] | None = None, **shapes: tuple[int, ...]) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    m = onnx.parser.parse_model(text)
    for node in m.graph.node:
        node.name = node.output[0]
    for name, arr in (consts or {}).items():
        m.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
    for name, shape in shapes.items():
        m.graph.initializer.append(onnx.numpy_helper.from_array(rng.normal(0, 0.4, shape).astype(np.float32), name))
    onnx.checker.check_model(m)
    return m


def _check(m: onnx.ModelProto, x: np.ndarray, out: str = "y"):
    """Compile at 16 bits calibrating on x, run, check bit-exactness and closeness to onnxruntime."""
    feeds = {"x": x}
    cm = compile_model(m, "16bit", calib=feeds)
    got = runner.run(cm, feeds)
    assert runner.bit_exact(cm, feeds, got)
    ref = runner.reference_outputs(m, feeds, [out])[out]
    atol = error_bound(cm, feeds)
    np.testing.assert_allclose(got.device_float[out].reshape(ref.shape), ref, rtol=1e-5, atol=atol)
    return cm


def _x(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


CONV1D_CHAIN = """
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 3, 20] x) => (float[N, 5] y) {
    c1 = Conv<kernel_shape=[3], pads=[1, 2], strides=[2], dilations=[2]>(x, w1, b1)
    r1 = Relu(c1)
    p1 = MaxPool<kernel_shape=[2], strides=[2], auto_pad="SAME_UPPER">(r1)
    c2 = Conv<kernel_shape=[3], group=2, auto_pad="SAME_LOWER">(p1, w2)
    a2 = AveragePool<kernel_shape=[2]>(c2)
    f = Flatten(a2)
    y = Gemm<transB=1>(f, wf, bf)
}
"""


def test_1d_conv_pool_chain_feeding_flatten_gemm():
    """1-D conv (pads, strides, dilations, groups, SAME_LOWER), max and average pooling (SAME_UPPER) as 2-D ops
    with H = 1; the Flatten before Gemm keeps ONNX's (C, L) element order (the weight rows are permuted)."""
    m = _model(CONV1D_CHAIN, w1=(4, 3, 3), b1=(4,), w2=(6, 2, 3), wf=(5, 24), bf=(5,))
    cm = _check(m, _x(8, 3, 20))
    convs = [op for op in cm.graph.ops if op.kind == "conv"]
    assert [op.attrs["kernel"] for op in convs] == [(1, 3), (1, 3)]
    assert convs[0].attrs["pads"] == (0, 1, 0, 2) and convs[0].attrs["dilations"] == (1, 2)
    assert cm.graph.values[convs[0].outputs[0]].shape == (4, 1, 10)


def test_1d_output_keeps_onnx_order_and_channel_concat():
    """A 1-D tensor (N, C, L) as graph output comes back in ONNX order; Concat on axis 1 of two 1-D tensors."""
    m = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2, 16] x) => (float[N, 7, 7] y) {
    a = Conv<kernel_shape=[4], strides=[2]>(x, wa, ba)
    b = MaxPool<kernel_shape=[3], strides=[2], pads=[0, 0]>(x)
    y0 = AveragePool<kernel_shape=[2], strides=[2], pads=[1, 1], count_include_pad=1>(x)
    c = Concat<axis=1>(a, b)
    y = Relu(c)
}
""", wa=(5, 2, 4), ba=(5,))
    _check(m, _x(6, 2, 16))


def test_global_max_pool_2d_and_1d():
    m2 = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 4, 6, 6] x) => (float[N, 3] y) {
    c = Conv<kernel_shape=[3, 3]>(x, w)
    g = GlobalMaxPool(c)
    f = Flatten(g)
    y = Gemm<transB=1>(f, wf)
}
""", w=(4, 4, 3, 3), wf=(3, 4))
    cm = _check(m2, _x(8, 4, 6, 6))
    pool = next(op for op in cm.graph.ops if op.kind == "pool")
    assert pool.attrs["mode"] == "max" and pool.attrs["kernel"] == (4, 4) and pool.attrs["pads"] == (0, 0, 0, 0)
    m1 = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 3, 12] x) => (float[N, 4, 1] y) {
    c = Conv<kernel_shape=[3]>(x, w)
    y = GlobalMaxPool(c)
}
""", w=(4, 3, 3))
    _check(m1, _x(8, 3, 12))


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze_relabels(opset):
    """Squeeze/Unsqueeze with the attribute form (opset 11) and the axes input (13) are relabels: GAP ->
    Squeeze -> Gemm -> Unsqueeze -> 1x1 Conv, and 1-D Conv -> Unsqueeze -> 2-D Conv -> Squeeze -> 1-D Conv."""
    if opset < 13:
        sq, unsq, unsq2, sq2 = ("Squeeze<axes=[2, 3]>(g)", "Unsqueeze<axes=[2, 3]>(d)", "Unsqueeze<axes=[2]>(c1)",
                                "Squeeze<axes=[-2]>(c2)")
    else:
        sq, unsq, unsq2, sq2 = "Squeeze(g, ax23)", "Unsqueeze(d, ax23)", "Unsqueeze(c1, ax2)", "Squeeze(c2, axm2)"
    consts = {"ax23": np.array([2, 3]), "ax2": np.array([2]), "axm2": np.array([-2])} if opset >= 13 else {}
    m = _model(f"""
<ir_version: 8, opset_import: ["" : {opset}]>
agraph (float[N, 4, 6, 6] x) => (float[N, 6, 1, 1] y) {{
    c = Conv<kernel_shape=[3, 3]>(x, w1)
    g = GlobalAveragePool(c)
    s = {sq}
    d = Gemm<transB=1>(s, wd, bd)
    u = {unsq}
    y = Conv<kernel_shape=[1, 1]>(u, w2)
}}
""", consts, w1=(4, 4, 3, 3), wd=(6, 4), bd=(6,), w2=(6, 6, 1, 1))
    cm = _check(m, _x(8, 4, 6, 6))
    assert [op.kind for op in cm.graph.ops] == ["conv", "gap", "dense", "conv"]  # no reshape left
    m = _model(f"""
<ir_version: 8, opset_import: ["" : {opset}]>
agraph (float[N, 3, 20] x) => (float[N, 4, 15] y) {{
    c1 = Conv<kernel_shape=[3]>(x, w1, b1)
    u = {unsq2}
    c2 = Conv<kernel_shape=[1, 3]>(u, w2)
    s = {sq2}
    y = Conv<kernel_shape=[2]>(s, w3)
}}
""", consts, w1=(4, 3, 3), b1=(4,), w2=(5, 4, 1, 3), w3=(4, 5, 2))
    cm = _check(m, _x(8, 3, 20))
    assert [op.kind for op in cm.graph.ops] == ["conv", "conv", "conv"]


def test_flatten_at_axis_2_is_a_relabel_when_dim_1_is_1():
    m = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2, 5, 5] x) => (float[N, 3] y) {
    c = Conv<kernel_shape=[2, 2]>(x, w)
    f = Flatten<axis=2>(c)
    y = Gemm<transB=1>(f, wf)
}
""", w=(1, 2, 2, 2), wf=(3, 16))
    _check(m, _x(8, 2, 5, 5))


def _compile_error(text: str, consts: dict[str, np.ndarray] | None = None, **shapes: tuple[int, ...]) -> str:
    m = _model(text, consts, **shapes)
    shape = [d.dim_value or 4 for d in m.graph.input[0].type.tensor_type.shape.dim]
    with pytest.raises(ModelError) as e:
        compile_model(m, "16bit", calib={"x": _x(*shape)})
    return str(e.value)


@pytest.mark.parametrize("node, needle", [
    ("Squeeze<axes=[0]>(c)", "squeezes axis 0, the batch dimension"),
    ("Squeeze<axes=[1]>(c)", "axis 1 has size 2, not 1"),
    ("Unsqueeze<axes=[0]>(c)", "inserts axis 0 in front of the batch dimension"),
    ("Unsqueeze<axes=[1, 1]>(c)", "must be distinct"),
    ("Flatten<axis=3>(c)", "merges the batch dimension"),
    ("Flatten<axis=0>(c)", "merges the batch dimension"),
])
def test_relabel_attribute_errors_name_the_node(node, needle):
    msg = _compile_error(f"""
<ir_version: 8, opset_import: ["" : 11]>
agraph (float[N, 1, 5, 5] x) => (float[N, 2] y) {{
    c = Conv<kernel_shape=[2, 2]>(x, w)
    bad = {node}
    y = ReduceMax(bad)
}}
""", w=(2, 1, 2, 2))
    assert "node 'bad' (" in msg and needle in msg, msg


def test_data_moving_relabel_is_a_clear_error():
    """Flatten of a (C, H, W) image read by a 1-D conv would move data (channel-minor storage): an error naming
    the node, not a wrong result."""
    m = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2, 4, 4] x) => (float[N, 2, 47] y) {
    c = Conv<kernel_shape=[1, 1]>(x, w)
    f = Flatten(c)
    u = Unsqueeze(f, ax1)
    y = Conv<kernel_shape=[2]>(u, w2)
}
""", {"ax1": np.array([1])}, w=(3, 2, 1, 1), w2=(2, 1, 2))
    with pytest.raises(ModelError, match="moves data"):
        compile_model(m, "16bit", calib={"x": _x(4, 2, 4, 4)})


@pytest.mark.parametrize("node, needle", [
    ("MaxPool<kernel_shape=[2, 2]>(x)", "a 1-D window needs 1 entry"),
    ("AveragePool<kernel_shape=[2], pads=[1, 1, 1]>(x)", "a 1-D window needs 2 entries"),
    ("Conv<kernel_shape=[3], strides=[1, 1]>(x, w)", "a 1-D window needs 1 entry"),
    ("Conv<kernel_shape=[2]>(x, w)", "differs from the weight's"),
])
def test_1d_attribute_errors_name_the_node(node, needle):
    msg = _compile_error(f"""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2, 10] x) => (float[N, 2, 9] y) {{
    y = {node}
}}
""", w=(2, 2, 3))
    assert "node 'y' (" in msg and needle in msg, msg


def test_global_max_pool_is_a_loop():
    """GlobalMaxPool sweeps the input in a pixel loop (like GlobalAveragePool): the program size does not grow
    with the input, and a long 1-D sequence stays bit-exact."""
    counts = []
    for length in (16, 400):
        m = _model(f"""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2, {length}] x) => (float[N, 3, 1] y) {{
    c = Conv<kernel_shape=[5], pads=[2, 2]>(x, w)
    y = GlobalMaxPool(c)
}}
""", w=(3, 2, 5))
        cm = _check(m, _x(4, 2, length))
        counts.append(cm.program.static_instructions)
    assert counts[0] == counts[1]


def test_1d_per_channel_constants_and_batchnorm_fold_into_the_conv():
    """Per-channel Mul before, BatchNormalization and Add after a 1-D conv (audio front ends): the (C, 1)
    constants of an (N, C, L) tensor are lifted with it to (C, 1, 1) and fold exactly."""
    m = _model("""
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 3, 20] x) => (float[N, 4, 18] y) {
    s = Mul(x, k)
    c = Conv<kernel_shape=[3]>(s, w, b)
    n = BatchNormalization(c, g, be, mu, v)
    a = Add(n, k2)
    y = Relu(a)
}
""", {"k": np.array([[0.5], [2.0], [1.5]], np.float32), "k2": np.array([[0.1], [0.2], [-0.3], [0.4]], np.float32),
      "v": np.array([1.0, 2.0, 0.5, 1.5], np.float32)}, w=(4, 3, 3), b=(4,), g=(4,), be=(4,), mu=(4,))
    cm = _check(m, _x(8, 3, 20))
    assert [op.kind for op in cm.graph.ops] == ["conv"]
