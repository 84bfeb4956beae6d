"""Every integer of docs/semantics.md's worked examples, recomputed with isa.numerics.

The numbers are hard-coded copies of the document's (derived by hand); keep the two literally the same.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from isa.numerics import (
    adc_convert,
    input_digits,
    mul_q,
    n_slices,
    quantize,
    quantize_weights,
    requantize,
    rshift_round,
    saturate,
    sigmoid_q,
    tanh_q,
    weight_slices,
)


def ints(x: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(x).ravel()]


# --- QUANT, ROUND, SAT ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "q"), [(1.3, 21), (9.0, 127), (-9.0, -128), (0.46875, 8), (-0.46875, -7)]
)
def test_quant(x: float, q: int) -> None:
    assert int(quantize(np.array(x), 8, 4)) == q


@pytest.mark.parametrize(
    ("x", "s", "y"), [(6, 2, 2), (-6, 2, -1), (-5, 1, -2), (7, 2, 2), (5, 1, 3), (3, -2, 12), (9, 0, 9)]
)
def test_round(x: int, s: int, y: int) -> None:
    assert int(rshift_round(np.int64(x), s)) == y
    if s > 0:
        assert y == math.floor(x / 2**s + 0.5) == (x + 2 ** (s - 1)) >> s


def test_sat() -> None:
    assert ints(saturate(np.array([200, -200, -128, 127]), 8)) == [127, -128, -128, 127]
    big = np.array([2**62, -(2**62)], dtype=np.int64)
    assert ints(saturate(big, 64)) == ints(big)


# --- WEIGHTS, INPUT, ADC --------------------------------------------------------------------------------------


def test_weights_quantization_is_symmetric() -> None:
    assert n_slices(8, 2) == 4
    assert int(quantize(np.array(-2.0), 8, 6)) == -128
    assert ints(quantize_weights(np.array([-2.0, -0.703125]), 8, 6)) == [-127, -45]


@pytest.mark.parametrize(
    ("q", "pos", "neg"), [(-45, [0, 0, 0, 0], [1, 3, 2, 0]), (100, [0, 1, 2, 1], [0, 0, 0, 0])]
)
def test_weight_slices(q: int, pos: list[int], neg: list[int]) -> None:
    wp, wn = weight_slices(np.array(q), 8, 2)
    assert ints(wp) == pos and ints(wn) == neg
    assert sum(4**s * (p - n) for s, (p, n) in enumerate(zip(pos, neg))) == q


@pytest.mark.parametrize(("q", "digits"), [(-3, [1, 0, 1, 1]), (5, [1, 0, 1, 0])])
def test_input_digits(q: int, digits: list[int]) -> None:
    d, sig = input_digits(np.array(q), 4)
    assert ints(sig) == [1, 2, 4, -8]
    assert ints(d) == digits
    assert sum(s * b for s, b in zip(ints(sig), digits)) == q


def test_adc() -> None:
    assert math.ceil(math.log2(128 * 3 + 1)) + 1 == 10
    assert math.ceil(math.log2(3 * 3 + 1)) + 1 == 5
    assert ints(adc_convert(np.array([384, -384]), 10)) == [384, -384]
    assert ints(adc_convert(np.array([11, -9, 5, 384, -384]), 4)) == [7, -8, 5, 7, -8]


# --- MVM ------------------------------------------------------------------------------------------------------

X = [3, -1, -2]
W = [[7, -5], [3, 6], [7, -1]]
BI, BW, CB, ADC, SHIFT, OBITS = 3, 4, 2, 4, 1, 4
# the document's integers
DIGITS = [[1, 1, 0], [1, 1, 1], [0, 1, 1]]  # [j][row]
SIG = [1, 2, -4]
WP = [[[3, 0], [3, 2], [3, 0]], [[1, 0], [0, 1], [1, 0]]]  # [s][row][col]
WN = [[[0, 1], [0, 0], [0, 1]], [[0, 1], [0, 0], [0, 0]]]
V = [[[6, 1], [1, 0]], [[9, 0], [2, 0]], [[6, 1], [1, 1]]]  # [j][s][col]
A = [[[6, 1], [1, 0]], [[7, 0], [2, 0]], [[6, 1], [1, 1]]]
P = [0, -19]
P_UNCLIPPED = [4, -19]
ROUNDED = [0, -9]
OUT = [0, -8]


def test_mvm_example_step_by_step_with_numerics() -> None:
    x, w = np.array(X), np.array(W)
    d, sig = input_digits(x, BI)
    wp, wn = weight_slices(w, BW, CB)
    assert d.tolist() == DIGITS and ints(sig) == SIG
    assert wp.tolist() == WP and wn.tolist() == WN
    v = np.einsum("jr,src->jsc", d, wp - wn)
    a = adc_convert(v, ADC)
    assert v.tolist() == V and a.tolist() == A
    slice_sig = np.array([1 << (CB * s) for s in range(n_slices(BW, CB))])
    p = np.einsum("j,s,jsc->c", sig, slice_sig, a)
    assert ints(p) == P
    assert ints(np.einsum("j,s,jsc->c", sig, slice_sig, v)) == P_UNCLIPPED == ints(x @ w)
    assert ints(rshift_round(p, SHIFT)) == ROUNDED
    assert ints(saturate(rshift_round(p, SHIFT), OBITS)) == OUT


def brute_force_mvm(x: list[int], w: list[list[int]]) -> tuple[list[int], list[int]]:
    """The MVM rule with plain Python integers, independent of isa.numerics: (P, out)."""
    rows, cols = len(w), len(w[0])
    n_sl = -(-(BW - 1) // CB)
    lo, hi = -(2 ** (ADC - 1)), 2 ** (ADC - 1) - 1
    p = [0] * cols
    for j in range(BI):
        sig = -(2**j) if j == BI - 1 else 2**j
        for s in range(n_sl):
            for c in range(cols):
                v = 0
                for r in range(rows):
                    digit = ((x[r] + 2**BI) % 2**BI // 2**j) % 2
                    mag = abs(w[r][c]) // 2 ** (CB * s) % 2**CB
                    v += digit * (mag if w[r][c] > 0 else -mag)
                p[c] += sig * 2 ** (CB * s) * min(max(v, lo), hi)
    out = [min(max(math.floor(pc / 2**SHIFT + 0.5), -(2 ** (OBITS - 1))), 2 ** (OBITS - 1) - 1) for pc in p]
    return p, out


def test_mvm_example_brute_force() -> None:
    assert brute_force_mvm(X, W) == (P, OUT)


# --- ACC, BIAS, ACT -------------------------------------------------------------------------------------------


def accumulate(outs: list[int], bits: int) -> int:
    acc = np.int64(outs[0])
    for out in outs[1:]:
        acc = saturate(acc + out, bits)
    return int(acc)


def test_acc_order_matters() -> None:
    assert int(saturate(np.int64(100 + 50), 8)) == 127
    assert accumulate([100, 50, -60], 8) == 67
    assert accumulate([-60, 100, 50], 8) == 90 == 100 + 50 - 60


def test_bias() -> None:
    bias_q = int(quantize(np.array(0.3), 8, 4))
    assert bias_q == 5
    assert int(saturate(np.int64(67 + bias_q), 8)) == 72
    assert int(saturate(np.int64(125 + bias_q), 8)) == 127


def test_act() -> None:
    assert ints(np.maximum(np.array([72, -13]), 0)) == [72, 0]
    q = np.array([8, -16, 0, 64, -64])
    assert ints(sigmoid_q(q, 4)) == [10, 4, 8, 16, 0]
    assert ints(tanh_q(q, 4)) == [7, -12, 0, 16, -16]
    scaled_sigmoid = [16 / (1 + math.exp(-x / 16)) for x in q.tolist()]
    scaled_tanh = [16 * math.tanh(x / 16) for x in q.tolist()]
    np.testing.assert_allclose(scaled_sigmoid, [9.959, 4.303, 8.0, 15.712, 0.288], atol=5e-4)
    np.testing.assert_allclose(scaled_tanh, [7.394, -12.186, 0.0, 15.989, -15.989], atol=5e-4)


# --- REQUANT, MUL ---------------------------------------------------------------------------------------------


def test_requant() -> None:
    assert ints(requantize(np.array([1000, -1000, 2600, -2600, 24]), 8 - 4, 8)) == [63, -62, 127, -128, 2]
    assert int(requantize(np.int64(5), 2 - 4, 8)) == 20


def test_mul() -> None:
    a = np.array([24, 24, -24, 100])
    c = np.array([-20, 21, 21, 40])
    assert ints(a * c) == [-480, 504, -504, 4000]
    assert ints(mul_q(a, c, 4, 8)) == [-30, 32, -31, 127]


# --- CNN rules: ACT (leaky_relu, clip), CONV, POOL, ELTWISE, CONCAT, FORMATS, LAYOUT, FOLDING ---------------------

import onnx  # noqa: E402
import onnx.parser  # noqa: E402

from compiler.codegen.storage import Storage  # noqa: E402
from compiler.driver import import_graph  # noqa: E402
from compiler.ir import Op  # noqa: E402
from compiler.passes.canonicalize import hwc_row_order  # noqa: E402
from compiler.quant.calibrate import calibrate  # noqa: E402
from compiler.quant.formats import assign_formats  # noqa: E402
from compiler.quant.functional import activate, clip_bounds, divisor_coef, leaky_coef  # noqa: E402
from compiler.quant.precision import frac_for, resolve_precision  # noqa: E402
from compiler.quant.windows import im2col, windows  # noqa: E402
from isa.hardware import DEFAULT  # noqa: E402
from isa.program import TensorLoc  # noqa: E402


def _model(text: str, **consts: np.ndarray) -> onnx.ModelProto:
    m = onnx.parser.parse_model(text)
    for name, arr in consts.items():
        arr = np.asarray(arr)
        arr = arr.astype(np.int64 if arr.dtype.kind == "i" else np.float32)
        m.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
    onnx.checker.check_model(m)
    return m


def _win_op(k: tuple[int, int], s: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Op:
    return Op("pool", "p", ["x"], ["y"], {"kernel": k, "strides": s, "pads": pads, "dilations": (1, 1)})


def _rr(x: int, s: int) -> int:
    """ROUND with Python integers (independent of isa.numerics)."""
    return x * 2 ** (-s) if s <= 0 else math.floor(x / 2**s + 0.5)


def test_act_leaky_relu() -> None:
    assert leaky_coef(0.1) == 6554 == math.floor(0.1 * 65536 + 0.5)
    assert leaky_coef(0.5) == 32768
    x = np.array([-100, -30, -5, 50], dtype=np.int64)
    assert ints(x * 6554) == [-655400, -196620, -32770, 327700]
    assert ints(activate(x, {"act": "leaky_relu", "alpha": 0.1}, 4)) == [-10, -3, -1, 50]
    assert [max(v, _rr(v * 6554, 16)) for v in x.tolist()] == [-10, -3, -1, 50]
    assert int(activate(np.array([-5]), {"act": "leaky_relu", "alpha": 0.5}, 4)[0]) == -2 == _rr(-163840, 16)


def test_act_clip() -> None:
    assert clip_bounds({"lo": 0.0, "hi": 6.0}, 4) == (0, 96)
    assert clip_bounds({"lo": 0.0, "hi": 0.3}, 4)[1] == 5 == math.floor(0.3 * 16 + 0.5)
    assert clip_bounds({"lo": -np.inf, "hi": np.inf}, 4) == (-2147483648, 2147483647)
    got = activate(np.array([100, -3, 50]), {"act": "clip", "lo": 0.0, "hi": 6.0}, 4)
    assert ints(got) == [96, 0, 50] == [min(max(v, 0), 96) for v in (100, -3, 50)]


X3 = np.arange(1, 10).reshape(1, 3, 3, 1)
CONV_ROWS = [[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]]
CONV_OUT = [37, 47, 67, 77]
PADDED_ROWS = [[0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 0, 4]]
PADDED_OUT = [4, 11, 18]


def _brute_rows(x: list[list[list[int]]], kh: int, kw: int, pads: tuple[int, int, int, int]) -> list[list[int]]:
    """im2col with loops: x[h][w][c], stride 1, zero padding, rows in (i, j, c) order."""
    pt, pl, pb, pr = pads
    h, w = len(x), len(x[0])
    at = lambda r, q, c: x[r][q][c] if 0 <= r < h and 0 <= q < w else 0  # noqa: E731
    return [[at(oh + i - pt, ow + j - pl, c) for i in range(kh) for j in range(kw) for c in range(len(x[0][0]))]
            for oh in range(h + pt + pb - kh + 1) for ow in range(w + pl + pr - kw + 1)]


def test_conv_im2col_rows() -> None:
    rows = im2col(X3, _win_op((2, 2)), (2, 2))
    assert rows.tolist() == CONV_ROWS == _brute_rows(X3[0].tolist(), 2, 2, (0, 0, 0, 0))
    assert ints(rows @ np.array([1, 2, 3, 4])) == CONV_OUT
    padded = im2col(X3, _win_op((2, 2), pads=(1, 1, 0, 0)), (3, 3))
    assert len(padded) == 9
    first = padded[[0, 1, 3]]  # output pixels (0, 0), (0, 1), (1, 0)
    assert first.tolist() == PADDED_ROWS == [_brute_rows(X3[0].tolist(), 2, 2, (1, 1, 0, 0))[k] for k in (0, 1, 3)]
    assert ints(first @ np.array([1, 2, 3, 4])) == PADDED_OUT


def test_conv_channel_order_and_weight_rows() -> None:
    x = np.stack([[[1, 2], [3, 4]], [[10, 20], [30, 40]]]).transpose(1, 2, 0)[None]  # (1, H, W, C)
    assert im2col(x, _win_op((2, 2)), (1, 1)).tolist() == [[1, 10, 2, 20, 3, 30, 4, 40]]
    # the ONNX weight W[o, c, i, j] lands on row (i*kw + j)*C + c
    w = np.zeros((1, 2, 2, 2), dtype=np.float32)
    w[0, 1, 1, 0] = 1.0
    m = _model("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2, 2, 2] x) => (float[N, 1, 1, 1] y) { y = Conv<kernel_shape=[2,2]>(x, w) }""", w=w)
    g, _, _ = import_graph(m)
    assert np.flatnonzero(g.ops[0].params["weight"][:, 0]).tolist() == [5] == [(1 * 2 + 0) * 2 + 1]


