"""MVMU kernels prepared in batches: the images of one shape, weight width and encoding sliced, checked and
summarized together (`MvmuKernel.from_image` one image at a time is ~3 ms of numpy calls on 128 x 128 blocks:
25 s for VGG-16's 8,454 images), with the same kernels and the same errors.

A batch takes one histogram of weight values per column (every statistic the kernel keeps is a sum of per-value
slice digits) instead of slicing every cell in int64. A batch is screened with array operations (`isa.layout.layouts_ok` for the layouts); an image the screen rejects
goes through `MvmuKernel.from_image`, which raises its error naming the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from isa import HardwareConfig, MvmuImage
from isa import numerics as nx
from isa.layout import layouts_ok, summarize_many

from .state import I64, MvmuKernel

BATCH_BINS = 1 << 21  # histogram bins (images x columns x weight values) per batch: tens of MB of int64


def prepare_kernels(images: Sequence[MvmuImage], hw: HardwareConfig) -> list[MvmuKernel]:
    """`MvmuKernel.from_image` of every image, in order."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for k, img in enumerate(images):
        key = (np.shape(img.weights), img.weight_bits, img.encoding, img.layout is not None and np.shape(img.layout))
        groups.setdefault(key, []).append(k)
    out: list[MvmuKernel | None] = [None] * len(images)
    for ids in groups.values():
        first = images[ids[0]]
        cols = np.shape(first.weights)[-1] if np.ndim(first.weights) == 2 else 1
        size = max(1, BATCH_BINS // max(1, cols * (2 * nx.qmax(min(first.weight_bits, 63)) + 1)))
        for lo in range(0, len(ids), size):
            part = ids[lo:lo + size]
            for k, kern in zip(part, _batch([images[k] for k in part], hw)):
                out[k] = kern
    return [k for k in out if k is not None]


def _plain(img: MvmuImage, hw: HardwareConfig) -> bool:
    """The per-image checks of `from_image` that need no slicing, and a weight width the tables cover."""
    shape = np.shape(img.weights)
    return (len(shape) == 2 and 0 < shape[0] <= hw.xbar_rows and 0 < shape[1] <= hw.xbar_cols
            and 0 <= img.mvmu < hw.mvmus_per_core and 1 <= img.weight_bits <= nx.MAX_TABLE_BITS
            and img.encoding in nx.WEIGHT_ENCODINGS and np.asarray(img.weights).dtype.kind in "iu")


def _batch(images: list[MvmuImage], hw: HardwareConfig) -> list[MvmuKernel]:
    """The kernels of images sharing shape, weight bits, encoding and layout shape: every statistic from the
    per-column histogram of weight values times the slices of each value (`numerics.weight_slices` of the
    value range: the one definition of slicing), exact integers."""
    first = images[0]
    if not all(_plain(img, hw) for img in images):
        return [MvmuKernel.from_image(img, hw) for img in images]
    bits, cb = first.weight_bits, hw.cell_bits
    w = np.stack([np.asarray(img.weights) for img in images])  # (N, R, C), narrow
    n, r, c = w.shape
    q = nx.qmax(bits)
    lo_hi = w.reshape(n, -1)
    good = (lo_hi.min(axis=1, initial=0).astype(I64) >= -q) & (lo_hi.max(axis=1, initial=0).astype(I64) <= q)
    if not good.all():
        return [MvmuKernel.from_image(img, hw) for img in images]
    pos, neg = nx.value_slices(bits, cb, first.encoding)  # (S, V)
    pos, neg = pos.T, neg.T  # (V, S): the slices of each value
    s = pos.shape[1]
    idx = w.astype(I64) + q  # (N, R, C) value index
    hist = nx.column_histogram(w, bits).reshape(n * c, -1)  # per column: count of each value
    d = pos - neg
    table = np.concatenate([pos != 0, neg != 0, np.minimum(d, 0), np.maximum(d, 0)], axis=1).astype(np.float64)
    sums = np.rint(hist.astype(np.float64) @ table).astype(I64).reshape(n, c, 4, s)  # exact: |sum| < R 2^cb << 2^53
    live_lines = sums[:, :, :2].transpose(0, 3, 2, 1) > 0  # (N, S, 2, C)
    packed = first.layout is not None
    lays = None
    if packed:
        lays = np.stack([np.asarray(img.layout, dtype=I64) for img in images])
        good &= layouts_ok(lays, live_lines, r, hw) if lays.shape[1:] == (s, 2, c, 3) else False
        if not good.all():
            return [MvmuKernel.from_image(img, hw) for img in images]
    sums_neg, sums_pos = sums[:, :, 2], sums[:, :, 3]  # (N, C, S): column sums per slice
    vmin = sums_neg.reshape(n, -1).min(axis=1, initial=0)  # dead slices sum to 0: no bound changes
    vmax = sums_pos.reshape(n, -1).max(axis=1, initial=0)
    absmax = (sums_pos - sums_neg).reshape(n, -1).max(axis=1, initial=0)
    gsum = (pos + neg).sum(axis=1)[idx].sum(axis=2)  # (N, R): `isa.costs.row_levels` of each image
    wmax = np.abs(idx - q).reshape(n, -1).max(axis=1, initial=0)
    live_slices = np.asarray(live_lines.any(axis=(2, 3)))  # (N, S)
    summaries = summarize_many(lays) if lays is not None else [None] * n
    all_slices = nx.n_slices(bits, cb, first.encoding)
    kernels = []
    for k, img in enumerate(images):
        active = tuple(int(i) for i in np.flatnonzero(live_slices[k])) if packed else None
        ids = active if active is not None else range(s)
        wk = np.asarray(img.weights)
        kernels.append(MvmuKernel(img.mvmu, r, c, len(ids), weights=wk.astype(nx.narrowest_int(wk)),
                                  weight_bits=bits, cell_bits=cb,
                                  scale=np.array([float(1 << (cb * i)) for i in ids]),
                                  vmin=int(vmin[k]), vmax=int(vmax[k]), wmax=int(wmax[k]), node=img.node,
                                  encoding=img.encoding, absmax=int(absmax[k]), gsum=gsum[k],
                                  active=active, packing=summaries[k], all_slices=all_slices))
    return kernels
