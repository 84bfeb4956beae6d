"""Window extraction over HWC tensors (pure data movement, shared by the float and integer executions)."""

from __future__ import annotations

import numpy as np

from ..ir import Op


def pad_hwc(x: np.ndarray, pads: tuple[int, int, int, int], value: float | int = 0) -> np.ndarray:
    """Pad (B, H, W, C) spatially by (top, left, bottom, right) with ``value``."""
    pt, pl, pb, pr = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def windows(x: np.ndarray, op: Op, out_hw: tuple[int, int], pad_value: float | int = 0) -> np.ndarray:
    """(B, OH, OW, kh, kw, C) view of the windows of ``op`` (kernel, strides, pads, dilations) over x (B,H,W,C).

    Rows/columns needed by ceil-mode windows beyond the padded input read ``pad_value`` too.
    """
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
    dh, dw = op.attrs.get("dilations", (1, 1))
    pt, pl, pb, pr = op.attrs["pads"]
    oh, ow = out_hw
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    b, h, w, c = x.shape
    xp = pad_hwc(x, (pt, pl, max(pb, need_h - h - pt), max(pr, need_w - w - pl)), pad_value)
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (b, oh, ow, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False)


def im2col(x: np.ndarray, op: Op, out_hw: tuple[int, int]) -> np.ndarray:
    """(B*OH*OW, kh*kw*C) rows in window order (kernel row, kernel column, channel), zero padded."""
    win = windows(x, op, out_hw)
    return win.reshape(-1, win.shape[3] * win.shape[4] * win.shape[5])


def to_hwc(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A batch of ONNX-layout samples (B, *shape) -> the internal layout: (B, H, W, C) for rank-3, else flat."""
    x = np.asarray(x).reshape((len(x),) + tuple(shape))
    return x.transpose(0, 2, 3, 1) if len(shape) == 3 else x.reshape(len(x), -1)


def from_hwc(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `to_hwc`: internal layout -> ONNX layout (B, *shape)."""
    if len(shape) == 3:
        c, h, w = shape
        return np.asarray(x).reshape(len(x), h, w, c).transpose(0, 3, 1, 2)
    return np.asarray(x).reshape((len(x),) + tuple(shape))


def internal(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An op's result in the internal layout of its output value of ``shape`` ((B, H, W, C) for rank 3, else
    (B, size)): a reshape, since the internal layout is the storage order (a value retagged by a relabel, e.g. a
    dense output read as (C, 1, 1), keeps its words)."""
    x = np.asarray(x)
    return x.reshape((len(x), shape[1], shape[2], shape[0]) if len(shape) == 3 else (len(x), -1))


def window_counts(op: Op, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Average pooling's divisor per window, as the row and column factors (cnt_h (OH,), cnt_w (OW,)): the window
    positions inside the input (``count_include_pad`` false), or inside the padded input (true); positions a
    ``ceil_mode`` window reaches beyond the padded input never count. Window (oh, ow) divides by
    ``cnt_h[oh] * cnt_w[ow]`` (rule POOL)."""
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
    dh, dw = op.attrs.get("dilations", (1, 1))
    pt, pl, pb, pr = op.attrs["pads"]
    include = bool(op.attrs.get("count_include_pad", True))
    out = []
    for n, k, st, d, lo_pad, hi_pad, o in ((in_hw[0], kh, sh, dh, pt, pb, out_hw[0]),
                                           (in_hw[1], kw, sw, dw, pl, pr, out_hw[1])):
        lo, hi = (-lo_pad, n + hi_pad) if include else (0, n)
        pos = np.arange(o)[:, None] * st + np.arange(k)[None, :] * d - lo_pad
        out.append(((pos >= lo) & (pos < hi)).sum(axis=1).astype(np.int64))
    return out[0], out[1]