def test_pool_max_border_is_qmin() -> None:
    x = np.array([[-5, -3], [-7, -2]]).reshape(1, 2, 2, 1)
    op = _win_op((3, 3), pads=(1, 1, 1, 1))
    win = windows(x, op, (2, 2), -128)
    assert win.max(axis=(3, 4)).reshape(2, 2).tolist() == [[-2, -2], [-2, -2]]
    assert windows(x, op, (2, 2), 0).max(axis=(3, 4)).reshape(2, 2).tolist() == [[0, 0], [0, 0]]
    assert int((win == -128).sum(axis=(3, 4)).max()) == 5


@pytest.mark.parametrize(("n", "coef"), [(4, 4194304), (6, 2796203), (9, 1864135), (25, 671089), (49, 342392)])
def test_divisor_coef(n: int, coef: int) -> None:
    assert divisor_coef(n) == coef == math.floor(2**24 / n + 0.5)


def test_pool_average() -> None:
    win = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 10]])
    assert int(win.sum()) == 46 and 46 * 1864135 == 85750210
    op = _win_op((3, 3))
    s = windows(win.reshape(1, 3, 3, 1), op, (1, 1), 0).sum(axis=(3, 4))
    assert int(rshift_round(s * np.int64(divisor_coef(9)), 24).ravel()[0]) == 5 == _rr(85750210, 24)
    assert -45 * 1864135 == -83886075 and int(rshift_round(np.int64(-83886075), 24)) == -5 == _rr(-83886075, 24)
    assert -3 * 2796203 == -8388609 and int(rshift_round(np.int64(-8388609), 24)) == -1 == _rr(-8388609, 24)
    assert math.floor(-3 / 6 + 0.5) == 0  # the exactly rounded mean


