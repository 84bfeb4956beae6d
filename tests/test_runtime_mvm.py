"""MVM semantics: exact product at full ADC resolution, ADC clipping against a naive loop reference, rounding."""

from __future__ import annotations

import time

import numpy as np
import pytest

from isa import MvmuImage
from isa import numerics as nx
from runtime import Machine
from support import HW, I, M, loc, mlp_program, program


def run_mvm(w: np.ndarray, x: np.ndarray, wbits: int, ibits: int, adc: int, shift: int = 0, obits: int = 64,
            k: int = 0) -> np.ndarray:
    """One MVM on MVMU k of tile 0 core 0: x (B, R) -> (B, C)."""
    r, c = w.shape
    code = [I("load", HW.mvmu_in(k), M(0), r), I("mvm", 1 << k, ibits, adc, shift, obits, 0, -1),
            I("store", M(200), HW.mvmu_out(k), c, 0), I("halt")]
    prog = program({(0, 0): code}, mvmus=[MvmuImage(0, 0, k, w, wbits)],
                   inputs=[loc("x", 0, 0, r, 32)], outputs=[loc("y", 0, 200, c, 64)])
    return Machine(prog).run({"x": x}).outputs["y"]


def naive_mvm(w, x, wbits, ibits, adc, shift, obits, cell_bits=2):
    """Rule MVM with Python loops over batch, digits, slices and columns; explicit clipping."""
    n_sl = max(1, -(-(wbits - 1) // cell_bits))
    lo, hi = -(1 << (adc - 1)), (1 << (adc - 1)) - 1
    out = np.zeros((x.shape[0], w.shape[1]), dtype=np.int64)
    for b in range(x.shape[0]):
        for c in range(w.shape[1]):
            total = 0
            for j in range(ibits):
                sig = -(1 << j) if j == ibits - 1 else (1 << j)
                for s in range(n_sl):
                    v = 0
                    for r in range(w.shape[0]):
                        d = (int(x[b, r]) % (1 << ibits)) >> j & 1
                        wv = int(w[r, c])
                        cell_p = (max(wv, 0) >> (cell_bits * s)) & ((1 << cell_bits) - 1)
                        cell_n = (max(-wv, 0) >> (cell_bits * s)) & ((1 << cell_bits) - 1)
                        v += d * (cell_p - cell_n)
                    v = min(max(v, lo), hi)
                    total += sig * (1 << (cell_bits * s)) * v
            if shift > 0:
                total = (total + (1 << (shift - 1))) >> shift
            elif shift < 0:
                total <<= -shift
            lim = 1 << (obits - 1)
            out[b, c] = min(max(total, -lim), lim - 1)
    return out


@pytest.mark.parametrize("r,c,wbits,ibits", [(128, 128, 16, 16), (37, 5, 8, 8), (128, 3, 2, 4), (1, 128, 5, 1),
                                              (64, 100, 9, 12), (100, 64, 16, 32)])
def test_full_adc_is_exact_product(r, c, wbits, ibits):
    rng = np.random.default_rng(r * 1000 + c)
    w = rng.integers(-nx.qmax(wbits), nx.qmax(wbits) + 1, (r, c))
    x = rng.integers(nx.qmin(ibits), nx.qmax(ibits) + 1, (7, r))
    assert np.array_equal(run_mvm(w, x, wbits, ibits, HW.full_adc_bits), x @ w)


def test_full_adc_digit_path_is_exact_product():
    # adc=16 never clips either, but with 16-bit weights and 32-bit inputs the f64 product path is not exact:
    # the digit path must still give x @ w exactly
    rng = np.random.default_rng(5)
    w = rng.integers(-32767, 32768, (128, 20))
    x = rng.integers(-(2**31), 2**31, (4, 128))
    assert np.array_equal(run_mvm(w, x, 16, 32, 16), x @ w)


@pytest.mark.parametrize("adc,wbits,ibits,shift,obits", [(3, 7, 6, 0, 64), (4, 5, 5, 2, 8), (2, 3, 3, 1, 6),
                                                         (5, 9, 4, -1, 12)])
def test_small_adc_matches_naive_reference(adc, wbits, ibits, shift, obits):
    rng = np.random.default_rng(adc + wbits)
    w = rng.integers(-nx.qmax(wbits), nx.qmax(wbits) + 1, (20, 6))
    x = rng.integers(nx.qmin(ibits), nx.qmax(ibits) + 1, (3, 20))
    got = run_mvm(w, x, wbits, ibits, adc, shift, obits, k=3)
    want = naive_mvm(w, x, wbits, ibits, adc, shift, obits)
    assert np.array_equal(got, want)
    if shift == 0 and obits == 64:
        assert not np.array_equal(got, x @ w)  # the 3-bit ADC really clips


def test_rounding_shift_and_saturation():
    w = np.array([[1], [1]])
    x = np.array([[3, 3], [-3, -2], [2, 2], [-1, -2], [100, 100], [-100, -100]])
    # sums 6, -5, 4, -3, 200, -200; shift 2 rounds half up: 1.5 -> 2, -1.25 -> -1, 1 -> 1, -0.75 -> -1;
    # 50 and -50 saturate to 5 bits [-16, 15]
    got = run_mvm(w, x, 2, 8, HW.full_adc_bits, shift=2, obits=5)
    assert got[:, 0].tolist() == [2, -1, 1, -1, 15, -16]


def test_two_mvmus_fire_in_parallel():
    rng = np.random.default_rng(3)
    w0, w1 = rng.integers(-7, 8, (10, 4)), rng.integers(-7, 8, (6, 3))
    x = rng.integers(-8, 8, (5, 10))
    code = [I("load", HW.mvmu_in(0), M(0), 10), I("load", HW.mvmu_in(1), M(0), 6),
            I("mvm", 0b11, 4, HW.full_adc_bits, 0, 32, 0, -1),
            I("store", M(100), HW.mvmu_out(0), 4, 0), I("store", M(104), HW.mvmu_out(1), 3, 0), I("halt")]
    prog = program({(0, 0): code}, mvmus=[MvmuImage(0, 0, 0, w0, 4), MvmuImage(0, 0, 1, w1, 4)],
                   inputs=[loc("x", 0, 0, 10, 4, count=2)],
                   outputs=[loc("y0", 0, 100, 4, 32), loc("y1", 0, 104, 3, 32)])
    out = Machine(prog).run({"x": x}).outputs
    assert np.array_equal(out["y0"], x @ w0)
    assert np.array_equal(out["y1"], x[:, :6] @ w1)


def test_mlp_batch_360_is_exact_and_fast():
    prog, reference = mlp_program()
    x = np.random.default_rng(1).integers(-128, 128, (360, 64))
    m = Machine(prog)
    t = time.perf_counter()
    res = m.run({"x": x})
    assert time.perf_counter() - t < 1.0
    assert np.array_equal(res.outputs["y"], reference(x))
    assert res.stats.batch == 360 and res.stats.dynamic_instructions == 21


@pytest.mark.parametrize("enc", [0, 1])
def test_split_of_clip_prone_and_safe_bit_lines(enc: int) -> None:
    """A 5-bit ADC on 96 rows: the columns of a few unit weights can never clip, the others can. The MVM takes the
    safe bit lines as one product and only the others digit by digit (`MvmStack._split`); it equals the naive
    loop (two's complement digits) and the full digit path with the split turned off (CSD digits too)."""
    from runtime.handlers import MvmPlan

    rng = np.random.default_rng(11 + enc)
    r, wbits, ibits, adc = 96, 8, 8, 5
    w = np.zeros((r, 10), dtype=np.int64)
    for col in range(6):  # at most 8 cells of level 1 per line: within the ADC's [-16, 15]
        w[rng.choice(r, 8, replace=False), col] = rng.choice([-1, 1], 8)
    w[:, 6:] = rng.integers(-nx.qmax(wbits), nx.qmax(wbits) + 1, (r, 4))  # these columns' lines may clip
    x = rng.integers(nx.qmin(ibits), nx.qmax(ibits) + 1, (5, r))
    code = [I("load", HW.mvmu_in(0), M(0), r), I("mvm", 1, ibits, adc, 0, 64, enc, -1),
            I("store", M(200), HW.mvmu_out(0), 10, 0), I("halt")]
    prog = program({(0, 0): code}, mvmus=[MvmuImage(0, 0, 0, w, wbits)], inputs=[loc("x", 0, 0, r, 32)],
                   outputs=[loc("y", 0, 200, 10, 64)])
    m = Machine(prog)
    got = m.run({"x": x}).outputs["y"]
    plan = next(p for _, p, _ in m._compiled[0].code if isinstance(p, MvmPlan))
    st = plan.stack.get()
    assert st.split is not None and st.split[1] is not None and np.abs(st.split[0]).sum() > 0  # both kinds
    if not enc:
        assert np.array_equal(got, naive_mvm(w, x, wbits, ibits, adc, 0, 64))
    st.split = None  # the full digit path
    whole = m.run({"x": x}).outputs["y"]
    assert np.array_equal(whole, got)
    assert not np.array_equal(got, x @ w)  # some conversions really clip
