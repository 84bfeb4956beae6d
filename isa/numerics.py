"""Numeric primitives that define instruction semantics (docs/semantics.md).

All functions take and return int64 numpy arrays (or Python ints where noted) and are exact. The compiler's
functional model and the runtime both build on these; the layer-level computation is written twice on purpose.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

I64 = np.int64


def qmin(bits: int) -> int:
    """Smallest value of a signed ``bits``-bit integer."""
    return -(1 << (bits - 1))


def qmax(bits: int) -> int:
    """Largest value of a signed ``bits``-bit integer."""
    return (1 << (bits - 1)) - 1


_BOUNDS = {b: (I64(-(1 << (b - 1))), I64((1 << (b - 1)) - 1)) for b in range(1, 64)}  # saturate's, as int64


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """Clip to the signed ``bits``-bit range (rule SAT). (min/max on cached int64 bounds: np.clip with Python
    ints costs a type-limits lookup per call, a fifth of the runtime's time.)"""
    x = np.asarray(x, dtype=I64)
    if bits >= 64:
        return x
    lo, hi = _BOUNDS[bits]
    out: Any = np.maximum(x, lo)
    if not isinstance(out, np.ndarray):  # a 0-d input gives a numpy scalar
        return np.minimum(out, hi)  # type: ignore[no-any-return]
    np.minimum(out, hi, out=out)
    return out


def narrowest_int(x: np.ndarray) -> type:
    """The narrowest signed numpy integer type holding every value of ``x`` (int8 .. int64)."""
    lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
    for t in (np.int8, np.int16, np.int32):
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return t
    return np.int64


def rshift_round(x: np.ndarray, shift: int) -> np.ndarray:
    """Arithmetic right shift by ``shift`` rounding half up: floor(x / 2^s + 1/2); a negative shift is a left
    shift (rule ROUND). Example: rshift_round(-6, 2) = floor(-1.5 + 0.5) = -1; rshift_round(6, 2) = 2."""
    x = np.asarray(x, dtype=I64)
    if shift > 0:
        down: np.ndarray = (x + (I64(1) << I64(shift - 1))) >> I64(shift)
        return down
    if shift < 0:
        lim = I64((1 << (63 + shift)) - 1)  # saturate instead of wrapping when the left shift would overflow int64
        up: np.ndarray = np.minimum(np.maximum(x, -lim), lim) << I64(-shift)
        return up
    return x


def requantize(x: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """rshift_round then saturate: the ``rqnt`` instruction and every change of fixed-point format."""
    return saturate(rshift_round(x, shift), bits)


def quantize(x: np.ndarray, bits: int, frac: int) -> np.ndarray:
    """Real values to signed Q(bits, frac) integers: sat(floor(x * 2^frac + 1/2)) (rule QUANT)."""
    lo, hi = float(qmin(bits)), float(qmax(bits))
    if np.ndim(x) == 0:
        one: np.ndarray = np.clip(np.floor(np.float64(x) * np.float64(2.0**frac) + 0.5), lo, hi).astype(I64)
        return one
    scaled = np.asarray(x, dtype=np.float64) * np.float64(2.0**frac)  # one float64 temporary, updated in place
    scaled += 0.5
    np.floor(scaled, out=scaled)
    np.clip(scaled, lo, hi, out=scaled)
    return scaled.astype(I64)


def quantize_weights(w: np.ndarray, bits: int, frac: int) -> np.ndarray:
    """Weights to Q(bits, frac) with a symmetric range [-(2^(b-1)-1), 2^(b-1)-1], so the magnitude fits in
    bits-1 bits on the (+)/(-) crossbar pair (rule WEIGHTS)."""
    q = quantize(w, bits, frac)
    out: np.ndarray = np.maximum(q, I64(-qmax(bits)), out=q if q.ndim else None)
    return out


def dequantize(q: np.ndarray, frac: int) -> np.ndarray:
    """Q(., frac) integers to float64 values."""
    return np.asarray(q, dtype=np.float64) / np.float64(2.0**frac)


def input_digits(q: np.ndarray, bits: int, encoding: str = "twos") -> tuple[np.ndarray, np.ndarray]:
    """Bit-serial digits of ``q`` (rule INPUT): two's complement, or canonic signed digits with ``"csd"``
    (digits in {-1, 0, 1} driven as -V/0/+V, all significances positive: `csd_digits`).

    Returns (digits, weights): digits has shape (bits,) + q.shape; for two's complement the values are in {0, 1}
    (digit j is bit j of q mod 2^bits, the value the 1-bit DAC drives in step j) and weights[j], the digit's
    signed significance, is 2^j for j < bits-1 and -2^(bits-1) for the sign digit; for CSD the values are in
    {-1, 0, 1} and weights[j] = 2^j. sum_j weights[j] * digits[j] == q for in-range q.
    """
    if encoding == "csd":
        return csd_digits(q, bits), np.array([1 << j for j in range(bits)], dtype=I64)
    u = np.asarray(q, dtype=I64) & I64((1 << bits) - 1)
    js = np.arange(bits, dtype=I64).reshape((bits,) + (1,) * u.ndim)
    digits = (u[None] >> js) & I64(1)
    weights = np.array([1 << j for j in range(bits)], dtype=I64)
    weights[bits - 1] = -(1 << (bits - 1))
    return digits, weights


WEIGHT_ENCODINGS = ("twos", "sce", "tc")
INPUT_ENCODINGS = ("twos", "csd")


def weight_slices(w: np.ndarray, bits: int, cell_bits: int,
                  encoding: str = "twos") -> tuple[np.ndarray, np.ndarray]:
    """Split signed weights into cell slices of the (+) and (-) crossbars (rules WEIGHTS and SCE).

    Returns (pos, neg), each of shape (S,) + w.shape with S = `n_slices` and values in [0, 2^cell_bits - 1];
    w == sum_s 2^(cell_bits*s) * (pos[s] - neg[s]). Plain ("twos") encoding puts the magnitude bits of positive
    weights on the (+) crossbar and of negative weights on the (-) crossbar. "sce" (segmented compression
    encoding, seed 002) encodes each magnitude's sub-words from the least significant: a sub-word (plus the
    incoming carry) above half range, d > 2^(cell_bits-1), becomes d - 2^cell_bits -- its magnitude goes to the
    opposite crossbar -- and carries 1 into the next sub-word. "tc" (two's complement, rule TC) stores
    ``q mod 2^(bits-1)`` on the (+) crossbars and only the sign bit, of weight -2^(bits-1), on the (-) crossbar
    of the top slice: one crossbar per slice plus one sign line per column, as single-array designs store it.
    """
    w = np.asarray(w, dtype=I64)
    if encoding == "tc":
        return _tc_slices(w, bits, cell_bits)
    digits = signed_subwords(np.abs(w), bits, cell_bits, encoding)       # (S,) + w.shape, of |w|
    signed = digits * np.sign(w)[None]
    return np.maximum(signed, 0), np.maximum(-signed, 0)


def _tc_slices(w: np.ndarray, bits: int, cell_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Rule TC: (+) slices of the low bits of two's complement, the sign bit on the (-) top slice."""
    count = n_slices(bits, cell_bits, "tc")
    sign = (w < 0).astype(I64)
    low = w + (sign << I64(bits - 1))  # q mod 2^(bits-1): the bits-1 low bits of q's two's complement
    shifts = (cell_bits * np.arange(count, dtype=I64)).reshape((count,) + (1,) * w.ndim)
    pos = (low[None] >> shifts) & I64((1 << cell_bits) - 1)
    neg = np.zeros_like(pos)
    top, offset = divmod(bits - 1, cell_bits)
    neg[top] = sign << I64(offset)
    return pos, neg


MAX_TABLE_BITS = 12  # `value_slices` / `column_histogram` tables up to 4,095 values: wider weights slice each cell


def value_slices(bits: int, cell_bits: int, encoding: str = "twos") -> tuple[np.ndarray, np.ndarray]:
    """`weight_slices` of every weight value -qmax(bits)..qmax(bits): (pos, neg), each (S, V) with value v at
    index v + qmax(bits). With `column_histogram`, a sum over a block's cells of any function of their slices is
    a product of the block's per-column value counts and a (V, .) table, without slicing the cells."""
    q = qmax(bits)
    return weight_slices(np.arange(-q, q + 1, dtype=I64), bits, cell_bits, encoding)


def column_histogram(w: np.ndarray, bits: int) -> np.ndarray:
    """(..., C, V) int64: per column of the integer blocks ``w`` (..., R, C), how many of its cells hold each
    value -qmax(bits)..qmax(bits) (index v + qmax(bits)); ValueError if a value lies outside that range."""
    w = np.asarray(w)
    q, c = qmax(bits), w.shape[-1]
    if w.size and (int(w.min()) < -q or int(w.max()) > q):
        raise ValueError(f"column_histogram: values outside [-{q}, {q}]")
    v = 2 * q + 1
    lead = int(np.prod(w.shape[:-2], dtype=np.int64))
    idx = w.reshape(lead, -1, c).astype(I64) + I64(q)
    idx += (np.arange(lead, dtype=I64).reshape(lead, 1, 1) * c + np.arange(c, dtype=I64)) * I64(v)
    hist: np.ndarray = np.bincount(idx.reshape(-1), minlength=lead * c * v).reshape(w.shape[:-2] + (c, v))
    return hist


def signed_subwords(mag: np.ndarray, bits: int, cell_bits: int, encoding: str = "twos") -> np.ndarray:
    """Sub-word digits of non-negative magnitudes (plain: the cell_bits-bit groups; SCE: see `weight_slices`)."""
    mag = np.asarray(mag, dtype=I64)
    count = n_slices(bits, cell_bits, encoding)
    cell_mask, half = I64((1 << cell_bits) - 1), 1 << (cell_bits - 1)
    out = np.zeros((count,) + mag.shape, dtype=I64)
    carry = np.zeros(mag.shape, dtype=I64)
    for s in range(count):
        d = ((mag >> I64(cell_bits * s)) & cell_mask) + carry
        if encoding == "sce":
            carry = (d > half).astype(I64)
            d = d - (carry << I64(cell_bits))
        out[s] = d
    return out


def n_slices(bits: int, cell_bits: int, encoding: str = "twos") -> int:
    """Slices of a ``bits``-bit signed weight (its bits-1 magnitude bits); SCE needs one more when the top slice
    is full, since its carry can overflow; TC when the sign bit (bit bits-1) starts a slice of its own."""
    plain = max(1, -(-(bits - 1) // cell_bits))
    if encoding == "tc":
        return (bits - 1) // cell_bits + 1
    return plain + (1 if encoding == "sce" and cell_bits > 1 and (bits - 1) % cell_bits == 0 else 0)


def csd_digits(q: np.ndarray, bits: int) -> np.ndarray:
    """Canonic signed digits (non-adjacent form) of signed integers (rule CSD): shape (bits,) + q.shape, values
    in {-1, 0, 1}, digit j of significance +2^j, no two adjacent digits non-zero. ``bits`` digits suffice for
    every q in [-2^(bits-1), 2^(bits-1) - 1]. Digit j is bit j+1 of 3q minus bit j+1 of q (two's complement):
    the NAF, which is unique (the same digits as the right-to-left recoding: d = 2 - (q mod 4) for odd q)."""
    q = np.asarray(q, dtype=I64)
    js = np.arange(1, bits + 1, dtype=I64).reshape((bits,) + (1,) * q.ndim)
    return (((I64(3) * q)[None] >> js) & I64(1)) - ((q[None] >> js) & I64(1))


def nonzero_digits(q: np.ndarray, bits: int, encoding: str = "twos") -> np.ndarray:
    """Non-zero input digits per value (the DAC pulses it takes): popcount of the two's-complement bits, or the
    CSD weight popcount(((3a) ^ a) >> 1) of a = |q|."""
    q = np.asarray(q, dtype=I64)
    if encoding == "csd":
        a = np.abs(q)
        csd: np.ndarray = np.bitwise_count(((I64(3) * a) ^ a) >> I64(1)).astype(I64)
        return csd
    twos: np.ndarray = np.bitwise_count(q & I64((1 << bits) - 1)).astype(I64)
    return twos


def skipped(ibits: int, slices: "int | Sequence[int]", cell_bits: int, threshold: int) -> np.ndarray:
    """(ibits, slices) mask of the conversions dynamic quantization skips: significance j + cell_bits*s at or
    under ``threshold`` (rule SKIP; a negative threshold skips nothing). ``slices`` is a slice count or the
    significance indices of the converted slices (hollow-aware MVMUs leave some out)."""
    ids = np.arange(slices) if isinstance(slices, int) else np.asarray(slices, dtype=I64)
    sig = np.arange(ibits)[:, None] + cell_bits * ids[None, :]
    return sig <= threshold


def adc_convert(v: np.ndarray, bits: int) -> np.ndarray:
    """A signed ``bits``-bit ADC: the bit-line value clipped to [-2^(bits-1), 2^(bits-1)-1] (rule ADC)."""
    return np.clip(np.asarray(v, dtype=I64), qmin(bits), qmax(bits))


def sigmoid_q(x: np.ndarray, frac: int) -> np.ndarray:
    """Q(., frac) sigmoid: floor(sigmoid(x / 2^f) * 2^f + 1/2), evaluated in float64 (rule ACT)."""
    xf = np.asarray(x, dtype=np.float64) / np.float64(2.0**frac)
    y = 0.5 * (1.0 + np.tanh(0.5 * xf))
    return np.floor(y * np.float64(2.0**frac) + 0.5).astype(I64)


def tanh_q(x: np.ndarray, frac: int) -> np.ndarray:
    """Q(., frac) tanh: floor(tanh(x / 2^f) * 2^f + 1/2), evaluated in float64 (rule ACT)."""
    xf = np.asarray(x, dtype=np.float64) / np.float64(2.0**frac)
    return np.floor(np.tanh(xf) * np.float64(2.0**frac) + 0.5).astype(I64)


def mul_q(a: np.ndarray, b: np.ndarray | np.int64, frac: int, bits: int) -> np.ndarray:
    """Fixed-point product: sat_bits(rshift_round(a * b, frac)) (rule MUL)."""
    return requantize(np.asarray(a, dtype=I64) * np.asarray(b, dtype=I64), frac, bits)
