"""Data moves (`compiler/ops/move.py`): DepthToSpace (DCR, CRD) and nearest Resize / Upsample as copies on the
vector unit; a Concat as the graph output; Div of two activations refused. Every case compiles at 16 bits,
runs bit for bit against the functional model and matches onnxruntime within `error_bound` (`test_fold._check`);
one tile per core (``cores_per_tile=1``) makes every tensor travel between tiles, in the order receivers take it."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_fold import RNG, _check, _conv_w, _kinds, _model

from compiler.driver import import_graph
from compiler.ops.move import axis_map, segments
from isa.errors import ModelError
from isa.hardware import DEFAULT

SPREAD = DEFAULT.with_changes(cores_per_tile=1)


def _conv(name: str, x: str, y: str, **kw: object) -> object:
    return helper.make_node("Conv", [x, name], [y], **kw)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("hw", [DEFAULT, SPREAD], ids=["one-tile", "spread"])
def test_depth_to_space_between_convs(mode: str, hw: object) -> None:
    nodes = [_conv("w1", "x", "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("DepthToSpace", ["c"], ["d"], blocksize=2, mode=mode),
             _conv("w2", "d", "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    m = _model(nodes, {"w1": _conv_w(12, 3), "w2": _conv_w(2, 3)}, ["N", 3, 4, 5])
    assert _kinds(m) == ["conv", "move", "conv"]
    _check(m, RNG.uniform(-1, 1, (2, 3, 4, 5)), hw=hw)


@pytest.mark.parametrize("attrs, scales", [
    ({}, [1, 1, 2, 2]),
    ({"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 3, 2]),
    ({"coordinate_transformation_mode": "align_corners", "nearest_mode": "round_prefer_ceil"}, [1, 1, 2, 3]),
    ({}, [1, 1, 0.5, 0.5]),
])
@pytest.mark.parametrize("hw", [DEFAULT, SPREAD], ids=["one-tile", "spread"])
def test_nearest_resize_between_convs(attrs: dict, scales: list, hw: object) -> None:
    nodes = [_conv("w1", "x", "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Resize", ["r", "", "scales"], ["u"], mode="nearest", **attrs),
             _conv("w2", "u", "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    m = _model(nodes, {"w1": _conv_w(4, 3), "w2": _conv_w(3, 4), "scales": np.array(scales, np.float32)},
               ["N", 3, 6, 4])
    assert _kinds(m) == ["conv", "move", "conv"]
    _check(m, RNG.uniform(-1, 1, (2, 3, 6, 4)), hw=hw)


def test_upsample_is_the_graph_output() -> None:
    nodes = [_conv("w1", "x", "c", kernel_shape=[1, 1]),
             helper.make_node("Upsample", ["c", "scales"], ["y"], mode="nearest")]
    m = _model(nodes, {"w1": _conv_w(2, 3, 1), "scales": np.array([1, 1, 2, 2], np.float32)}, ["N", 3, 3, 3],
               opset=9)
    _check(m, RNG.uniform(-1, 1, (2, 3, 3, 3)))


def test_segments_cover_any_nondecreasing_map() -> None:
    for src in ([0, 1, 1, 2, 2, 3, 3, 3], [0, 0, 0, 1, 1, 1], [0, 2, 4, 6], [1, 3], [0], [0, 0, 1, 3, 3, 4]):
        assert axis_map(segments(src)).tolist() == src
    assert segments([0, 0, 1, 1, 2, 2]) == ((1, 0, 2, 3),)
    assert segments([1, 3, 5]) == ((2, 1, 1, 3),)


@pytest.mark.parametrize("attrs, msg", [
    ({"mode": "linear"}, "mode='linear': only nearest resizing is supported"),
    ({"coordinate_transformation_mode": "tf_crop_and_resize"}, "coordinate_transformation_mode='tf_crop_and_resize'"),
    ({"nearest_mode": "nearest"}, "nearest_mode='nearest' is not one of"),
])
def test_unsupported_resize_attributes_name_the_node(attrs: dict, msg: str) -> None:
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up1", **attrs)]
    m = _model(nodes, {"scales": np.array([1, 1, 2, 2], np.float32)}, ["N", 2, 3, 3], out_shape=["N", 2, 6, 6])
    with pytest.raises(ModelError, match=rf"node 'up1' \(Resize\): {msg}"):
        import_graph(m)


def test_resize_of_channels_and_bad_depth_to_space_are_refused() -> None:
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up2", mode="nearest")]
    m = _model(nodes, {"scales": np.array([1, 2, 1, 1], np.float32)}, ["N", 2, 3, 3], out_shape=["N", 4, 3, 3])
    with pytest.raises(ModelError, match=r"node 'up2' \(Resize\): resizes the channel axis"):
        import_graph(m)
    nodes = [helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s", blocksize=2)]
    m = _model(nodes, {}, ["N", 6, 3, 3], out_shape=["N", 1, 6, 6])
    with pytest.raises(ModelError, match=r"node 'd2s' \(DepthToSpace\): 6 channels are not a multiple of"):
        import_graph(m)


@pytest.mark.parametrize("hw", [DEFAULT, SPREAD], ids=["one-tile", "spread"])
def test_concat_as_the_graph_output(hw: object) -> None:
    """The concat's parts come from a pool and a conv (on other tiles when spread) into the output's buffer."""
    nodes = [_conv("w1", "x", "a", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"]),
             _conv("w2", "ar", "b", kernel_shape=[1, 1]),
             helper.make_node("MaxPool", ["ar"], ["p"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
             helper.make_node("Concat", ["p", "b"], ["y"], axis=1)]
    m = _model(nodes, {"w1": _conv_w(4, 3), "w2": _conv_w(5, 4, 1)}, ["N", 3, 5, 5])
    _check(m, RNG.uniform(-1, 1, (2, 3, 5, 5)), hw=hw)


def test_div_of_two_activations_is_a_clear_error() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Div", ["x", "r"], ["y"], name="ratio")]
    m = _model(nodes, {}, ["N", 4], out_shape=["N", 4])
    with pytest.raises(ModelError, match=r"node 'ratio' \(Div\): Div of two activations is not supported"):
        import_graph(m)


def test_move_examples() -> None:
    """docs/semantics.md, MOVE: DepthToSpace of one 8-channel pixel (DCR and CRD) and a resize row."""
    from compiler.frontend.converters import nearest_source
    from compiler.ops.move import gather
    from compiler.ir import Graph, Op, Value

    x = np.arange(8).reshape(1, 1, 1, 8)  # (B, H, W, C): one pixel
    for mode, want in (("DCR", [0, 1, 2, 3, 4, 5, 6, 7]), ("CRD", [0, 4, 1, 5, 2, 6, 3, 7])):
        nodes = [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)]
        g = import_graph(_model(nodes, {}, ["N", 8, 1, 1], out_shape=["N", 2, 2, 2]))[0]
        assert g.ops[0].attrs["grid"] == (((1, 0, 2, 1),), ((1, 0, 2, 1),))
        assert gather(g, g.ops[0], x).reshape(-1).tolist() == want
        ref = x.reshape(1, 8, 1, 1)  # ONNX's definition, with numpy
        b, c = 2, 2
        onnx_y = (ref.reshape(1, b, b, c, 1, 1).transpose(0, 3, 4, 1, 5, 2) if mode == "DCR" else
                  ref.reshape(1, c, b, b, 1, 1).transpose(0, 1, 4, 2, 5, 3)).reshape(1, c, 2, 2)
        assert onnx_y.transpose(0, 2, 3, 1).reshape(-1).tolist() == want
    src = nearest_source(4, 8, 2.0, "asymmetric", "round_prefer_ceil").tolist()
    assert src == [min(3, int(np.floor(v / 2 + 0.5))) for v in range(8)] == [0, 1, 1, 2, 2, 3, 3, 3]
    assert segments(src) == ((1, 0, 1, 1), (1, 1, 2, 2), (1, 3, 3, 1))
    op = Op("move", "m", ["x"], ["y"], {"grid": (((1, 0, 1, 1),), segments(src)), "channels": ()})
    g = Graph("g", [Value("x", (1, 1, 4))], [op], ["y"], {"x": Value("x", (1, 1, 4)), "y": Value("y", (1, 1, 8))})
    assert gather(g, op, np.array([10, 11, 12, 13]).reshape(1, 1, 4, 1)).reshape(-1).tolist() == \
        [10, 11, 11, 12, 12, 13, 13, 13]
