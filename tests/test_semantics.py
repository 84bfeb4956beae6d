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


def test_pool_average_divisor_per_window() -> None:
    """POOL: count_include_pad=0 (and 1) with pads (1, 1, 1, 1) over a 3x3 input; ceil-mode overhang."""
    from compiler.quant.windows import window_counts

    x = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 10]]).reshape(1, 3, 3, 1)
    want = {False: [[3, 4, 4], [5, 5, 6], [6, 7, 7]], True: [[1, 2, 2], [3, 5, 4], [3, 4, 3]]}
    for include, expected in want.items():
        op = _win_op((3, 3), pads=(1, 1, 1, 1))
        op.attrs["count_include_pad"] = include
        ch, cw = window_counts(op, (3, 3), (3, 3))
        assert ch.tolist() == cw.tolist() == ([3, 3, 3] if include else [2, 3, 2])
        s = windows(x, op, (3, 3), 0).sum(axis=(3, 4))[0, :, :, 0]
        assert s.tolist() == [[12, 21, 16], [27, 46, 34], [24, 40, 29]]
        coef = np.array([[divisor_coef(int(a * b)) for b in cw] for a in ch], dtype=np.int64)
        assert ints(rshift_round(s * coef, 24)) == [v for row in expected for v in row]
    assert 21 * divisor_coef(6) == 58720263 and _rr(58720263, 24) == 4 and _rr(12 * 2**22, 24) == 3
    assert 12 * divisor_coef(9) == 22369620 and _rr(22369620, 24) == 1
    op = _win_op((1, 2), (1, 2))
    op.attrs.update(ceil_mode=True, count_include_pad=True)
    assert window_counts(op, (1, 5), (1, 3))[1].tolist() == [2, 2, 1]


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


# --- SCE, CSD, SKIP, NONUNIFORM, VARIED -------------------------------------------------------------------------

from compiler.quant.functional import crossbar_block  # noqa: E402
from compiler.quant.precision import LayerPrecision  # noqa: E402
from compiler.quant.schemes import nonuniform_grid  # noqa: E402
from compiler.quant.weights import (  # noqa: E402
    levels_on_grid,
    min_grid_bits,
    nonuniform_levels,
    quantize_channel,
    quantize_varied,
    scheme_levels,
)
from isa.costs import MvmuShape, conversions_per_step  # noqa: E402
from isa.numerics import csd_digits, nonzero_digits, signed_subwords, skipped  # noqa: E402

SEED_Q = 0b0010_1110_1001_1100


def _sce_brute(mag: int, cb: int, count: int) -> list[int]:
    """The seed's recipe with Python ints: sub-word + carry, above half range -> minus 2^cb and carry 1."""
    out, carry = [], 0
    for s in range(count):
        d = (mag >> (cb * s)) % 2**cb + carry
        carry = 1 if d > 2 ** (cb - 1) else 0
        out.append(d - carry * 2**cb)
    assert carry == 0, "ran out of slices"
    return out


def test_sce_seed_example() -> None:
    assert SEED_Q == 11932
    assert n_slices(16, 4, "sce") == 4
    assert ints(signed_subwords(np.array(SEED_Q), 16, 4, "sce")) == [-4, -6, -1, 3] == _sce_brute(SEED_Q, 4, 4)
    assert ints(signed_subwords(np.array(SEED_Q), 16, 4)) == [12, 9, 14, 2]
    wp, wn = weight_slices(np.array(SEED_Q), 16, 4, "sce")
    assert ints(wp) == [0, 0, 0, 3] and ints(wn) == [4, 6, 1, 0]
    assert -4 - 6 * 16 - 1 * 256 + 3 * 4096 == SEED_Q


def test_sce_two_bit_negative_weight_and_extra_slice() -> None:
    assert n_slices(8, 2, "sce") == n_slices(8, 2) == 4
    assert ints(signed_subwords(np.array(45), 8, 2, "sce")) == [1, -1, -1, 1] == _sce_brute(45, 2, 4)
    wp, wn = weight_slices(np.array(-45), 8, 2, "sce")
    assert ints(wp) == [0, 1, 1, 0] and ints(wn) == [1, 0, 0, 1]
    assert int(wp.sum() + wn.sum()) == 4 and sum(ints(weight_slices(np.array(-45), 8, 2)[1])) == 6
    assert (n_slices(9, 2), n_slices(9, 2, "sce")) == (4, 5)
    assert ints(signed_subwords(np.array(255), 9, 2, "sce")) == [-1, 0, 0, 0, 1] == _sce_brute(255, 2, 5)
    assert ints(weight_slices(np.array(255), 9, 2)[0]) == [3, 3, 3, 3]


