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
