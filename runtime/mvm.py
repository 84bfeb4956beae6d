"""One `mvm` evaluated as one stacked product over the MVMUs it fires (rule MVM of docs/semantics.md).

At load time the mvm decoder builds an `MvmStack` lazily (on the first firing, so a program's unused MVMUs cost
nothing): the non-idle MVMUs' matrices zero-padded to common shapes and stacked, the register rows their inputs
come from and go to, and their precomputed accounting sums. A firing is then a handful of numpy calls whatever the
number of MVMUs:

- **exact** (no clipping, no skipped conversion, the product fits the float mantissa): one batched float32 or
  float64 matmul of the stacked weights with the wrapped inputs. Every partial sum is an integer below 2^24 or
  2^53, so BLAS computes it exactly in any order.
- **digit by digit** otherwise: the input digits as one (K, R, ibits*B) float32 array, the bit-line read
  (`ideal_read`, or what a device model installed with `set_bitline_read`), ADC clipping, skipped conversions, the
  slice shift-and-add (float32/float64 where the bound fits, int64 otherwise) and the digit shift-and-add in int64.

Zero padding adds exact zeros (padded rows meet zero weights, padded slices and columns are zero), so each MVMU's
outputs equal the one-at-a-time evaluation bit for bit. DAC pulses and driven cell levels are two dot products of
the per-row non-zero digit counts with a row mask and the stacked `row_levels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from isa import HardwareConfig
from isa import numerics as nx
from isa import ops

from .state import I64, MvmuKernel

_F32_EXACT = float(1 << 24)
_F64_EXACT = float(1 << 53)

BitlineRead = Callable[["MvmStack", np.ndarray], np.ndarray]


def ideal_read(stack: "MvmStack", digits: np.ndarray) -> np.ndarray:
    """Ideal crossbars: bit-line values (K, S*C, ibits*B) = slice differences (K, S*C, R) @ digits (K, R, ibits*B),
    exact in float32 (|value| <= rows x (2^cell_bits - 1))."""
    out: np.ndarray = stack.diff @ digits
    return out


_read: BitlineRead | None = None  # None: ideal crossbars (and the exact shortcut is allowed)


def set_bitline_read(fn: BitlineRead | None) -> None:
    """Replace the crossbar read of every MVM by ``fn(stack, digits) -> bit-line values`` (None: ideal). While a
    reader is set, every MVM goes digit by digit through it (no exact shortcut); its values are clipped by the
    ADC as usual."""
    global _read
    _read = fn


def bitline_read() -> BitlineRead | None:
    """The reader `set_bitline_read` installed (None: ideal crossbars)."""
    return _read


def twos_digits(x: np.ndarray, ibits: int) -> np.ndarray:
    """The two's-complement digits of (rows, B) int64 ``x``: bit j of every value, (rows, ibits, B) float32 0/1,
    C-contiguous."""
    rows, b = x.shape
    if ibits <= 16:  # the bytes' bits by table (np.unpackbits), little-endian: bit j of each value at j
        u = (x & I64((1 << ibits) - 1)).astype("<u2")
        bits = np.unpackbits(u.view(np.uint8).reshape(rows, b, 2), axis=2, bitorder="little")[:, :, :ibits]
        out: np.ndarray = bits.transpose(0, 2, 1).astype(np.float32, order="C")
        return out
    return ((x[:, None, :] >> np.arange(ibits, dtype=I64)[None, :, None]) & I64(1)).astype(np.float32)


def _span(starts: Sequence[int], size: int, stride: int, per: Sequence[int]) -> slice | np.ndarray:
    """Register rows of stacked spans: a slice when they are consecutive and full, else an index array of
    ``size`` rows per unit starting at each of ``starts``."""
    if len(starts) == 1 or (all(p == size == stride for p in per)
                            and all(b - a == stride for a, b in zip(starts, starts[1:]))):
        return slice(starts[0], starts[0] + size * len(starts))
    return np.concatenate([np.arange(s, s + size) for s in starts])


@dataclass
class MvmStack:
    """The non-idle MVMUs of one mvm, stacked (see module docstring). ``diff`` (K, S*C, R) float32 slice
    differences, ``product`` (K, C, R) weights in the exact product's float type (None: digit by digit)."""

    units: tuple[int, ...]
    rows: int
    cols: int
    slices: int
    gather: slice | np.ndarray
    scatter: slice | None
    outs: tuple[slice, ...]
    ncols: tuple[int, ...]
    product: np.ndarray | None
    diff: np.ndarray | None
    keep: np.ndarray | None  # (K, S, 1, ibits, 1) float32: conversions made (None: all)
    scale: np.ndarray | None  # (K, 1, S) in sum_dtype
    sum_dtype: Any
    rowmask: np.ndarray
    gsum: np.ndarray
    source: tuple[Any, ...] = ()  # (mvm, kernels, hw): the digit path's matrices are derived on first need
    split: tuple[Any, ...] | None = None  # `_split`: (safe weights, clip-prone lines, their scatter) or None

    @classmethod
    def build(cls, i: ops.Mvm, kernels: Sequence[MvmuKernel], hw: HardwareConfig, exact: bool) -> "MvmStack":
        """Stack ``kernels`` (non-idle, in MVMU order) for mvm ``i``; ``exact``: the product may be taken."""
        k = len(kernels)
        r = max(m.rows for m in kernels)
        c = max(m.cols for m in kernels)
        units = tuple(m.mvmu for m in kernels)
        gather = _span([hw.mvmu_in(u) for u in units], r, hw.xbar_rows, [m.rows for m in kernels])
        scatter = _span([hw.mvmu_out(u) for u in units], c, hw.xbar_cols, [m.cols for m in kernels])
        outs = tuple(slice(hw.mvmu_out(m.mvmu), hw.mvmu_out(m.mvmu) + m.cols) for m in kernels)
        rowmask = np.zeros((k, r), dtype=I64)
        gsum = np.zeros((k, r), dtype=I64)
        for j, m in enumerate(kernels):
            rowmask[j, :m.rows] = 1
            if m.gsum is not None:
                gsum[j, :m.rows] = m.gsum
        stack = cls(units, r, c, 0, gather, scatter if isinstance(scatter, slice) else None, outs,
                    tuple(m.cols for m in kernels), None, None, None, None, None, rowmask.reshape(-1),
                    gsum.reshape(-1))
        bound = max(m.rows * m.wmax for m in kernels) * float(1 << (i.ibits - 1))
        if exact and bound < _F64_EXACT:
            dt = np.float32 if bound < _F32_EXACT else np.float64
            prod = np.zeros((k, c, r), dtype=dt)
            for j, m in enumerate(kernels):
                prod[j, :m.cols, :m.rows] = m.weight_matrix().T
            stack.product = prod
        else:
            stack._digits(i, kernels, hw)
        stack.source = (i, tuple(kernels), hw)
        return stack

    def _digits(self, i: ops.Mvm, kernels: Sequence[MvmuKernel], hw: HardwareConfig) -> None:
        k, r, c = len(kernels), self.rows, self.cols
        s = max(m.slices for m in kernels)
        diff = np.zeros((k, s, c, r), dtype=np.float32)
        scale = np.zeros((k, 1, s))
        keep = np.ones((k, s, 1, i.ibits, 1), dtype=np.float32)
        skips_any = False
        for j, m in enumerate(kernels):
            diff[j, :m.slices, :m.cols, :m.rows] = m.slice_differences()
            scale[j, 0, :m.slices] = m.scale
            skips = nx.skipped(i.ibits, m.slice_ids, hw.cell_bits, i.skip)  # (ibits, slices)
            keep[j, :m.slices, 0, :, 0] = ~skips.T
            skips_any = skips_any or bool(skips.any())
        dtypes = [m.sum_dtype(i.adc) for m in kernels]
        self.sum_dtype = None if None in dtypes else (np.float64 if np.float64 in dtypes else np.float32)
        self.slices = s
        self.diff = diff.reshape(k, s * c, r)
        self.scale = scale.astype(self.sum_dtype or I64)
        self.keep = keep if skips_any else None
        self.split = None if skips_any else self._split(i, scale)

    def _split(self, i: ops.Mvm, scale: np.ndarray) -> tuple[Any, ...] | None:
        """The exact split of a digit-by-digit MVM without skipped conversions: a bit line whose conversion can
        never clip (its negative and positive weights' sums, or with CSD inputs its absolute sum, inside the ADC
        range) converts every digit exactly, so its shift-and-add over the digits is the product of the wrapped
        inputs with its slice's weights; only the other bit lines go digit by digit. Returns (safe weights
        (K, C, R) in the float type whose mantissa holds their product with any input, clip-prone bit lines'
        weights (K, U, R) float32 or None, their scatter (K, C, U) int64: significance per (column, line)), or
        None where no float type is exact."""
        assert self.diff is not None
        k, s, c, r = len(self.units), self.slices, self.cols, self.rows
        d = self.diff.reshape(k, s, c, r).astype(np.float64)
        if i.enc:
            safe = np.abs(d).sum(axis=3) <= nx.qmax(i.adc)
        else:
            safe = (np.minimum(d, 0).sum(axis=3) >= nx.qmin(i.adc)) & (np.maximum(d, 0).sum(axis=3) <= nx.qmax(i.adc))
        sig = scale[:, 0, :]  # (K, S) 2^(cell_bits * slice), exact in float64
        w = np.einsum("ksc,ks,kscr->kcr", safe.astype(np.float64), sig, d)  # integers, exact (|w| < 2^53)
        bound = float(np.abs(w).sum(axis=2).max(initial=0)) * float(1 << (i.ibits - 1))
        if bound >= _F64_EXACT:
            return None
        prone = [np.argwhere(~safe[j] & (np.abs(d[j]).sum(axis=2) > 0)) for j in range(k)]  # (s, c) per MVMU
        u = max(len(p) for p in prone)
        lines = scatter = None
        if u:
            lines = np.zeros((k, u, r), dtype=np.float32)
            scatter = np.zeros((k, c, u), dtype=I64)
            for j, p in enumerate(prone):
                for q, (sl, col) in enumerate(p):
                    lines[j, q] = d[j, sl, col]
                    scatter[j, col, q] = int(sig[j, sl])
        return w.astype(np.float32 if bound < _F32_EXACT else np.float64), lines, scatter

    def fire(self, x: np.ndarray, i: ops.Mvm, sig: np.ndarray) -> np.ndarray:
        """Outputs (K, C, B) int64 of wrapped inputs ``x`` (K*R, B)."""
        k, r, b = len(self.units), self.rows, x.shape[1]
        if self.product is not None and _read is None:
            xs = x.reshape(k, r, b).astype(self.product.dtype)
            out: np.ndarray = (self.product @ xs).astype(I64)
            return out
        if self.diff is None:  # an exact stack read through a device model's hook
            self._digits(*self.source)
        if self.split is not None and _read is None:
            return self._fire_split(x, i, sig)
        ibits, s, c = i.ibits, self.slices, self.cols
        if i.enc:
            digits = nx.csd_digits(x, ibits).transpose(1, 0, 2).astype(np.float32)  # (K*R, ibits, B)
        else:
            digits = twos_digits(x, ibits)  # x is wrapped: bits of x mod 2^ibits
        v = (_read or ideal_read)(self, digits.reshape(k, r, ibits * b))  # (K, S*C, ibits*B)
        np.clip(v, nx.qmin(i.adc), nx.qmax(i.adc), out=v)  # numerics.adc_convert
        v = v.reshape(k, s, c, ibits, b)
        if self.keep is not None:  # dynamic quantization: skipped conversions read as 0 (numerics.skipped)
            v = v * self.keep
        assert self.scale is not None
        v = v.reshape(k, s, c * ibits * b)
        if self.sum_dtype is None:
            sums = (self.scale @ v.astype(I64)).astype(I64)
        else:
            sums = (self.scale @ v.astype(self.sum_dtype, copy=False)).astype(I64)
        out = np.einsum("kcjb,j->kcb", sums.reshape(k, c, ibits, b), sig)
        return out


    def _fire_split(self, x: np.ndarray, i: ops.Mvm, sig: np.ndarray) -> np.ndarray:
        """`fire` through `_split`: the never-clipping bit lines as one product, the others digit by digit."""
        assert self.split is not None
        w, lines, scatter = self.split
        k, r, b = len(self.units), self.rows, x.shape[1]
        xs = x.reshape(k, r, b)
        prod = w @ xs.astype(w.dtype)
        if lines is None:
            done: np.ndarray = prod.astype(I64)
            return done
        ibits = i.ibits
        if i.enc:
            digits = nx.csd_digits(x, ibits).transpose(1, 0, 2).astype(np.float32)
        else:
            digits = twos_digits(x, ibits)
        v = lines @ digits.reshape(k, r, ibits * b)  # (K, U, ibits*B), exact
        np.clip(v, nx.qmin(i.adc), nx.qmax(i.adc), out=v)
        sums = np.einsum("kujb,j->kub", v.reshape(k, -1, ibits, b).astype(I64), sig)
        out: np.ndarray = prod.astype(I64)
        out += scatter @ sums
        return out


class LazyStack:
    """Builds an mvm's `MvmStack` on its first firing (and shares it among the mvms of a core that fire the same
    MVMUs the same way, through ``cache``)."""

    def __init__(self, i: ops.Mvm, kernels: Sequence[MvmuKernel], hw: HardwareConfig, exact: bool,
                 cache: dict[tuple[Any, ...], MvmStack]) -> None:
        self._args = (i, tuple(kernels), hw, exact)
        self._key = (i.mask, i.ibits, i.adc, i.enc, i.skip, exact)
        self._cache = cache
        self._stack: MvmStack | None = None

    @property
    def exact(self) -> bool:
        """Whether the exact product may be taken (no clipping, no skipped conversion)."""
        return self._args[3]

    @property
    def kernels(self) -> tuple[MvmuKernel, ...]:
        """The non-idle kernels the stack holds, in MVMU order."""
        return self._args[1]

    def get(self) -> MvmStack:
        """The stack, built once."""
        if self._stack is None:
            st = self._cache.get(self._key)
            if st is None:
                st = self._cache[self._key] = MvmStack.build(*self._args)
            self._stack = st
        return self._stack
