"""The user's own data as a data set: ``--dataset FILE`` and ``--calib FILE`` (a `compiler.data.DatasetLoader`).

A data file is a ``.npz`` or a ``.npy``:

- ``.npy``: one array of inputs, batch first; no labels (``xbarc run`` then reports agreement with onnxruntime
  but no accuracy). Every split is the whole array.
- ``.npz``: inputs under ``x`` and optional integer labels under ``y``; optional named splits under ``x_SPLIT`` /
  ``y_SPLIT`` (SPLIT one of train, calib, val, fit, test), used for that split instead of ``x`` / ``y``. Where a
  split has no arrays of its own, the calibration split falls back to ``x_train`` and every split to ``x``. An
  npz holding exactly one array (any name) is read as ``x``.

Inputs are taken as the model expects them (the preprocessing is the user's): float or integer values, batch
first, per-sample shape equal to the model input's; a different shape is an error naming both (and saying when a
reshape would fit). Non-finite or complex values, labels that are not integers or whose count differs from the
inputs', and a file without the arrays a split needs are errors naming the file and the key.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from isa.errors import XbarcError

SUFFIXES = (".npz", ".npy")
SPLITS = ("train", "calib", "val", "fit", "test", "all")
NPY = "<npy>"  # `read_arrays`' key for the array of a .npy file
_FALLBACK = {"calib": ("calib", "train"), "fit": ("fit", "train")}


def is_data_file(name: str) -> bool:
    """Whether data set ``name`` names a file (by its suffix, or because such a file exists)."""
    return name.lower().endswith(SUFFIXES) or (Path(name).is_file() and Path(name).suffix.lower() in SUFFIXES)


def load_file(path: str, split: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs float (N, *shape), labels int64 (N,) or None) of ``split`` of the data file ``path``."""
    if split not in SPLITS:
        raise XbarcError(f"{path}: unknown split {split!r}; splits: {', '.join(SPLITS)}")
    arrays = read_arrays(path)
    if NPY in arrays:
        x, y, xkey = arrays[NPY], None, "the array"
    else:
        if len(arrays) == 1:
            (xkey,) = arrays
            x, y = arrays[xkey], None
        else:
            xkey, ykey = _keys(path, arrays, split)
            x, y = arrays[xkey], (arrays[ykey] if ykey else None)
    return _inputs(path, xkey, x, shape), (None if y is None else _labels(path, xkey, len(x), y))


def read_arrays(path: str) -> dict[str, np.ndarray]:
    """Every array of a .npz by name, or a .npy's array under `NPY`; XbarcError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise XbarcError(f"{path}: no such data file")
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise XbarcError(f"{path}: not a readable .npy or .npz file ({e})") from None
    if isinstance(data, np.ndarray):
        return {NPY: data}
    try:
        with data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise XbarcError(f"{path}: a damaged array in the npz ({e})") from None


def _keys(path: str, arrays: dict[str, np.ndarray], split: str) -> tuple[str, str | None]:
    """(inputs key, labels key or None) for ``split``."""
    for s in _FALLBACK.get(split, (split,)) if split != "all" else ():
        if f"x_{s}" in arrays:
            return f"x_{s}", (f"y_{s}" if f"y_{s}" in arrays else None)
    if "x" in arrays:
        return "x", ("y" if "y" in arrays else None)
    have = ", ".join(sorted(arrays))
    raise XbarcError(f"{path}: no inputs for split '{split}': expected an array 'x' (or 'x_{split}'); the file "
                     f"has {have}")


def _inputs(path: str, key: str, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    where = f"{path}: {key}"
    if x.dtype.kind not in "biuf":
        raise XbarcError(f"{where}: inputs must be real numbers, got dtype {x.dtype}")
    if x.ndim < 1 or len(x) == 0:
        raise XbarcError(f"{where}: expected a batch of inputs (batch first), got shape {x.shape}")
    if tuple(x.shape[1:]) != tuple(shape) and _squeezed(x.shape[1:]) == _squeezed(shape):
        x = x.reshape((len(x),) + tuple(shape))  # the ONNX shape the IR's lifts: (T, C) is (T, 1, C), row-major alike
    if tuple(x.shape[1:]) != tuple(shape):
        fits = int(np.prod(x.shape[1:])) == int(np.prod(shape))
        hint = f"; reshape it to (N, {', '.join(map(str, shape))})" if fits else ""
        raise XbarcError(f"{where}: per-sample shape {tuple(x.shape[1:])} differs from the model input's "
                         f"{tuple(shape)}{hint}")
    x = x.astype(np.float32) if x.dtype.kind != "f" else x
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise XbarcError(f"{where}: element {list(idx)} is {x[idx]}; inputs must be finite")
    return x


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _labels(path: str, xkey: str, n: int, y: np.ndarray) -> np.ndarray:
    ykey = "y" + xkey[1:] if xkey.startswith("x") else "y"
    where = f"{path}: {ykey}"
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and
                                          np.all(y == np.round(y))):
        raise XbarcError(f"{where}: labels must be integers (class indices), got dtype {y.dtype}")
    y = y.reshape(-1) if y.ndim > 1 and y.size == len(y) else y
    if y.ndim != 1 or len(y) != n:
        raise XbarcError(f"{where}: expected {n} labels (one per input), got shape {y.shape}")
    return y.astype(np.int64)
