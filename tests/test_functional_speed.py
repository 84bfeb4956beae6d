"""The functional model's fast crossbar path (digits per input value before im2col, folded non-clipping slices,
skipped conversions left out, float products under proven bounds) against rule MVM computed directly in int64
on the im2col rows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from compiler.ir import Op
from compiler.ir.graph import conv_out_size
from compiler.quant import functional
from compiler.quant.functional import QuantizedLayer, crossbar_layer
from compiler.quant.precision import LayerPrecision
from compiler.quant.windows import im2col
from isa import numerics as nx
from isa.hardware import HardwareConfig, load_hardware

HW = load_hardware(None)
OP = Op("conv", "c", ["x"], ["y"], attrs={"kernel": (5, 5), "strides": (2, 1), "pads": (2, 1, 2, 1),
                                          "dilations": (1, 1)})
OHW = (conv_out_size(9, 5, 2, 2, 2), conv_out_size(8, 5, 1, 1, 1))


def _reference(rows: np.ndarray, q: QuantizedLayer, p: LayerPrecision, seen: list[int],
               hw: HardwareConfig = HW) -> np.ndarray:
    """Rule MVM per (digit, slice) in int64 for every row block, then ACC and BIAS; bit-line values go to seen."""
    cb, acc = hw.cell_bits, None
    for r0 in range(0, q.weight.shape[0], hw.xbar_rows):
        x, w = rows[:, r0:r0 + hw.xbar_rows], q.weight[r0:r0 + hw.xbar_rows]
        digits, sig = nx.input_digits(x, p.in_bits, p.in_enc)
        pos, neg = nx.weight_slices(w, p.w_bits, cb, p.w_enc)
        skip = nx.skipped(p.in_bits, len(pos), cb, p.skip)
        part = np.zeros((len(x), w.shape[1]), dtype=np.int64)
        for j in range(p.in_bits):
            for s in range(len(pos)):
                v = digits[j] @ (pos[s] - neg[s])
                seen.extend(v.ravel().tolist())
                if not skip[j, s]:
                    part += int(sig[j]) * (1 << (cb * s)) * nx.adc_convert(v, p.adc_bits)
        out = nx.requantize(part, p.mvm_shift, p.acc_bits)
        acc = out if acc is None else nx.saturate(acc + out, p.acc_bits)
    assert acc is not None
    return nx.saturate(acc + q.bias, p.acc_bits)


def _case(in_bits: int, w_bits: int, c_in: int, seed: int, shifts: bool = True) -> tuple[np.ndarray, QuantizedLayer]:
    rng = np.random.default_rng(seed)
    x = rng.integers(nx.qmin(in_bits), nx.qmax(in_bits) + 1, (3, 9, 8, c_in))
    x[:, :, :2] = 0                                                     # some all-zero digits, some not
    w = rng.integers(-nx.qmax(w_bits), nx.qmax(w_bits) + 1, (25 * c_in, 5))
    w >>= rng.integers(0, w_bits, (1, 5)) * shifts                   # columns of different magnitudes
    return x, QuantizedLayer(w, rng.integers(-1000, 1000, 5))


@pytest.mark.parametrize("in_enc", ["twos", "csd"])
@pytest.mark.parametrize("w_enc", ["twos", "sce", "tc"])
@pytest.mark.parametrize(("in_bits", "w_bits", "adc", "skip"),
                         [(4, 4, 2, -1), (8, 8, 4, 3), (8, 16, 6, -1), (16, 16, 10, 8), (16, 8, 5, 14),
                          (16, 16, 30, -1), (32, 16, 7, 20)])
def test_conv_matches_rule_mvm(in_enc: str, w_enc: str, in_bits: int, w_bits: int, adc: int, skip: int) -> None:
    x, q = _case(in_bits, w_bits, 6, in_bits + w_bits + adc)             # 150 rows: two blocks
    p = LayerPrecision(w_bits, w_bits - 2, in_bits, in_bits - 2, 32, in_bits - 3, adc, w_enc=w_enc,
                       in_enc=in_enc, skip=skip)
    want = _reference(im2col(x, OP, OHW), q, p, [])
    got = crossbar_layer(x, q, p, HW, (OP, OHW))
    assert got.dtype == np.int64 and got.flags.c_contiguous and np.array_equal(got, want)
    assert np.array_equal(crossbar_layer(im2col(x, OP, OHW), q, p, HW), want)     # rows path, same numbers


@pytest.mark.parametrize("in_enc", ["twos", "csd"])
@pytest.mark.parametrize(("in_bits", "adc", "skip", "f32", "wide"),
                         [(16, 30, 0, False, False), (32, 30, -1, False, True), (32, 9, -1, True, True)])
def test_wide_blocks(in_enc: str, in_bits: int, adc: int, skip: int, f32: bool, wide: bool) -> None:
    """1500-row blocks of full-scale 16-bit weights: the folded digit sums need float64 (> 2^24), the sum over
    32 digits int64 (>= 2^53), and with 32-bit inputs the integer product is not provably exact in float64."""
    hw = replace(HW, xbar_rows=2048)
    x, q = _case(in_bits, 16, 60, in_bits + adc, shifts=False)
    p = LayerPrecision(16, 14, in_bits, in_bits - 2, 32, 0, adc, in_enc=in_enc, skip=skip)
    blk = functional.prepare_block(q.weight, p, hw.cell_bits)
    assert (blk.exact, blk.f32, blk.wide) == (False, f32, wide)
    assert np.array_equal(crossbar_layer(x, q, p, hw, (OP, OHW)), _reference(im2col(x, OP, OHW), q, p, [], hw))


@pytest.mark.parametrize("in_enc", ["twos", "csd"])
def test_probe_sees_every_conversion(in_enc: str) -> None:
    x, q = _case(8, 8, 6, 1)
    p = LayerPrecision(8, 6, 8, 6, 32, 5, 5, in_enc=in_enc, skip=4)
    seen: list[int] = []
    want = _reference(im2col(x, OP, OHW), q, p, seen)
    got: list[np.ndarray] = []
    functional.set_bitline_probe(lambda _name, v: got.append(v.astype(np.int64).ravel()))
    try:
        out = crossbar_layer(x, q, p, HW, (OP, OHW))
    finally:
        functional.set_bitline_probe(None)
    assert np.array_equal(out, want)
    assert np.array_equal(np.sort(np.concatenate(got)), np.sort(np.array(seen)))


@pytest.mark.parametrize("encoding", ["twos", "sce", "tc"])
@pytest.mark.parametrize("cell_bits", [1, 2, 3, 4, 6, 7])
@pytest.mark.parametrize("bits", [2, 4, 8, 9, 12, 13, 17])
def test_slice_differences_equal_int64_slices(encoding: str, cell_bits: int, bits: int) -> None:
    """The table-gathered int8 slicing the prepared blocks use (and its cell-by-cell fallback for wide weights
    or cells) equals `weight_slices`' pos - neg, value for value, on every weight value of the width (small
    widths) or random ones, given in the narrowest integer type and in int64."""
    q = nx.qmax(bits)
    rng = np.random.default_rng(bits * 10 + cell_bits)
    w = np.arange(-q, q + 1) if q < 5000 else rng.integers(-q, q + 1, 5000)
    w = np.concatenate([w, [-q, q, 0]]).reshape(-1, 1)
    pos, neg = nx.weight_slices(w, bits, cell_bits, encoding)
    for arr in (w.astype(nx.narrowest_int(w)), w.astype(np.int64)):
        got = functional.slice_differences(arr, bits, cell_bits, encoding)
        assert got.shape == pos.shape
        np.testing.assert_array_equal(got.astype(np.int64), pos - neg)
