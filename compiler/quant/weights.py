"""Weight quantizers beyond uniform Q(bits, frac) that still produce integers on a fixed-point grid.

The crossbar multiplies signed integers whose magnitudes are sliced into ``cell_bits`` cells (rule WEIGHTS in
``isa/numerics.py``). Every quantizer here therefore ends with integers on a grid Q(grid_bits, grid_frac) with
|q| <= 2^(grid_bits-1) - 1, so the hardware path (slicing, (+)/(-) crossbars, shift-and-add) is unchanged; only
the *set of values* the integers can take differs.

Two families:

* **Nonuniform codebook** (Yan, Ahn, Duan, CASES'17, "Enabling NVM-based deep learning acceleration using
  nonuniform data quantization"): levels placed by equal-area cuts of the importance function g(x)|x|^k,
  where g is the weight density (:func:`nonuniform_levels`, :func:`quantize_nonuniform`, :func:`search_k`).
  The code needs only bw+1 bits, but the levels are arbitrary reals, so on the crossbar they cost
  :func:`min_grid_bits` weight bits (slices) to stay distinct.
* **Varied per-output-channel schemes** (IVQ: "In-memory acceleration of DNN inference exploiting varied
  quantization"): each output column gets its own scheme (uniform with fewer bits, power-of-two, additive
  powers-of-two, codebook), but all columns share one grid so bits of equal magnitude align on one bit line.
  Columns with coarse schemes leave whole bit positions zero ("hollows", :func:`hollow_fraction`).

All functions are pure numpy, deterministic and exact where they touch integers (rounding is the project's
round-half-up ``floor(x * 2^f + 1/2)`` with symmetric saturation, ``isa.numerics.quantize_weights``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from isa.numerics import I64, n_slices, qmax, quantize_weights

__all__ = ["nonuniform_levels", "snap_to_levels", "grid_frac_for", "levels_on_grid", "min_grid_bits",
           "quantize_nonuniform", "search_k", "scheme_levels", "quantize_channel", "quantize_varied",
           "hollow_fraction", "SCHEMES"]

#: The per-channel schemes understood by :func:`quantize_channel`.
SCHEMES = ("uniform", "pot", "apot", "codebook")

_FRAC_MIN, _FRAC_MAX = -16, 62  # same clamp as compiler.quant.precision.frac_for


# ----------------------------------------------------------------------------------------------------------
# Nonuniform codebook (seed 001)
# ----------------------------------------------------------------------------------------------------------

def _prim(x: np.ndarray, k: float) -> np.ndarray:
    """An antiderivative of |x|^k: P(x) = sign(x) |x|^(k+1) / (k+1) (increasing, P(0) = 0)."""
    return np.sign(x) * np.abs(x) ** (k + 1.0) / (k + 1.0)


def _prim_inv(y: np.ndarray, k: float) -> np.ndarray:
    """Inverse of :func:`_prim`."""
    return np.sign(y) * (np.abs(y) * (k + 1.0)) ** (1.0 / (k + 1.0))


def nonuniform_levels(w: np.ndarray, bw: int, k: float, bins: int = 2048) -> np.ndarray:
    """Quantization levels of the nonuniform scheme of Yan/Ahn/Duan (CASES'17), sorted ascending.

    ``bw`` is the bit width *not* counting the sign (seed: bw = 2 gives 9 regions). With M = max|w|:

    1. g is the histogram density of ``w`` over [-M, M] with ``bins`` equal bins (``np.histogram``; the last
       bin includes x = M). Inside a bin, g is taken as constant (piecewise-constant density).
    2. The importance is g(x) |x|^k (k >= 0). Its cumulative area A(x) = int_{-M}^{x} g(t)|t|^k dt is computed
       *exactly* for the piecewise-constant g: inside bin j, A(x) = A(e_j) + g_j (P(x) - P(e_j)) with
       P(x) = sign(x)|x|^(k+1)/(k+1). (For k = 0 this is the linear interpolation of the cumulative area.)
    3. The total area T is cut into n = 2^(bw+1) + 1 regions of equal area; region i spans A in
       [i T/n, (i+1) T/n]. Each region's level is its half-area point A^-1((i + 1/2) T / n), inverted exactly
       within the bin by the formula of step 2 (the first bin where A reaches the target, so flat stretches
       of A -- empty bins -- never hold a level).
    4. The region containing x = 0, i.e. i0 = min(n-1, floor(n A(0) / T)), has its level forced to exactly 0.
       For a symmetric distribution this is the middle region i0 = 2^bw.

    The computation is done on w / M (the levels scale exactly with M). Duplicated levels (degenerate
    histograms) are removed with ``np.unique``, which keeps the 0; so the result has at most n entries, always
    contains 0.0, and lies in [-M, M]. All-zero ``w`` gives ``[0.0]``.

    Example: w uniform on [-1, 1], bw = 1 (n = 5), k = 0: A(x) = (x+1)/2, half-area points at A = .1, .3, .7,
    .9 give x = -0.8, -0.4, 0.4, 0.8, and the middle level is 0. With k = 1, A(x) = (1 - x^2)/2 for x < 0
    and (1 + x^2)/2 for x > 0, so the levels are -sqrt(.8), -sqrt(.4), 0, sqrt(.4), sqrt(.8).
    """
    w = np.asarray(w, dtype=np.float64).ravel()
    if bw < 0:
        raise ValueError(f"bw must be >= 0, got {bw}")
    if not (math.isfinite(k) and k >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if w.size == 0 or not np.all(np.isfinite(w)):
        raise ValueError("w must be a non-empty array of finite values")
    big_m = float(np.max(np.abs(w)))
    if big_m == 0.0:
        return np.zeros(1)
    u = w / big_m
    edges = np.linspace(-1.0, 1.0, bins + 1)
    counts, _ = np.histogram(u, bins=edges)
    dens = counts / (u.size * (2.0 / bins))                    # histogram density g_j
    p_edges = _prim(edges, k)
    cum = np.concatenate([[0.0], np.cumsum(dens * np.diff(p_edges))])   # A(e_j), non-decreasing
    total = float(cum[-1])
    n_reg = (1 << (bw + 1)) + 1
    targets = (np.arange(n_reg) + 0.5) / n_reg * total
    j = np.searchsorted(cum, targets, side="left") - 1           # cum[j] < t <= cum[j+1], so dens[j] > 0
    j = np.clip(j, 0, bins - 1)
    y = p_edges[j] + (targets - cum[j]) / dens[j]
    levels = np.clip(_prim_inv(y, k), edges[j], edges[j + 1])
    a0 = float(np.sum(dens * np.diff(_prim(np.minimum(edges, 0.0), k))))   # A(0)
    i0 = min(n_reg - 1, int(math.floor(n_reg * a0 / total)))
    levels[i0] = 0.0
    return np.unique(levels * big_m + 0.0)                        # + 0.0 turns -0.0 into 0.0


def _snap_index(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index into sorted unique ``levels`` of the nearest level to each x (tie rules of snap_to_levels)."""
    hi = np.clip(np.searchsorted(levels, x, side="left"), 0, levels.size - 1)
    lo = np.clip(hi - 1, 0, levels.size - 1)
    d_lo, d_hi = np.abs(x - levels[lo]), np.abs(levels[hi] - x)
    a_lo, a_hi = np.abs(levels[lo]), np.abs(levels[hi])
    # strictly nearer wins; on a distance tie the smaller magnitude wins; on a magnitude tie too (only x = 0
    # between -a and +a) the larger (non-negative) level wins.
    take_lo = (d_lo < d_hi) | ((d_lo == d_hi) & (a_lo < a_hi))
    return np.where(take_lo, lo, hi)


def _sorted_levels(levels: np.ndarray) -> np.ndarray:
    lv = np.unique(np.asarray(levels, dtype=np.float64).ravel())
    if lv.size == 0 or not np.all(np.isfinite(lv)):
        raise ValueError("levels must be a non-empty array of finite values")
    return lv


def snap_to_levels(w: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each weight replaced by its nearest level (same shape as ``w``, float64).

    Distances are compared in float64. Ties (a weight exactly halfway between two levels) go to the level of
    smaller magnitude; the only remaining tie, x = 0 exactly between -a and +a (a level set without 0), goes
    to +a. Weights outside [min(levels), max(levels)] saturate to the end levels. ``levels`` need not be
    sorted or unique.
    """
    lv = _sorted_levels(levels)
    x = np.asarray(w, dtype=np.float64)
    return lv[_snap_index(x, lv)]


def grid_frac_for(max_abs: float, grid_bits: int) -> int:
    """Largest f in [-16, 62] with max_abs * 2^f <= 2^(grid_bits-1) - 1, i.e.
    f = floor(log2((2^(grid_bits-1) - 1) / max_abs)), checked exactly (no log2 rounding error at powers of
    two); ``grid_bits - 1`` when max_abs <= 0. Agrees with ``compiler.quant.precision.frac_for``."""
    top = qmax(grid_bits)
    if not (max_abs > 0) or not math.isfinite(max_abs):
        return min(_FRAC_MAX, grid_bits - 1)
    # log2(max_abs) via frexp, so subnormal max_abs (top / max_abs = inf) is fine; then an exact correction
    mant, ex = math.frexp(max_abs)
    f = max(_FRAC_MIN - 1, min(_FRAC_MAX + 1, math.floor(math.log2(top) - math.log2(mant) - ex)))
    while f >= _FRAC_MIN and math.ldexp(max_abs, f) > top:
        f -= 1
    while f <= _FRAC_MAX and math.ldexp(max_abs, f + 1) <= top:
        f += 1
    return max(_FRAC_MIN, min(_FRAC_MAX, f))


def levels_on_grid(levels: np.ndarray, grid_bits: int, max_abs: float = 0.0) -> tuple[int, np.ndarray]:
    """Put float levels on the grid Q(grid_bits, f): returns (f, integer levels).

    f = :func:`grid_frac_for`(R, grid_bits) with R = max(max_abs, max|levels|): pass ``max_abs = 0`` for the
    finest grid that holds the levels, or a layer's max|w| to share that layer's grid. The integer levels are
    ``quantize_weights(levels, grid_bits, f)`` = sat(floor(level * 2^f + 1/2)) (round half up, symmetric
    saturation), element by element in the order of ``levels`` (not deduplicated, so index i of the result is
    the image of levels[i]).

    What it costs: distinct float levels can collide on a coarse grid. The crossbar needs
    :func:`min_grid_bits`(levels) weight bits (i.e. ceil((that - 1) / cell_bits) slices) to keep them distinct,
    although the code itself needs only bw + 1 bits.
    """
    if grid_bits < 2:
        raise ValueError(f"grid_bits must be >= 2, got {grid_bits}")
    lv = np.asarray(levels, dtype=np.float64)
    if lv.size == 0 or not np.all(np.isfinite(lv)):
        raise ValueError("levels must be a non-empty array of finite values")
    rng = max(float(max_abs), float(np.max(np.abs(lv))))
    f = grid_frac_for(rng, grid_bits)
    return f, quantize_weights(lv, grid_bits, f)


def min_grid_bits(levels: np.ndarray) -> int:
    """Smallest grid_bits in [2, 16] for which :func:`levels_on_grid`(levels, grid_bits) (own range) maps the
    distinct float levels to distinct integers; 16 if none does. E.g. [0, 0.1, 1.0] needs 5 bits
    (f = 3: 0, 1, 8; with 4 bits f = 2 gives 0, 0, 4)."""
    lv = _sorted_levels(levels)
    for gb in range(2, 17):
        _, q = levels_on_grid(lv, gb)
        if np.unique(q).size == lv.size:
            return gb
    return 16


def quantize_nonuniform(w: np.ndarray, bw: int, k: float, grid_bits: int,
                        bins: int = 2048) -> tuple[np.ndarray, int]:
    """Nonuniform quantization of a weight tensor onto a crossbar grid: returns (integer weights, grid frac).

    Levels from :func:`nonuniform_levels`(w, bw, k, bins); each weight snapped to its nearest level
    (:func:`snap_to_levels`); the levels put on the finest grid Q(grid_bits, f) that holds them
    (:func:`levels_on_grid` with max_abs = 0). The returned integers are exactly the grid images of the snapped
    levels (dequantize(q, f) == snapped level up to the grid's rounding), shape of ``w``, int64.
    """
    w = np.asarray(w, dtype=np.float64)
    lv = nonuniform_levels(w, bw, k, bins)
    f, q_lv = levels_on_grid(lv, grid_bits, 0.0)
    return q_lv[_snap_index(w, lv)].astype(I64), f


def search_k(w: np.ndarray, bw: int, grid_bits: int, evaluate: Callable[[np.ndarray, int], float],
             ks: Iterable[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)) -> tuple[float, float]:
    """Pick the importance exponent k (seed 001: "we test different values of k and pick the one that gives
    the highest model accuracy").

    For each k in ``ks`` (in the given order) calls ``evaluate(q, frac)`` with
    ``q, frac = quantize_nonuniform(w, bw, k, grid_bits)``; ``evaluate`` returns a score, higher is better
    (e.g. held-out accuracy). Returns (best k, best score); among equal scores the smaller k wins; a NaN score
    never wins over a number (if all are NaN the smallest k is returned with NaN).
    """
    ks = [float(k) for k in ks]
    if not ks:
        raise ValueError("ks must not be empty")
    best_k, best_s = None, None
    for k in ks:
        q, f = quantize_nonuniform(w, bw, k, grid_bits)
        s = float(evaluate(q, f))
        if best_k is None:
            best_k, best_s = k, s
            continue
        s_key = -math.inf if math.isnan(s) else s
        b_key = -math.inf if math.isnan(best_s) else best_s
        if s_key > b_key or (s_key == b_key and k < best_k):
            best_k, best_s = k, s
    return best_k, best_s


# ----------------------------------------------------------------------------------------------------------
# Varied per-channel schemes on a common grid (seed 003, IVQ)
# ----------------------------------------------------------------------------------------------------------

def _scheme_bits(scheme: dict[str, Any], grid_bits: int) -> tuple[str, int]:
    if not isinstance(scheme, dict) or scheme.get("scheme") not in SCHEMES:
        raise ValueError(f"scheme must be a dict with 'scheme' in {SCHEMES}, got {scheme!r}")
    if grid_bits < 2:
        raise ValueError(f"grid_bits must be >= 2, got {grid_bits}")
    name = scheme["scheme"]
    if "bits" not in scheme:
        raise ValueError(f"scheme {scheme!r} has no 'bits'")
    b = int(scheme["bits"])
    lo = 1 if name == "codebook" else 2
    if not lo <= b <= grid_bits:
        raise ValueError(f"{name} bits must be in [{lo}, grid_bits={grid_bits}], got {b}")
    return name, b


def _uniform_exponent(x_max: float, b: int, grid_bits: int) -> int:
    """Smallest e in [0, grid_bits - b] with x_max <= (2^(b-1)-1) * 2^e (x_max in grid units)."""
    top = qmax(b)
    e = 0
    while e < grid_bits - b and x_max > math.ldexp(top, e):
        e += 1
    return e


def _pot_exponents(b: int, grid_bits: int) -> list[int]:
    """2^(b-1)-1 consecutive exponents ending at e_max = grid_bits - 2 (largest 2^e <= 2^(grid_bits-1)-1),
    keeping only e >= 0 (below the grid's LSB nothing exists)."""
    e_max = grid_bits - 2
    return list(range(max(0, e_max - ((1 << (b - 1)) - 1) + 1), e_max + 1))


def _apot_magnitudes(b: int, grid_bits: int) -> np.ndarray:
    """Magnitudes (grid units) of the two-term additive powers-of-two set, sorted, including 0.

    After Li et al., ICLR'20 (APoT) with n = 2 terms: the m = b-1 magnitude bits are split m0 = ceil(m/2),
    m1 = floor(m/2); term 0 takes a value in {0} U {2^(E-2j) : j = 0 .. 2^m0 - 2}, term 1 in
    {0} U {2^(E-1-2j) : j = 0 .. 2^m1 - 2} (interleaved exponents, so every sum is distinct), and the level is
    their sum: 2^m0 * 2^m1 = 2^(b-1) magnitudes before dropping exponents below 0 (not on the grid). E is the
    largest exponent for which the largest sum fits the grid (<= 2^(grid_bits-1)-1); for grid_bits >= 3 and
    b >= 3 this is E = grid_bits - 2 (top level 3 * 2^(grid_bits-3)). E.g. b = 4, grid_bits = 8: term 0 in
    {0, 64, 16, 4}, term 1 in {0, 32}, magnitudes {0, 4, 16, 32, 36, 48, 64, 96}.
    """
    m = b - 1
    m0, m1 = (m + 1) // 2, m // 2
    top = qmax(grid_bits)
    for e_top in range(grid_bits - 1, -1, -1):
        t0 = [0] + [1 << (e_top - 2 * j) for j in range((1 << m0) - 1) if e_top - 2 * j >= 0]
        t1 = [0] + [1 << (e_top - 1 - 2 * j) for j in range((1 << m1) - 1) if e_top - 1 - 2 * j >= 0]
        mags = np.unique(np.add.outer(np.array(t0, dtype=I64), np.array(t1, dtype=I64)).ravel())
        if int(mags[-1]) <= top:
            return mags
    return np.zeros(1, dtype=I64)  # unreachable for grid_bits >= 2 (e_top = 0 gives {0, 1})


def _symmetric(mags: np.ndarray) -> np.ndarray:
    mags = np.asarray(mags, dtype=I64)
    return np.unique(np.concatenate([-mags, mags]))


def scheme_levels(w_col: np.ndarray, scheme: dict[str, Any], grid_bits: int, grid_frac: int) -> np.ndarray:
    """The sorted int64 values on the grid Q(grid_bits, grid_frac) that :func:`quantize_channel` can produce
    for this column and scheme (its level set; depends on ``w_col`` for "uniform" (the step) and "codebook"
    (the levels))."""
    name, b = _scheme_bits(scheme, grid_bits)
    w_col = np.asarray(w_col, dtype=np.float64).ravel()
    if name == "uniform":
        x_max = float(np.max(np.abs(w_col))) * 2.0 ** grid_frac if w_col.size else 0.0
        e = _uniform_exponent(x_max, b, grid_bits)
        return np.arange(-qmax(b), qmax(b) + 1, dtype=I64) << I64(e)
    if name == "pot":
        return _symmetric([0] + [1 << e for e in _pot_exponents(b, grid_bits)])
    if name == "apot":
        return _symmetric(_apot_magnitudes(b, grid_bits))
    lv = nonuniform_levels(w_col, b - 1, float(scheme.get("k", 1.0)), int(scheme.get("bins", 2048)))
    return np.unique(quantize_weights(lv, grid_bits, grid_frac))


def quantize_channel(w_col: np.ndarray, scheme: dict[str, Any], grid_bits: int, grid_frac: int) -> np.ndarray:
    """Quantize one output channel (a crossbar column) with its own scheme onto the layer's common grid
    Q(grid_bits, grid_frac). Returns int64 of the shape of ``w_col`` with |q| <= 2^(grid_bits-1) - 1.

    Grid units: q represents q / 2^grid_frac; x = w * 2^grid_frac (exact) is the weight in grid units.

    * ``{"scheme": "uniform", "bits": b}`` (2 <= b <= grid_bits): step 2^e grid units with e the smallest
      exponent in [0, grid_bits - b] such that max|x| <= (2^(b-1)-1) 2^e (the real value, before rounding);
      q = 2^e * sat_b(floor(x / 2^e + 1/2)) = ``quantize_weights(w, b, grid_frac - e) << e``. The b-bit code
      sits at grid bit positions e .. e+b-2 and the low e bits are zero. If even e = grid_bits - b cannot hold
      max|x| the code saturates symmetrically at (2^(b-1)-1) 2^(grid_bits-b).
    * ``{"scheme": "pot", "bits": b}`` (2 <= b <= grid_bits): levels 0 and +-2^e for the 2^(b-1)-1 consecutive
      exponents ending at grid_bits - 2 (the largest power of two on the grid), exponents < 0 dropped. Each
      weight goes to the nearest level in linear value, ties toward the smaller magnitude
      (:func:`snap_to_levels`); beyond the top level it saturates.
    * ``{"scheme": "apot", "bits": b}`` (2 <= b <= grid_bits): additive powers of two with two terms,
      levels +-(t0 + t1) as in :func:`_apot_magnitudes` (2^(b-1) magnitudes including 0, top exponent fixed by
      the grid like "pot"); nearest level, ties toward the smaller magnitude.
    * ``{"scheme": "codebook", "bits": b, "k": k}`` (1 <= b <= grid_bits; optional "bins", default 2048;
      "k" defaults to 1.0): :func:`nonuniform_levels`(w_col, bw = b-1, k), each weight snapped to its nearest
      level in float, then the snapped level put on the grid with ``quantize_weights(level, grid_bits,
      grid_frac)`` (so q is the grid image of the snapped level; distinct levels may collide on a coarse grid).
    """
    name, b = _scheme_bits(scheme, grid_bits)
    w_col = np.asarray(w_col, dtype=np.float64)
    if w_col.size and not np.all(np.isfinite(w_col)):
        raise ValueError("w_col must hold finite values")
    if w_col.size == 0:
        return np.zeros(w_col.shape, dtype=I64)
    if name == "uniform":
        e = _uniform_exponent(float(np.max(np.abs(w_col))) * 2.0 ** grid_frac, b, grid_bits)
        return quantize_weights(w_col, b, grid_frac - e) << I64(e)
    if name in ("pot", "apot"):
        lv = scheme_levels(w_col, scheme, grid_bits, grid_frac)
        x = w_col * 2.0 ** grid_frac
        return lv[_snap_index(x, lv.astype(np.float64))].astype(I64)
    lv = nonuniform_levels(w_col, b - 1, float(scheme.get("k", 1.0)), int(scheme.get("bins", 2048)))
    q_lv = quantize_weights(lv, grid_bits, grid_frac)
    return q_lv[_snap_index(w_col, lv)].astype(I64)


def quantize_varied(w: np.ndarray, schemes: list[dict[str, Any]], grid_bits: int) -> tuple[np.ndarray, int]:
    """Quantize a (n_in, n_out) weight matrix with one scheme per output column on a common grid.

    grid_frac = :func:`grid_frac_for`(max|w| over the whole matrix, grid_bits), the frac a uniform
    ``grid_bits`` quantization of the layer would use; column c is :func:`quantize_channel`(w[:, c],
    schemes[c], grid_bits, grid_frac). Returns (int64 matrix, grid_frac); every |q| <= 2^(grid_bits-1) - 1.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (n_in, n_out), got shape {w.shape}")
    if len(schemes) != w.shape[1]:
        raise ValueError(f"{len(schemes)} schemes for {w.shape[1]} output columns")
    if not np.all(np.isfinite(w)):
        raise ValueError("w must hold finite values")
    frac = grid_frac_for(float(np.max(np.abs(w))) if w.size else 0.0, grid_bits)
    q = np.zeros(w.shape, dtype=I64)
    for c, sch in enumerate(schemes):
        q[:, c] = quantize_channel(w[:, c], sch, grid_bits, frac)
    return q, frac


def hollow_fraction(q: np.ndarray, grid_bits: int, cell_bits: int = 2) -> float:
    """Fraction of (column, slice) pairs whose whole column slice is zero -- the IVQ "hollows".

    With S = ceil((grid_bits-1)/cell_bits) slices (``isa.numerics.n_slices``) and slice s of a weight
    (|q| >> (cell_bits*s)) & (2^cell_bits - 1) (the cell it programs on the (+) or (-) crossbar), returns
    #{(c, s) : slice s of every q[:, c] is 0} / (columns * S). A 1-D ``q`` is one column; 0.0 for no columns.
    """
    q = np.asarray(q, dtype=I64)
    if q.ndim == 1:
        q = q.reshape(-1, 1)
    if q.ndim != 2:
        raise ValueError(f"q must be 1-D or 2-D, got shape {q.shape}")
    s_count = n_slices(grid_bits, cell_bits)
    cols = q.shape[1]
    if cols == 0 or s_count == 0:
        return 0.0
    mag = np.abs(q)
    mask = I64((1 << cell_bits) - 1)
    zero = 0
    for s in range(s_count):
        sl = (mag >> I64(cell_bits * s)) & mask
        zero += int(np.sum(np.all(sl == 0, axis=0)))
    return zero / (cols * s_count)
