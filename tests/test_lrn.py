"""LRN on the vector unit (rule LRN, docs/semantics.md): attributes checked, the worked example, runtime bit for
bit against the functional model and onnxruntime within the bound the approximation and formats allow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper
from test_fold import RNG, _check, _conv_w, _kinds, _model

from compiler.codegen.loops import required_data_regs
from compiler.codegen.plan import vector_chunk
from compiler.driver import import_graph
from compiler.ir import Graph, Op, Value
from compiler.ops.lrn import interpolate, lrn_q, quantize_lrn
from isa.errors import ModelError
from isa.hardware import DEFAULT


def _lrn_model(c: int = 8, **attrs: float) -> object:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("LRN", ["r"], ["l"], **attrs),
             helper.make_node("MaxPool", ["l"], ["y"], kernel_shape=[2, 2])]
    return _model(nodes, {"w": _conv_w(c, 3) * 3}, ["N", 3, 6, 6])


@pytest.mark.parametrize("attrs", [dict(size=5), dict(size=5, alpha=1e-4, beta=0.75, bias=1.0),
                                   dict(size=3, alpha=0.5, beta=0.5, bias=2.0),
                                   dict(size=3, alpha=2.0, beta=1.0, bias=1.0),
                                   dict(size=1, alpha=1e-3, beta=0.75, bias=0.5),
                                   dict(size=11, alpha=0.05, beta=0.6, bias=1.5)])
def test_lrn_matches_onnxruntime_bit_exact(attrs: dict) -> None:
    m = _lrn_model(**attrs)
    assert _kinds(m) == ["conv", "lrn", "pool"]
    _check(m, RNG.uniform(-1, 1, (4, 3, 6, 6)))


def test_lrn_after_a_pool_over_channel_chunks() -> None:
    """An LRN reading a pool of the graph input, with more channels than one chunk of data registers (the
    window crosses chunk borders) and as the graph output."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2]),
             helper.make_node("LRN", ["p"], ["y"], size=5, alpha=0.01, beta=0.75, bias=1.0)]
    m = _model(nodes, {}, ["N", 300, 4, 4])
    hw = DEFAULT.with_changes(data_regs=required_data_regs(DEFAULT))
    assert vector_chunk(import_graph(m)[0], import_graph(m)[0].ops[1], hw) < 300
    _check(m, RNG.uniform(-2, 2, (3, 300, 4, 4)), hw=hw)


def test_lrn_of_a_sequence_is_refused_with_the_reason() -> None:
    nodes = [helper.make_node("LRN", ["x"], ["y"], name="n1", size=3)]
    m = _model(nodes, {}, ["N", 4, 8], out_shape=["N", 4, 8])
    with pytest.raises(ModelError, match=r"node 'n1' \(LRN\): expects a \(N, C, H, W\) tensor"):
        import_graph(m)


@pytest.mark.parametrize("attrs, msg", [(dict(size=3, bias=0.0), "bias=0.0 <= 0"),
                                        (dict(size=3, beta=-0.5), "beta=-0.5 <= 0"),
                                        (dict(size=3, alpha=-1.0), "alpha=-1.0 < 0"),
                                        (dict(size=0), "size=0 must be a positive integer")])
def test_unsupported_lrn_attributes_name_the_node(attrs: dict, msg: str) -> None:
    nodes = [helper.make_node("LRN", ["x"], ["y"], name="norm1", **attrs)]
    m = _model(nodes, {}, ["N", 4, 3, 3], out_shape=["N", 4, 3, 3])
    with pytest.raises(ModelError, match=rf"node 'norm1' \(LRN\): {msg}"):
        import_graph(m)


def test_drop_lrn_stays_the_opt_in_identity() -> None:
    m = _lrn_model(size=5)
    assert _kinds(m, drop_lrn=True) == ["conv", "pool"]


def test_lrn_example() -> None:
    """docs/semantics.md, LRN: x = (1.0, 2.0, -0.5) in Q(16, 12), size 3, alpha 0.003, beta 0.75, bias 1."""
    shape = (3, 1, 1)
    op = Op("lrn", "n", ["x"], ["y"], {"size": 3, "alpha": 0.003, "beta": 0.75, "bias": 1.0})
    g = Graph("g", [Value("x", shape)], [op], ["y"], {"x": Value("x", shape), "y": Value("y", shape)})
    q = quantize_lrn(g, op, {"x": (16, 12), "y": (16, 12)})
    x = [4096, 8192, -2048]
    s = [x[0] ** 2 + x[1] ** 2, x[0] ** 2 + x[1] ** 2 + x[2] ** 2, x[1] ** 2 + x[2] ** 2]
    assert s == [83886080, 88080384, 71303168]
    fa = math.floor(math.log2((2 ** 29 - 1) / 0.001))
    assert (fa, q.a_q) == (38, math.floor(0.001 * 2 ** 38 + 0.5)) == (38, 274877907)
    assert (q.fu, q.k_q, q.u_shift) == (29, 2 ** 29, 24 + 38 - 29) == (29, 536870912, 33)
    u = [(v * q.a_q + (1 << 32)) // (1 << 33) + q.k_q for v in s]  # round half up, by hand
    assert u == [539555267, 539689484, 539152613]
    assert [v / 2 ** 29 for v in u] == pytest.approx([1.005, 1.00525, 1.00425], abs=2 ** -29)
    assert len(q.knots) == math.ceil(math.log(1.192) / math.log(1.04)) == 5 and (q.fr, q.f0_q) == (29, 2 ** 29)
    by_hand = [q.f0_q + sum((c * max(v - t, 0) + (1 << (q.f_shift - 1))) >> q.f_shift
                            for t, c in zip(q.knots, q.coefs)) for v in u]
    assert by_hand == [int(v) for v in interpolate(np.array(u), q)] == [534918628, 534821014, 535211471]
    exact = [(v / 2 ** 29) ** -0.75 for v in u]
    assert all(0 <= y / 2 ** 29 - e <= q.max_error for y, e in zip(by_hand, exact))  # above: u^-beta is convex
    assert (q.fm, q.y_shift) == (12, 29)
    z = [(a * y + (1 << 28)) >> 29 for a, y in zip(x, by_hand)]
    assert z == [int(v) for v in lrn_q(np.array(x).reshape(1, 1, 1, 3), q).reshape(-1)] == [4081, 8161, -2042]
    want = [a / 4096 / (1 + 0.001 * v / 2 ** 24) ** 0.75 for a, v in zip(x, s)]
    assert all(abs(a / 4096 - w) <= abs(w) * q.error(8.0) + 2 ** -12 for a, w in zip(z, want))


def test_lrn_error_bound_holds_on_a_dense_grid() -> None:
    """`QuantizedLrn.max_error` bounds |Y / 2^f_r - u^-beta| at every representable u of a wide range."""
    shape = (4, 1, 1)
    op = Op("lrn", "n", ["x"], ["y"], {"size": 3, "alpha": 2.0, "beta": 1.0, "bias": 1.0})
    g = Graph("g", [Value("x", shape)], [op], ["y"], {"x": Value("x", shape), "y": Value("y", shape)})
    q = quantize_lrn(g, op, {"x": (16, 10), "y": (16, 12)})
    top = q.knots[-1] * 2
    u = np.unique(np.linspace(q.k_q, top, 200001).astype(np.int64))
    err = np.abs(interpolate(u, q) / 2.0 ** q.fr - (u / 2.0 ** q.fu) ** -1.0)
    assert float(err.max()) <= q.max_error
