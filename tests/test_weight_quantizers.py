"""Nonuniform (Yan/Ahn/Duan) and varied per-channel (IVQ) weight quantizers on a fixed-point grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.quant.precision import frac_for
from compiler.quant.weights import (grid_frac_for, hollow_fraction, levels_on_grid, min_grid_bits,
                                    nonuniform_levels, quantize_channel, quantize_nonuniform, quantize_varied,
                                    scheme_levels, search_k, snap_to_levels)
from isa.numerics import dequantize, quantize_weights

# A histogram that is exactly flat with bins=4 over [-1, 1]: edges -1, -.5, 0, .5, 1, one weight per bin.
FLAT4 = np.array([-1.0, -0.25, 0.25, 1.0])
COL = np.array([0.9, -0.3, 0.05, 0.5])      # the hand example of the varied schemes; grid Q(8, 7) (see below)


# ---------------------------------------------------------------- nonuniform levels ----------------------

def test_levels_flat_histogram_k0_are_region_midpoints():
    # k = 0: importance = density, A(x) = (x + 1) / 2. bw = 1 -> 5 regions of area 0.2, boundaries at
    # x = -1, -.6, -.2, .2, .6, 1; half-area points at A = .1, .3, (.5 -> forced 0), .7, .9.
    lv = nonuniform_levels(FLAT4, bw=1, k=0.0, bins=4)
    np.testing.assert_allclose(lv, [-0.8, -0.4, 0.0, 0.4, 0.8], atol=1e-12)
    assert lv[2] == 0.0


def test_levels_flat_histogram_k1_exact_inside_bins():
    # k = 1, flat density 1/2: A(x) = (1 - x^2)/4 for x < 0, (1 + x^2)/4 for x > 0, total 1/2 -- normalized
    # (1 -+ x^2)/2. Targets .1, .3 -> x^2 = .8, .4 (negative side); .7, .9 -> x^2 = .4, .8.
    # The integration inside a bin is exact, so even 4 bins give the analytic points.
    lv = nonuniform_levels(FLAT4, bw=1, k=1.0, bins=4)
    a, b = math.sqrt(0.8), math.sqrt(0.4)
    np.testing.assert_allclose(lv, [-a, -b, 0.0, b, a], atol=1e-12)
    # outward compared with k = 0: 0.894 > 0.8 and 0.632 > 0.4
    k0 = nonuniform_levels(FLAT4, bw=1, k=0.0, bins=4)
    assert np.all(np.abs(lv) >= np.abs(k0)) and np.all(np.abs(lv[[0, 1, 3, 4]]) > np.abs(k0[[0, 1, 3, 4]]))


def test_levels_uniform_samples_match_hand_values():
    rng = np.random.default_rng(1234)
    w = rng.uniform(-1.0, 1.0, 200_000)
    np.testing.assert_allclose(nonuniform_levels(w, 1, 0.0), [-0.8, -0.4, 0.0, 0.4, 0.8], atol=0.01)
    a, b = math.sqrt(0.8), math.sqrt(0.4)      # 0.8944, 0.6325
    np.testing.assert_allclose(nonuniform_levels(w, 1, 1.0), [-a, -b, 0.0, b, a], atol=0.01)
    # bw = 2 (seed: 9 regions), k = 0: region width 2/9, midpoints -1 + (2i + 1)/9, centre forced to 0
    lv = nonuniform_levels(w, 2, 0.0)
    expect = [-1 + (2 * i + 1) / 9 for i in range(9)]
    expect[4] = 0.0
    np.testing.assert_allclose(lv, expect, atol=0.01)


def test_levels_scale_with_max_and_edge_cases():
    np.testing.assert_allclose(nonuniform_levels(3.0 * FLAT4, 1, 0.0, bins=4), [-2.4, -1.2, 0, 1.2, 2.4])
    np.testing.assert_array_equal(nonuniform_levels(np.zeros(5), 2, 1.0), [0.0])
    # all weights positive: A(0) = 0, so region 0 (not the middle one) holds the zero. w = .25, .75, 1 over
    # [-1, 1] with 4 bins: counts [0, 0, 1, 2], so A rises 1/3 of the total over [0, .5] and 2/3 over [.5, 1].
    # bw = 0 -> 3 regions; targets 1/6 (region 0 -> 0), 1/2 and 5/6 of the total:
    # 1/2 -> .5 + (1/2 - 1/3)/(2/3) * .5 = .625; 5/6 -> .5 + (5/6 - 1/3)/(2/3) * .5 = .875
    lv = nonuniform_levels(np.array([0.25, 0.75, 1.0]), 0, 0.0, bins=4)
    np.testing.assert_allclose(lv, [0.0, 0.625, 0.875])
    with pytest.raises(ValueError):
        nonuniform_levels(FLAT4, 1, -1.0)
    with pytest.raises(ValueError):
        nonuniform_levels(np.array([1.0, np.nan]), 1, 0.0)


# ---------------------------------------------------------------- snap / grid ----------------------------

def test_snap_ties_to_smaller_magnitude():
    lv = np.array([1.0, -0.5, 0.0, 0.5, -1.0])              # unsorted on purpose
    w = np.array([-0.75, -0.25, 0.25, 0.75, 0.8, 2.0, -3.0, 0.1])
    np.testing.assert_array_equal(snap_to_levels(w, lv), [-0.5, 0.0, 0.0, 0.5, 1.0, 1.0, -1.0, 0.0])
    # x = 0 halfway between -a and +a: +a
    np.testing.assert_array_equal(snap_to_levels(np.array([0.0, -0.1]), np.array([-0.5, 0.5])), [0.5, -0.5])
    assert snap_to_levels(np.array([[0.3]]), lv).shape == (1, 1)


def test_levels_on_grid_by_hand():
    lv = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])
    # 4 bits: qmax 7, 7/0.8 = 8.75 -> f = 3; x8 = -6.4 -3.2 0 3.2 6.4 -> round half up -6 -3 0 3 6
    f, q = levels_on_grid(lv, 4, 0.0)
    assert f == 3
    np.testing.assert_array_equal(q, [-6, -3, 0, 3, 6])
    # 3 bits: qmax 3, 3/0.8 = 3.75 -> f = 1; x2 = -1.6 -0.8 0 0.8 1.6 -> floor(x + .5) = -2 -1 0 1 2
    assert levels_on_grid(lv, 3, 0.0)[0] == 1
    np.testing.assert_array_equal(levels_on_grid(lv, 3, 0.0)[1], [-2, -1, 0, 1, 2])
    # 2 bits: qmax 1, f = 0; floor(-.3) = -1, floor(.1) = 0, 0, floor(.9) = 0, floor(1.3) = 1: collisions
    np.testing.assert_array_equal(levels_on_grid(lv, 2, 0.0)[1], [-1, 0, 0, 0, 1])
    # a larger max_abs (the layer's max |w| = 2.0) shares the layer's coarser grid: 7/2 = 3.5 -> f = 1
    f, q = levels_on_grid(lv, 4, 2.0)
    assert f == 1
    np.testing.assert_array_equal(q, [-2, -1, 0, 1, 2])


def test_min_grid_bits_by_hand():
    assert min_grid_bits(np.array([-0.8, -0.4, 0.0, 0.4, 0.8])) == 3     # see above: 2 bits collide
    # [0, .1, 1]: 4 bits -> f = 2: .4 + .5 -> 0 collides with 0; 5 bits -> f = 3: .8 + .5 -> 1: [0, 1, 8]
    assert min_grid_bits(np.array([0.0, 0.1, 1.0])) == 5
    # [0, .01, 1]: needs .01 * 2^f >= .5, f >= 6, i.e. qmax >= 64: 8 bits (7 bits: f = 5, .32 -> 0)
    assert min_grid_bits(np.array([0.0, 0.01, 1.0])) == 8
    assert min_grid_bits(np.array([0.0, 1e-9, 1.0])) == 16             # never distinct: 16


def test_grid_frac_matches_frac_for():
    for m, bits in [(1.0, 8), (0.49, 8), (100.0, 8), (300.0, 8), (0.9, 8), (127 / 64, 8), (1e-3, 16)]:
        assert grid_frac_for(m, bits) == frac_for(m, bits)
    assert grid_frac_for(0.9, 8) == 7                                    # 0.9 * 128 = 115.2 <= 127
    assert grid_frac_for(0.0, 8) == 7


def test_quantize_nonuniform_is_the_grid_image_of_snapped_levels():
    q, f = quantize_nonuniform(FLAT4, 1, 0.0, 8, bins=4)
    # levels +-.8, +-.4, 0; snapped -.8 -.4 .4 .8; 8 bits: 127/.8 = 158.75 -> f = 7; x128 = 102.4, 51.2
    assert f == 7
    np.testing.assert_array_equal(q, [-102, -51, 51, 102])
    rng = np.random.default_rng(7)
    w = rng.normal(0.0, 0.3, (40, 6))
    q, f = quantize_nonuniform(w, 2, 1.0, 8)
    lv = nonuniform_levels(w, 2, 1.0)
    assert q.shape == w.shape and q.dtype == np.int64
    np.testing.assert_array_equal(q, quantize_weights(snap_to_levels(w, lv), 8, f))
    assert np.unique(q).size <= 9


# ---------------------------------------------------------------- search_k -------------------------------

def test_search_k_best_score_ties_to_smaller_k():
    scores = iter([0.5, 0.7, 0.7, 0.6, 0.1, 0.2, 0.3])
    calls = []

    def evaluate(q, f):
        calls.append((q.copy(), f))
        return next(scores)

    w = np.random.default_rng(3).normal(0, 1, 500)
    assert search_k(w, 2, 8, evaluate) == (0.25, 0.7)            # 0.25 and 0.5 tie at 0.7 -> 0.25
    assert len(calls) == 7
    q1, f1 = quantize_nonuniform(w, 2, 0.25, 8)
    np.testing.assert_array_equal(calls[1][0], q1)
    assert calls[1][1] == f1
    # unsorted ks, tie -> smaller k regardless of order; NaN never wins
    vals = {2.0: 1.0, 0.0: float("nan"), 1.0: 1.0}
    it = iter([vals[2.0], vals[0.0], vals[1.0]])
    assert search_k(w, 2, 8, lambda q, f: next(it), ks=(2.0, 0.0, 1.0)) == (1.0, 1.0)


def test_search_k_with_a_real_score():
    w = np.random.default_rng(5).laplace(0, 0.2, 2000)

    def neg_mse(q, f):
        return -float(np.mean((dequantize(q, f) - w) ** 2))

    ks = (0.0, 0.5, 1.0, 2.0)
    expect = max(ks, key=lambda k: (neg_mse(*quantize_nonuniform(w, 1, k, 8)), -k))
    k, s = search_k(w, 1, 8, neg_mse, ks=ks)
    assert k == expect and s == neg_mse(*quantize_nonuniform(w, 1, k, 8))


# ---------------------------------------------------------------- varied schemes (IVQ) --------------------
# COL = [0.9, -0.3, 0.05, 0.5], grid_bits 8: grid_frac 7 (0.9 * 128 = 115.2 <= 127), x = [115.2, -38.4, 6.4, 64]

def test_uniform_scheme_by_hand():
    # full 8 bits: step 1 -> round half up: 115, -38, 6, 64 (== quantize_weights(COL, 8, 7))
    np.testing.assert_array_equal(quantize_channel(COL, {"scheme": "uniform", "bits": 8}, 8, 7), [115, -38, 6, 64])
    np.testing.assert_array_equal(quantize_channel(COL, {"scheme": "uniform", "bits": 8}, 8, 7),
                                  quantize_weights(COL, 8, 7))
    # 4 bits: 115.2 <= 7 * 2^e needs e = 5 > grid_bits - bits = 4 -> e = 4, step 16, codes floor(x/16 + .5):
    # 7.7 -> 7 (112), -2.4 + .5 -> -2 (-32), 0.4 + .5 -> 0, 4.5 -> 4 (64)
    q = quantize_channel(COL, {"scheme": "uniform", "bits": 4}, 8, 7)
    np.testing.assert_array_equal(q, [112, -32, 0, 64])
    assert np.all(np.abs(q) % 16 == 0)                              # the 4 low grid bits are zero
    # 3 bits: e = 5, step 32: 3.6 -> sat 3 (96), -1.2 -> -1 (-32), 0.2 -> 0, 2 -> 2 (64)
    np.testing.assert_array_equal(quantize_channel(COL, {"scheme": "uniform", "bits": 3}, 8, 7), [96, -32, 0, 64])
    # a small column: x = [25.6, -12.8, 6.4, 0]; 4 bits: 25.6 <= 7 * 4 -> e = 2, step 4:
    # 6.4 -> 6 (24), -3.2 -> -3 (-12), 1.6 -> 2 (8), 0
    small = np.array([0.2, -0.1, 0.05, 0.0])
    np.testing.assert_array_equal(quantize_channel(small, {"scheme": "uniform", "bits": 4}, 8, 7), [24, -12, 8, 0])


def test_pot_scheme_by_hand():
    # 3 bits: 3 exponents ending at 6 -> {0, 16, 32, 64}: 115.2 -> 64, -38.4 -> -32, 6.4 -> 0 (6.4 < 9.6), 64
    np.testing.assert_array_equal(quantize_channel(COL, {"scheme": "pot", "bits": 3}, 8, 7), [64, -32, 0, 64])
    # 4 bits: exponents 0..6: 6.4 -> 8 (1.6 < 2.4)
    np.testing.assert_array_equal(quantize_channel(COL, {"scheme": "pot", "bits": 4}, 8, 7), [64, -32, 8, 64])
    # tie 48 between 32 and 64 -> 32; -24 between -16 and -32 -> -16
    x = np.array([48.0, -24.0]) / 128
    np.testing.assert_array_equal(quantize_channel(x, {"scheme": "pot", "bits": 3}, 8, 7), [32, -16])


def test_apot_scheme_by_hand():
    # 4 bits: term 0 in {0, 64, 16, 4}, term 1 in {0, 32}: magnitudes {0, 4, 16, 32, 36, 48, 64, 96}
    np.testing.assert_array_equal(scheme_levels(COL, {"scheme": "apot", "bits": 4}, 8, 7),
                                  [-96, -64, -48, -36, -32, -16, -4, 0, 4, 16, 32, 36, 48, 64, 96])
    # 115.2 -> 96, -38.4 -> -36 (2.4 < 9.6), 6.4 -> 4 (2.4 < 9.6), 64 -> 64
    np.testing.assert_array_equal(quantize_channel(COL, {"scheme": "apot", "bits": 4}, 8, 7), [96, -36, 4, 64])
    # 2 bits: one term {0, 64} only (m1 = 0); 3 bits: {0, 64} + {0, 32} -> {0, 32, 64, 96}
    np.testing.assert_array_equal(scheme_levels(COL, {"scheme": "apot", "bits": 2}, 8, 7), [-64, 0, 64])
    np.testing.assert_array_equal(scheme_levels(COL, {"scheme": "apot", "bits": 3}, 8, 7),
                                  [-96, -64, -32, 0, 32, 64, 96])


def test_codebook_scheme_by_hand():
    # FLAT4 with bins 4, k 0: levels +-.8, +-.4, 0 (see above); snapped -.8, -.4, .4, .8; grid Q(8, 6)
    # (127/1 -> f = 6): x64 = -51.2, -25.6, 25.6, 51.2 -> floor(x + .5) = -51, -26, 26, 51
    sch = {"scheme": "codebook", "bits": 2, "k": 0.0, "bins": 4}
    np.testing.assert_array_equal(quantize_channel(FLAT4, sch, 8, 6), [-51, -26, 26, 51])
    np.testing.assert_array_equal(scheme_levels(FLAT4, sch, 8, 6), [-51, -26, 0, 26, 51])


def test_quantize_varied_and_hollows_by_hand():
    w = np.stack([COL, np.array([0.2, -0.1, 0.05, 0.0])], axis=1)      # (4, 2), max 0.9 -> grid_frac 7
    q, f = quantize_varied(w, [{"scheme": "uniform", "bits": 8}, {"scheme": "uniform", "bits": 4}], 8)
    assert f == 7
    np.testing.assert_array_equal(q, [[115, 24], [-38, -12], [6, 8], [64, 0]])
    # 8 bits -> 7 magnitude bits -> 4 slices of 2 bits (bits 0-1, 2-3, 4-5, 6).
    # column 0: 115 = 0b1110011 -> slices 3,0,3,1; 38 = 0b100110 -> 2,1,2,0 -> no slice all zero.
    # column 1: 24 = 0b11000 -> 0,2,1,0; 12 = 0b1100 -> 0,3,0,0; 8 -> 0,2,0,0 -> slices 0 and 3 zero.
    assert hollow_fraction(q, 8) == 2 / 8
    # column uniform 4 bits [112, -32, 0, 64]: 112 = 0b1110000 -> 0,0,3,1; 32 -> 0,0,2,0; 64 -> 0,0,0,1
    assert hollow_fraction(np.array([112, -32, 0, 64]), 8) == 2 / 4
    assert hollow_fraction(np.array([112, -32, 0, 64]), 8, cell_bits=1) == 4 / 7   # bits 0-3 zero of 7
    assert hollow_fraction(np.zeros((3, 5), dtype=np.int64), 8) == 1.0
    with pytest.raises(ValueError):
        quantize_varied(w, [{"scheme": "uniform", "bits": 8}], 8)
    with pytest.raises(ValueError):
        quantize_channel(COL, {"scheme": "uniform", "bits": 9}, 8, 7)
    with pytest.raises(ValueError):
        quantize_channel(COL, {"scheme": "lut", "bits": 4}, 8, 7)


# ---------------------------------------------------------------- properties ------------------------------

_vals = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)


@st.composite
def _case(draw):
    gb = draw(st.integers(2, 12))
    name = draw(st.sampled_from(["uniform", "pot", "apot", "codebook"]))
    lo = 1 if name == "codebook" else 2
    bits = draw(st.integers(lo, min(gb, 6) if name == "codebook" else gb))
    scheme = {"scheme": name, "bits": bits}
    if name == "codebook":
        scheme["k"] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
        scheme["bins"] = draw(st.sampled_from([4, 64, 2048]))
    col = np.array(draw(st.lists(_vals, min_size=1, max_size=24)))
    return gb, scheme, col


@settings(max_examples=300, deadline=None)
@given(_case())
def test_every_scheme_in_range_and_on_its_level_set(case):
    gb, scheme, col = case
    frac = grid_frac_for(float(np.max(np.abs(col))), gb)
    q = quantize_channel(col, scheme, gb, frac)
    top = (1 << (gb - 1)) - 1
    assert q.dtype == np.int64 and q.shape == col.shape
    assert np.all(np.abs(q) <= top)
    lv = scheme_levels(col, scheme, gb, frac)
    assert np.all(np.abs(lv) <= top)
    assert np.all(np.isin(q, lv))
    if scheme["scheme"] in ("pot", "apot"):
        # nearest in linear value: no level is strictly nearer than the chosen one
        x = col * 2.0 ** frac
        d = np.abs(x[:, None] - lv[None, :].astype(float)).min(axis=1)
        np.testing.assert_array_equal(np.abs(x - q), d)
    # the same column through quantize_varied (alone, so the same grid) gives the same integers
    qv, fv = quantize_varied(col[:, None], [scheme], gb)
    assert fv == frac
    np.testing.assert_array_equal(qv[:, 0], q)
    assert 0.0 <= hollow_fraction(qv, gb) <= 1.0


@settings(max_examples=150, deadline=None)
@given(st.lists(_vals, min_size=1, max_size=40), st.integers(0, 3), st.sampled_from([0.0, 0.5, 1.0, 2.0]),
       st.integers(2, 12))
def test_nonuniform_properties(ws, bw, k, gb):
    w = np.array(ws)
    lv = nonuniform_levels(w, bw, k)
    assert 0.0 in lv and lv.size <= (1 << (bw + 1)) + 1 and np.all(np.diff(lv) > 0)
    assert np.all(np.abs(lv) <= np.max(np.abs(w)) + 1e-12)
    assert np.all(np.isin(snap_to_levels(w, lv), lv))
    q, f = quantize_nonuniform(w, bw, k, gb)
    assert np.all(np.abs(q) <= (1 << (gb - 1)) - 1)
    np.testing.assert_array_equal(q, levels_on_grid(lv, gb, 0.0)[1][np.searchsorted(lv, snap_to_levels(w, lv))])
    assert levels_on_grid(lv, gb, 0.0)[0] == f
