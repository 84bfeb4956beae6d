"""Checks of user-given float tensors (run inputs, calibration arrays) before anything computes with them."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from isa.errors import XbarcError


def _index(flat: int, shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]" if shape else "[]"


def real_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array; `XbarcError` naming ``what`` (e.g. ``input 'x'``) and the first bad index
    when it is not numeric, has an element with a non-zero imaginary part, or a NaN or infinite element."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise XbarcError(f"{what}: not a numeric array ({e})") from None
    if arr.dtype.kind == "c":
        bad = np.flatnonzero(arr.imag != 0)
        if bad.size:
            i = int(bad[0])
            raise XbarcError(f"{what}: element {_index(i, arr.shape)} is complex ({arr.reshape(-1)[i]}); inputs "
                             f"must be real numbers")
        arr = arr.real
    if arr.dtype.kind not in "biuf":
        raise XbarcError(f"{what}: elements of type {arr.dtype} are not real numbers")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise XbarcError(f"{what}: element {_index(i, arr.shape)} is {arr.reshape(-1)[i]}; inputs must be finite")
    return arr


def checked_feeds(feeds: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], what: str) -> dict[str, np.ndarray]:
    """Every tensor of ``feeds`` checked by `real_array` and against ``shapes`` (per-sample shapes by name):
    the names must match, and each tensor must hold whole samples of its shape. ``what`` names the kind of
    tensor in messages ("input", "calibration input")."""
    if not isinstance(feeds, Mapping):
        raise XbarcError(f"{what}s: expected a dict of arrays by tensor name, got {type(feeds).__name__}")
    missing, extra = [n for n in shapes if n not in feeds], [n for n in feeds if n not in shapes]
    if missing or extra:
        raise XbarcError(f"{what}s: missing {missing}, unexpected {extra}; the model takes {list(shapes)}")
    out = {}
    for name, shape in shapes.items():
        arr = real_array(feeds[name], f"{what} '{name}'")
        per = int(np.prod(shape))
        if arr.ndim == 0 or len(arr) == 0 or arr.size != len(arr) * per:
            raise XbarcError(f"{what} '{name}': expected a batch of samples of shape {tuple(shape)}, got an array "
                             f"of shape {arr.shape}")
        out[name] = arr.reshape((len(arr),) + tuple(shape))
    return out
