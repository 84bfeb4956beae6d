"""Data the compiler is given, never fetched: calibration and evaluation images come in as arrays or through a
`DatasetLoader` that the caller passes (the CLI passes `models.datasets.load_for_shape`). The compiler package
does not import `models`: the CLI is the boundary."""

from __future__ import annotations

from typing import Callable

import numpy as np

from isa.errors import ConfigError

#: ``loader(name, split, shape) -> (inputs, labels)``: split ``split`` of data set ``name`` in the variant whose
#: per-sample input shape is ``shape`` (float inputs (N, *shape), int labels (N,), or None: a data set without
#: labels, such as a user's ``.npy`` of inputs).
DatasetLoader = Callable[[str, str, tuple[int, ...]], tuple[np.ndarray, "np.ndarray | None"]]


def load(data: DatasetLoader | None, name: str, split: str, shape: tuple[int, ...]
         ) -> tuple[np.ndarray, np.ndarray | None]:
    """``data(name, split, shape)``; ConfigError saying what to pass when no loader was given."""
    if data is None:
        raise ConfigError(f"data set '{name}' needed but no data loader given: pass data=... (for the bundled "
                          f"sets, models.datasets.load_for_shape) or the arrays themselves")
    x, y = data(name, split, tuple(int(d) for d in shape))
    return np.asarray(x), (None if y is None else np.asarray(y))


def load_labelled(data: DatasetLoader | None, name: str, split: str, shape: tuple[int, ...], why: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`load`, with an error saying ``why`` labels are needed when the data set has none."""
    x, y = load(data, name, split, shape)
    if y is None:
        raise ConfigError(f"data set '{name}' has no labels (an npz needs 'y' or 'y_{split}'), and {why} needs "
                          f"them")
    return x, y