def test_pool_global_average() -> None:
    x = np.array([[3, 4, 5, 6], [-3, -4, -5, -6]])
    assert divisor_coef(4) == 2**22
    assert ints(rshift_round(x.sum(axis=1) * np.int64(divisor_coef(4)), 24)) == [5, -4]
    assert [_rr(s * 2**22, 24) for s in (18, -18)] == [5, -4]


def test_eltwise() -> None:
    aligned = int(rshift_round(np.int64(-30), 4 - 6))
    assert aligned == -120 and 100 + aligned == -20
    assert int(requantize(np.int64(-20), 6 - 5, 16)) == -10 == _rr(-20, 1)
    assert int(requantize(np.maximum(np.int64(-20), 0), 1, 16)) == 0
    big = 32767 + int(rshift_round(np.int64(32767), 4 - 6))
    assert big == 163835 == 32767 + 32767 * 4
    assert int(rshift_round(np.int64(big), 2)) == 40959 and int(requantize(np.int64(big), 6 - 4, 16)) == 32767


CONCAT_SRC = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 3, 4, 5] x) => (float[N, 2, 4, 5] y) {
    a = Conv<kernel_shape=[1,1]>(x, wa)
    b = Conv<kernel_shape=[1,1]>(x, wb)
    cat = Concat<axis=1>(a, b)
    y = Conv<kernel_shape=[3,3], pads=[1,1,1,1]>(cat, wc)
}"""


def test_concat_values_hwc() -> None:
    a = np.array([[[1, 2]], [[3, 4]]])  # (2, 1, 2)
    b = np.array([[[5, 6]]])  # (1, 1, 2)
    out = np.concatenate([a.transpose(1, 2, 0), b.transpose(1, 2, 0)], axis=-1)  # the functional model's concat
    assert out.reshape(-1).tolist() == [1, 3, 5, 2, 4, 6]
    assert np.concatenate([a, b]).transpose(1, 2, 0).reshape(-1).tolist() == [1, 3, 5, 2, 4, 6]


def test_layout_concat_views_and_address() -> None:
    m = _model(CONCAT_SRC, wa=np.ones((3, 3, 1, 1)), wb=np.ones((2, 3, 1, 1)), wc=np.ones((2, 5, 3, 3)))
    g, _, _ = import_graph(m)
    st = Storage(g, {v: (16, 8) for v in g.values})
    buf = st.buffer("b")
    assert st.root("a") == st.root("b") == "cat"
    assert (buf.pads, buf.wp, buf.hp, buf.words, buf.c) == ([1, 1, 1, 1], 7, 6, 210, 5)
    assert st.views["b"].coff == 3 and st.views["a"].coff == 0

    def addr(v: str, h: int, w: int, c: int) -> int:
        row, pix = st.pixel_step(v)
        return st.origin(v) + h * row + w * pix + c

    assert addr("b", 1, 3, 1) == 94 == ((1 + 1) * 7 + (3 + 1)) * 5 + 3 + 1 == addr("cat", 1, 3, 4)
    assert addr("a", 1, 3, 1) == 91


def test_layout_ceil_mode_border_and_pack() -> None:
    m = _model("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 1, 5, 5] x) => (float[N, 1, 3, 3] y) {
            y = MaxPool<kernel_shape=[2,2], strides=[2,2], ceil_mode=1>(x)
        }""")
    g, _, _ = import_graph(m)
    st = Storage(g, {v: (16, 8) for v in g.values})
    assert st.buffer("x").pads == [0, 0, 1, 1] and (3 - 1) * 2 + 2 - 5 == 1
    assert st.buffer("x").fill == -32768
    # TensorLoc.pack against the address formula, on a (2, 2, 3) tensor with border (1, 0, 0, 2)
    loc = TensorLoc("x", 0, 0, 3 * 5 * 2, 16, 8, (2, 2, 3), pads=(1, 0, 0, 2), fill=-7)
    x = np.arange(12).reshape(1, 2, 2, 3)
    words = loc.pack(x)[0]
    wp = 3 + 0 + 2
    for c in range(2):
        for h in range(2):
            for w in range(3):
                assert words[((h + 1) * wp + (w + 0)) * 2 + c] == x[0, c, h, w]
    assert int((words == -7).sum()) == 30 - 12
    assert loc.unpack(loc.pack(x)).tolist() == x.tolist()