def _tc_brute(q: int, bw: int, cb: int) -> tuple[list[int], list[int]]:
    """Rule TC with Python ints: the bw-bit two's complement string, its low bw-1 bits in cb-bit groups on (+),
    the sign bit's cell on the (-) slice holding bit bw-1."""
    bits = format(q % 2**bw, f"0{bw}b")[::-1]  # LSB first
    count = (bw - 1) // cb + 1
    wp = [int(bits[cb * s:min(cb * s + cb, bw - 1)][::-1] or "0", 2) if cb * s < bw - 1 else 0 for s in range(count)]
    wn = [0] * count
    wn[(bw - 1) // cb] = int(bits[bw - 1]) << ((bw - 1) % cb)
    return wp, wn


def test_tc_worked_examples() -> None:
    assert n_slices(8, 2, "tc") == 4 and n_slices(9, 2, "tc") == 5
    for q, wp, wn in [(-45, [3, 0, 1, 1], [0, 0, 0, 2]), (100, [0, 1, 2, 1], [0, 0, 0, 0]),
                      (-1, [3, 3, 3, 1], [0, 0, 0, 2])]:
        p, n = weight_slices(np.array(q), 8, 2, "tc")
        assert (ints(p), ints(n)) == (wp, wn) == _tc_brute(q, 8, 2)
        assert sum(4**s * (a - b) for s, (a, b) in enumerate(zip(wp, wn))) == q
    p, n = weight_slices(np.array(-255), 9, 2, "tc")
    assert (ints(p), ints(n)) == ([1, 0, 0, 0, 0], [0, 0, 0, 0, 1]) == _tc_brute(-255, 9, 2)


def _every_weight_sliced(bw: int, cb: int, enc: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every in-range bw-bit weight, sliced with ``enc``; checks the slice count and the reconstruction."""
    top = 2 ** (bw - 1) - 1
    q = np.arange(-top, top + 1)
    wp, wn = weight_slices(q, bw, cb, enc)
    assert wp.shape[0] == n_slices(bw, cb, enc)
    sig = np.array([2 ** (cb * s) for s in range(wp.shape[0])])
    assert ints(np.tensordot(sig, wp - wn, axes=1)) == ints(q)
    return q, wp, wn


@pytest.mark.parametrize(("bw", "cb"), [(8, 2), (9, 2), (7, 3), (5, 1), (9, 4), (16, 2)])
def test_tc_every_weight(bw: int, cb: int) -> None:
    """Every in-range weight: reconstruction, cells in range, the brute-force recipe, and (-) cells only on the
    sign slice."""
    q, wp, wn = _every_weight_sliced(bw, cb, "tc")
    top = len(q) // 2
    assert wp.max() < 2**cb and wn.max() < 2**cb
    others = np.delete(wn, (bw - 1) // cb, axis=0)
    assert not others.any() and bool(wn.any())
    for v in q[:: max(1, len(q) // 97)]:
        p, n = _tc_brute(int(v), bw, cb)
        assert ints(wp[:, v + top]) == p and ints(wn[:, v + top]) == n


@pytest.mark.parametrize(("bw", "cb"), [(8, 2), (9, 2), (7, 3), (5, 1), (9, 4), (6, 4)])
def test_sce_every_weight(bw: int, cb: int) -> None:
    """Every in-range weight: reconstruction, |cell| <= 2^(cb-1), one crossbar per slice, n_slices enough and
    needed (the extra SCE slice is used by some weight exactly when the top slice is full)."""
    q, wp, wn = _every_weight_sliced(bw, cb, "sce")
    top = len(q) // 2
    assert wp.max() <= 2 ** (cb - 1) and wn.max() <= 2 ** (cb - 1) and not (wp * wn).any()
    plain = -(-(bw - 1) // cb)
    if cb > 1:
        assert bool(wp[-1].any() or wn[-1].any()) == ((bw - 1) % cb == 0 or wp.shape[0] == plain)
    else:  # 1-bit cells: a carry never starts (d > 1 needs an incoming carry): SCE is plain slicing, no extra slice
        sce, twos = signed_subwords(np.abs(q), bw, cb, "sce"), signed_subwords(np.abs(q), bw, cb)
        assert wp.shape[0] == plain and (sce == twos).all()
    for v in (-top, -1, 0, 1, top):
        assert ints(signed_subwords(np.array(abs(v)), bw, cb, "sce")) == _sce_brute(abs(v), cb, wp.shape[0])


def _non_adjacent_strings(n: int) -> list[tuple[int, ...]]:
    """All digit strings (LSB first) in {-1, 0, 1}^n with no two adjacent non-zero digits."""
    out: list[tuple[int, ...]] = [()]
    for _ in range(n):
        out = [t + (d,) for t in out for d in (-1, 0, 1) if d == 0 or not t or t[-1] == 0]
    return out


def test_csd_seed_example() -> None:
    d = csd_digits(np.array(SEED_Q), 16)
    assert ints(d) == [0, 0, -1, 0, 0, 1, 0, 1, 0, -1, 0, 0, -1, 0, 1, 0]
    assert ints(d[::-1]) == [0, 1, 0, -1, 0, 0, -1, 0, 1, 0, 1, 0, 0, -1, 0, 0]
    assert 16384 - 4096 - 512 + 128 + 32 - 4 == SEED_Q
    assert int(nonzero_digits(np.array(SEED_Q), 16)) == bin(SEED_Q).count("1") == 8
    assert int(nonzero_digits(np.array(SEED_Q), 16, "csd")) == 6
    # independent: the non-adjacent strings of 16 digits that sum to 11932 -- exactly one (NAF uniqueness)
    hits = [t for t in _non_adjacent_strings(16) if sum(x << j for j, x in enumerate(t)) == SEED_Q]
    assert hits == [tuple(ints(d))]
    # and no signed-digit representation has fewer non-zero digits (minimal weight, by dynamic programming)
    assert _min_signed_weight(SEED_Q, 16) == 6


def _min_signed_weight(q: int, n: int) -> int:
    """Fewest non-zero digits in {-1, 0, 1} at positions 0 .. n-1 summing to q (brute-force recursion)."""
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def best(v: int, j: int) -> float:
        if j == n:
            return 0 if v == 0 else math.inf
        return min(best((v - d) // 2, j + 1) + (d != 0) for d in (-1, 0, 1) if (v - d) % 2 == 0)

    return int(best(q, 0))


@pytest.mark.parametrize(("q", "digits"), [(7, [-1, 0, 0, 1]), (-3, [1, 0, -1, 0])])
def test_csd_small(q: int, digits: list[int]) -> None:
    d, sig = input_digits(np.array(q), 4, "csd")
    assert ints(d) == digits and ints(sig) == [1, 2, 4, 8]
    assert int(nonzero_digits(np.array(q), 4)) == 3 and int(nonzero_digits(np.array(q), 4, "csd")) == 2


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 8])
def test_csd_every_input(bits: int) -> None:
    """bits digits hold every bits-bit value; the digits are the unique NAF; the popcount formula counts them."""
    q = np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1))
    d = csd_digits(q, bits)
    assert ints(np.tensordot(np.array([2**j for j in range(bits)]), d, axes=1)) == ints(q)
    assert not (d[1:] * d[:-1]).any() and np.abs(d).max() <= 1
    assert ints(nonzero_digits(q, bits, "csd")) == ints(np.abs(d).sum(axis=0))
    for v in ints(q):
        assert int(nonzero_digits(np.array(v), bits, "csd")) == _min_signed_weight(v, bits + 1)


def test_skip_seed_example() -> None:
    mask = skipped(16, 8, 2, 14)
    brute = [[j + 2 * s <= 14 for s in range(8)] for j in range(16)]
    assert mask.tolist() == brute
    assert int(mask.sum()) == 64 and mask.size == 128 and n_slices(16, 2) == 8
    per_step = [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8]
    assert conversions_per_step(DEFAULT, MvmuShape(128, 1, 8), 16, 14) == per_step
    assert per_step == [8 - sum(row) for row in brute]
    # the seed's 128 bit lines: 16 columns of 8 slices, 16 x 128 = 2048 conversions, 1024 made
    assert sum(conversions_per_step(DEFAULT, MvmuShape(128, 16, 8), 16, 14)) == 1024
    assert not skipped(16, 8, 2, -1).any()


def _brute_mvm_skip(x: list[int], w: list[list[int]], adc: int, t: int) -> list[int]:
    """brute_force_mvm's P with skipped conversions (j + CB*s <= t read 0) and a given ADC."""
    n_sl = -(-(BW - 1) // CB)
    lo, hi = -(2 ** (adc - 1)), 2 ** (adc - 1) - 1
    p = [0] * len(w[0])
    for j in range(BI):
        sig = -(2**j) if j == BI - 1 else 2**j
        for s in range(n_sl):
            if j + CB * s <= t:
                continue
            for c in range(len(w[0])):
                v = 0
                for r in range(len(w)):
                    digit = ((x[r] + 2**BI) % 2**BI // 2**j) % 2
                    mag = abs(w[r][c]) // 2 ** (CB * s) % 2**CB
                    v += digit * (mag if w[r][c] > 0 else -mag)
                p[c] += sig * 2 ** (CB * s) * min(max(v, lo), hi)
    return p


@pytest.mark.parametrize(("adc", "t", "p"), [(5, -1, [4, -19]), (5, 0, [-2, -20]), (5, 1, [-20, -20]),
                                              (4, 1, [-20, -20]), (4, -1, [0, -19])])
def test_skip_changes_the_mvm(adc: int, t: int, p: list[int]) -> None:
    prec = LayerPrecision(BW, 2, BI, 2, OBITS, 3, adc, skip=t)
    assert ints(crossbar_block(np.array([X]), np.array(W), prec, CB)) == p == _brute_mvm_skip(X, W, adc, t)
    if t == 1:
        assert p[0] == 4 - (1 * V[0][0][0] + 2 * V[1][0][0]) and p[1] == -19 - (1 * V[0][0][1] + 2 * V[1][0][1])


@pytest.mark.parametrize("w_enc", ["twos", "sce"])
@pytest.mark.parametrize("in_enc", ["twos", "csd"])
def test_encodings_keep_the_exact_product(w_enc: str, in_enc: str) -> None:
    prec = LayerPrecision(BW, 2, BI, 2, OBITS, 3, 5, w_enc=w_enc, in_enc=in_enc)
    assert ints(crossbar_block(np.array([X]), np.array(W), prec, CB)) == P_UNCLIPPED


FLAT = np.concatenate([-1 + (np.arange(2047) + 0.5) / 1024, [1.0]])  # one weight per bin of 2048, max 1.0


def test_nonuniform_flat_histogram() -> None:
    counts, _ = np.histogram(FLAT, bins=np.linspace(-1, 1, 2049))
    assert (counts == 1).all() and float(np.abs(FLAT).max()) == 1.0
    lv = nonuniform_levels(FLAT, 1, 0.0)
    # independent: A(x) = (x + 1) / 2, half-area points of 5 equal regions, the middle one forced to 0
    analytic = [0.0 if i == 2 else 2 * (i + 0.5) / 5 - 1 for i in range(5)]
    assert np.allclose(lv, analytic, atol=1e-12, rtol=0) and np.allclose(lv, [-0.8, -0.4, 0, 0.4, 0.8])
    assert min_grid_bits(lv) == 3
    f, q = levels_on_grid(lv, 3)
    assert f == 1 and ints(q) == [-2, -1, 0, 1, 2]
    assert ints(levels_on_grid(lv, 2)[1]) == [-1, 0, 0, 0, 1]

    def brute_grid(levels: list[float]) -> tuple[int, int, list[int]]:
        for g in range(2, 17):
            top = 2 ** (g - 1) - 1
            f = max(ff for ff in range(-16, 63) if max(abs(v) for v in levels) * 2.0**ff <= top)
            img = [max(-top, min(top, math.floor(v * 2.0**f + 0.5))) for v in levels]
            if len(set(img)) == len(levels):
                return g, f, img
        raise AssertionError

    assert brute_grid([-0.8, -0.4, 0.0, 0.4, 0.8]) == (3, 1, [-2, -1, 0, 1, 2])
    p = nonuniform_grid(LayerPrecision(8, 7, 8, 4, 16, 8, 10, w_scheme="nonuniform", w_code_bits=2, w_k=0.0), 8, lv)
    assert (p.w_bits, p.w_frac, p.w_code_bits) == (6, 5, 2)
    # independent: the first grid whose images are within 5 % of the smallest level gap (0.4 -> 0.02)
    for g, f, want_err in ((3, 1, 0.2), (4, 3, 0.05), (5, 4, 0.025), (6, 5, 0.0125)):
        assert levels_on_grid(lv, g)[0] == f
        err = max(abs(math.floor(v * 2.0**f + 0.5) / 2.0**f - v) for v in [-0.8, -0.4, 0.0, 0.4, 0.8])
        assert err == pytest.approx(want_err) and (err <= 0.02) == (g == 6)
    assert ints(levels_on_grid(lv, 6)[1]) == [-26, -13, 0, 13, 26]


VARIED_W = [0.9, -0.3, 0.05, 0.5]
VARIED_SCHEMES = [{"scheme": "uniform", "bits": 8}, {"scheme": "uniform", "bits": 4},
                  {"scheme": "pot", "bits": 3}, {"scheme": "apot", "bits": 4}]


def test_varied_hand_example() -> None:
    q, f = quantize_varied(np.array([VARIED_W]), VARIED_SCHEMES, 8)
    assert f == 7 == frac_for(0.9, 8) and ints(q) == [115, -40, 0, 64]
    assert [int(quantize_channel(np.array([w]), s, 8, 7)[0]) for w, s in zip(VARIED_W, VARIED_SCHEMES)] == ints(q)
    assert ints(scheme_levels(np.array([0.05]), VARIED_SCHEMES[2], 8, 7)) == [-64, -32, -16, 0, 16, 32, 64]
    assert ints(scheme_levels(np.array([0.5]), VARIED_SCHEMES[3], 8, 7)) == [
        -96, -64, -48, -36, -32, -16, -4, 0, 4, 16, 32, 36, 48, 64, 96]


def test_varied_brute_force() -> None:
    """The table's integers from the scheme definitions with Python ints and floats."""
    x = [w * 128 for w in VARIED_W]

    def uniform(xv: float, b: int) -> int:
        top = 2 ** (b - 1) - 1
        e = next(e for e in range(0, 8 - b + 1) if abs(xv) <= top * 2**e)
        return 2**e * max(-top, min(top, math.floor(xv / 2**e + 0.5)))

    def nearest(xv: float, levels: set[int]) -> int:
        return min(sorted(levels), key=lambda v: (abs(xv - v), abs(v)))

    pot = {0} | {s * 2**e for e in (4, 5, 6) for s in (1, -1)}       # 2^(3-1)-1 = 3 exponents ending at 8-2
    t0, t1 = [0, 64, 16, 4], [0, 32]                                 # APoT b = 4: m0 = 2, m1 = 1, E = 6
    apot = {s * (a + c) for a in t0 for c in t1 for s in (1, -1)}
    assert sorted(m for m in apot if m >= 0) == [0, 4, 16, 32, 36, 48, 64, 96]
    assert [uniform(x[0], 8), uniform(x[1], 4), nearest(x[2], pot), nearest(x[3], apot)] == [115, -40, 0, 64]
    assert [v % 8 for v in (115, -40)] == [3, 0]  # column 1 is a multiple of 8: its low slice is a hollow


# --- AFFINE -----------------------------------------------------------------------------------------------------


def test_affine_example() -> None:
    """docs/semantics.md, AFFINE: x in Q(16, 6), y in Q(16, 8), scale [0.75, 0.1], shift [-0.5, 0.3]."""
    from compiler.ir import Graph, Op, Value
    from compiler.quant.functional import affine_q, quantize_affine

    shape = (2, 2, 1)  # (C, H, W): two pixels of two channels
    op = Op("affine", "bn", ["x"], ["y"], {"nodes": ()},
            {"scale": np.array([0.75, 0.1]).reshape(2, 1, 1), "shift": np.array([-0.5, 0.3]).reshape(2, 1, 1)})
    g = Graph("g", [Value("x", shape)], [op], ["y"], {"x": Value("x", shape), "y": Value("y", shape)})
    q = quantize_affine(g, op, {"x": (16, 6), "y": (16, 8)})
    assert (q.fs, q.frac, q.mul_shift, q.per_channel) == (31, 8, 29, True)
    assert ints(q.scale) == [1610612736, 214748365] and ints(q.shift) == [-128, 77]
    x = np.array([[[[100, -5]], [[-37, 77]]]])  # (B, H, W, C)
    assert ints(x * q.scale) == [161061273600, -1073741825, -59592671232, 16535624105]
    assert ints(affine_q(x, q)) == [172, 75, -239, 108]
    exact = np.array([1.5625 * 0.75 - 0.5, -0.078125 * 0.1 + 0.3, -0.578125 * 0.75 - 0.5, 1.203125 * 0.1 + 0.3])
    assert ints(quantize(exact, 16, 8)) == [172, 75, -239, 108]


def test_eltwise_sub_and_mul_examples() -> None:
    """docs/semantics.md, ELTWISE: a = 100 in Q(16, 6), c = -30 in Q(16, 4); mul into Q(16, 8)."""
    from compiler.quant.functional import mul_frac

    assert int(np.int64(100) - rshift_round(np.int64(-30), 4 - 6)) == 220
    assert mul_frac(6, 4, 8) == (8, 2)
    assert ints(rshift_round(np.array([100 * -30, 101 * -30]), 2)) == [-750, -757]
    assert int(mul_q(np.int64(101), np.int64(-30), 2, 64)) == -757
