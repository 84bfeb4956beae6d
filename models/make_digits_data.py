"""Write ``models/data/digits.npz`` from scikit-learn's bundled digits data set (offline).

Arrays: ``images`` (1797, 64) uint8 in 0..16, ``labels`` (1797,) uint8 and the deterministic split index arrays
``train``, ``test`` (20 % stratified, ``random_state=0``), ``calib`` (the first 256 of a fixed permutation of
``train``: a subset of train for activation-range calibration), ``val`` (the next 256 of that permutation:
held out from ``fit``, for scoring candidates in the precision search) and ``fit`` (``train`` without ``val``, in
``train``'s order: what LeNet-5 is trained on, so that ``val`` is held-out data for it).

Run: ``python -m models.make_digits_data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA_PATH = Path(__file__).resolve().parent / "data" / "digits.npz"
TEST_FRACTION = 0.2
CALIB_SIZE = 256
VAL_SIZE = 256


def make_digits_arrays() -> dict[str, np.ndarray]:
    """The arrays stored in digits.npz (requires scikit-learn)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.data.astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=TEST_FRACTION, random_state=0, stratify=labels)
    perm = np.random.default_rng(0).permutation(train)
    calib, val = perm[:CALIB_SIZE], perm[CALIB_SIZE:CALIB_SIZE + VAL_SIZE]
    fit = train[~np.isin(train, val)]
    return {
        "images": images,
        "labels": labels,
        "train": np.asarray(train, dtype=np.int64),
        "calib": np.asarray(calib, dtype=np.int64),
        "test": np.asarray(test, dtype=np.int64),
        "val": np.asarray(val, dtype=np.int64),
        "fit": np.asarray(fit, dtype=np.int64),
    }


def main() -> None:
    from models._export import write_data

    write_data(DATA_PATH, make_digits_arrays())


if __name__ == "__main__":
    main()
