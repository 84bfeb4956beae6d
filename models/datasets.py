"""Small committed data sets for examples, tests and calibration (no scikit-learn needed at run time).

``load_dataset("digits", "test")`` returns float32 inputs in [0, 1] (pixel / 16) of shape (N, 64), or
(N, 1, 8, 8) with ``layout="image"``, and int64 labels. Splits: train (80 %), test (20 % stratified), calib (a
256-sample subset of train, for range calibration), val (another 256 of train, disjoint from calib), fit (train
without val: LeNet-5's training data, so val is held out for it) and all. The arrays are written by ``models/make_digits_data.py``.

Derived variants of the same images (no extra data file):

* ``digits_image``: the digits with the image layout (N, 1, 8, 8) by default (for convolutional models).
* ``digits32``: every 8x8 image upsampled 4x by nearest neighbour (each pixel repeated in a 4x4 block), giving
  (N, 1, 32, 32) -- the input size of the classic LeNet-5 geometry.

``layout`` defaults to the data set's own layout (flat for ``digits``, image for the others); ``"flat"`` or
``"image"`` selects one explicitly.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

DATASETS = ("digits", "digits_image", "digits32")
_DEFAULT_LAYOUT = {"digits": "flat", "digits_image": "image", "digits32": "image"}
_UPSAMPLE = {"digits": 1, "digits_image": 1, "digits32": 4}
SPLITS = ("train", "calib", "val", "fit", "test", "all")
LAYOUTS = ("flat", "image")


def _load_npz(name: str) -> dict[str, np.ndarray]:
    path = resources.files("models").joinpath("data", f"{name}.npz")
    with path.open("rb") as f, np.load(f) as npz:
        return {key: npz[key] for key in npz.files}


def load_dataset(name: str, split: str = "test", layout: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs float32, labels int64) of one split of a committed data set (or a variant derived from one)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; available: {', '.join(SPLITS)}")
    layout = _DEFAULT_LAYOUT[name] if layout is None else layout
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; available: {', '.join(LAYOUTS)}")
    arrays = _load_npz("digits")
    index = np.arange(len(arrays["labels"])) if split == "all" else arrays[split]
    x = arrays["images"][index].astype(np.float32) / np.float32(16.0)
    factor = _UPSAMPLE[name]
    x = x.reshape(-1, 1, 8, 8)
    if factor > 1:
        x = x.repeat(factor, axis=2).repeat(factor, axis=3)
    if layout == "flat":
        x = x.reshape(len(x), -1)
    return x, arrays["labels"][index].astype(np.int64)


def sample_shape(name: str) -> tuple[int, ...]:
    """Per-sample input shape of a data set in its default layout: (64,), (1, 8, 8) or (1, 32, 32)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    side = 8 * _UPSAMPLE[name]
    return (side * side,) if _DEFAULT_LAYOUT[name] == "flat" else (1, side, side)


def for_shape(name: str, shape: tuple[int, ...]) -> str:
    """The variant of data set ``name``'s images whose per-sample shape is ``shape`` (``name`` itself if it
    fits): every variant holds the same digits, so ``digits`` for a 32x32 model means ``digits32``."""
    shape = tuple(int(d) for d in shape)
    if sample_shape(name) == shape:
        return name
    fits = [d for d in DATASETS if sample_shape(d) == shape]
    if not fits:
        have = ", ".join(f"{d} {sample_shape(d)}" for d in DATASETS)
        raise ValueError(f"data set {name!r}: no variant has the model's per-sample input shape {shape}; "
                         f"have {have}")
    return fits[0]



def load_for_shape(name: str, split: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """`load_dataset` of the variant of ``name`` whose per-sample shape is ``shape`` (`for_shape`), reshaped to
    (N, *shape): the `compiler.data.DatasetLoader` of the bundled data sets."""
    x, y = load_dataset(for_shape(name, shape), split)
    return x.reshape((len(x),) + tuple(shape)), y
