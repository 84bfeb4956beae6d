"""Small committed data sets for examples, tests and calibration (no scikit-learn needed at run time).

``load_dataset("digits", "test")`` returns float32 inputs in [0, 1] (pixel / 16) of shape (N, 64), or
(N, 1, 8, 8) with ``layout="image"``, and int64 labels. Splits: train, calib (a 256-sample subset of train),
test (20 % stratified) and all. The arrays are written by ``models/make_digits_data.py``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

DATASETS = ("digits",)
SPLITS = ("train", "calib", "test", "all")
LAYOUTS = ("flat", "image")


def _load_npz(name: str) -> dict[str, np.ndarray]:
    path = resources.files("models").joinpath("data", f"{name}.npz")
    with path.open("rb") as f, np.load(f) as npz:
        return {key: npz[key] for key in npz.files}


def load_dataset(name: str, split: str = "test", layout: str = "flat") -> tuple[np.ndarray, np.ndarray]:
    """(inputs float32, labels int64) of one split of a committed data set."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; available: {', '.join(SPLITS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; available: {', '.join(LAYOUTS)}")
    arrays = _load_npz(name)
    index = np.arange(len(arrays["labels"])) if split == "all" else arrays[split]
    x = arrays["images"][index].astype(np.float32) / np.float32(16.0)
    if layout == "image":
        x = x.reshape(-1, 1, 8, 8)
    return x, arrays["labels"][index].astype(np.int64)