FORMATS_SRC = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 1, 6, 6] x) => (float[N, 2, 3, 3] y1, float[N, 2, 1, 1] y2) {
    c1 = Conv<kernel_shape=[3,3], pads=[1,1,1,1]>(x, w1)
    t1 = Relu(c1)
    t2 = MaxPool<kernel_shape=[2,2], strides=[2,2]>(t1)
    y1 = Conv<kernel_shape=[1,1]>(t2, w2)
    y2 = GlobalAveragePool(t2)
}"""


def test_formats_rules() -> None:
    rng = np.random.default_rng(0)
    m = _model(FORMATS_SRC, w1=rng.normal(0, 0.5, (2, 1, 3, 3)), w2=rng.normal(0, 0.5, (2, 2, 1, 1)))
    g, _, _ = import_graph(m)
    x = rng.random((16, 1, 6, 6))
    ranges = calibrate(g, {"x": x}, 128)
    cfg = {"preset": "16bit", "default": {"in_frac": 12, "acc_frac": 20}}
    prec = resolve_precision(g, cfg, ranges, DEFAULT)
    fmt = assign_formats(g, prec, ranges)
    t1 = g.ops[0].outputs[0]  # conv1 with the relu fused
    assert fmt["t2"] == (16, 12) and fmt[t1] == (16, 12) and fmt["x"] == (16, 12)
    assert fmt["y1"] == (32, 20)
    m2 = ranges.values["y2"]
    assert fmt["y2"] == (16, frac_for(m2, 16)) == (16, math.floor(math.log2(32767 / m2)))
    assert [frac_for(v, 16) for v in (5.3, 0.3, 1000.0)] == [12, 16, 5]
    assert [math.floor(math.log2(32767 / v)) for v in (5.3, 0.3, 1000.0)] == [12, 16, 5]


def test_folding_batchnorm() -> None:
    m = _model("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 3] x) => (float[N, 2] y) {
            d = Gemm(x, w, b)
            y = BatchNormalization<epsilon=0.25>(d, gamma, beta, mean, var)
        }""", w=[[2, 1], [-4, 1], [0.5, 1]], b=[0.5, 0], gamma=[1.5, 1], beta=[1, 0], mean=[2, 0], var=[3.75, 0.75])
    g, _, _ = import_graph(m)
    (op,) = g.ops
    assert op.params["weight"][:, 0].tolist() == [1.5, -3, 0.375] == [v * 0.75 for v in (2, -4, 0.5)]
    assert op.params["bias"][0] == -0.125 == 0.5 * 1.5 / math.sqrt(3.75 + 0.25) + 1 - 2 * 0.75


def test_folding_pad() -> None:
    m = _model("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 1, 4, 4] x) => (float[N, 1, 8, 6] y) {
            p = Pad(x, pads)
            y = Conv<kernel_shape=[1,1], pads=[1,0,1,0]>(p, w)
        }""", w=np.ones((1, 1, 1, 1)), pads=np.array([0, 0, 1, 2, 0, 0, 1, 2]))
    g, _, _ = import_graph(m)
    (op,) = g.ops
    assert op.kind == "conv" and tuple(op.attrs["pads"]) == (2, 2, 2, 2)


def test_folding_flatten_permutation() -> None:
    perm = hwc_row_order((2, 2, 2))
    assert perm.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    brute = [0] * 8
    for c in range(2):
        for h in range(2):
            for w in range(2):
                brute[(h * 2 + w) * 2 + c] = c * 4 + h * 2 + w
    assert brute == perm.tolist() and perm[(0 * 2 + 1) * 2 + 1] == 5
