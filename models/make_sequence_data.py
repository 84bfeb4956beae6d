"""Write ``models/data/italy_power.npz`` and ``models/data/basic_motions.npz`` from the UCR/UEA archive files that
the sktime wheel ships (offline; sktime is needed only to run this script, never by xbarc).

Source: ``sktime/datasets/data/<Name>/<Name>_TRAIN.ts`` and ``_TEST.ts`` inside the installed ``sktime`` package
(``pip install sktime``; version 1.2.0 was used), read here with the standard library and numpy (the ``.ts`` format:
``#`` comments, ``@`` header lines, then one series per line, channels separated by ``:``, the class label last).

* **ItalyPowerDemand** (UCR archive): 1,096 days of Italian electrical power demand, 24 hourly values each
  (z-normalised per series), 2 classes (October to March vs April to September); 67 train / 1,029 test.
* **BasicMotions** (UEA archive): 80 recordings of a smart watch's accelerometer and gyroscope (6 channels x 100
  steps at 10 Hz), 4 classes (standing, running, walking, badminton); 40 train / 40 test.

Provenance and licences: the UCR time series classification archive (Dau, Keogh et al., 2018,
https://www.cs.ucr.edu/~eamonn/time_series_data_2018/) and the UEA multivariate archive (Bagnall et al., 2018,
https://timeseriesclassification.com), which ask that users cite them; the files are redistributed in sktime
(BSD 3-Clause). ``models/README.md`` repeats this.

Arrays per file: ``x`` (N, T, C) float32 (series, time, channel), ``labels`` (N,) uint8 (class index in the
header's ``@classLabel`` order), and split index arrays (int64): ``train`` and ``test`` (the archive's own split, in
file order), ``calib`` (the whole train split: activation-range calibration), ``val`` and ``fit`` (the train split
too: these sets are too small to hold a validation part out; the precision search scores on ``fit`` and chooses
on ``val``) and ``all``.

Run: ``python -m models.make_sequence_data``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
#: bundled name -> (archive name, series length, channels, train size, test size)
ARCHIVES = {"italy_power": ("ItalyPowerDemand", 24, 1, 67, 1029),
            "basic_motions": ("BasicMotions", 100, 6, 40, 40)}


def read_ts(text: str) -> tuple[np.ndarray, list[str]]:
    """(series (N, T, C) float64, label strings) of one ``.ts`` file's text (equal-length series, no missing values)."""
    series, labels, in_data = [], [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower() == "@data":
            in_data = True
            continue
        if line.startswith("@") or not in_data:
            continue
        *chans, label = line.split(":")
        series.append(np.array([[float(v) for v in c.split(",")] for c in chans]).T)
        labels.append(label.strip())
    return np.stack(series), labels


def class_names(text: str) -> list[str]:
    """The class names of the ``@classLabel true A B ...`` header line, in order."""
    for line in text.splitlines():
        if line.lower().startswith("@classlabel"):
            return line.split()[2:]
    raise SystemExit("no @classLabel line")


def archive_text(archive: str, part: str) -> str:
    """The text of one archive file inside the installed sktime package."""
    try:
        root = resources.files("sktime").joinpath("datasets", "data", archive)
    except ModuleNotFoundError:
        raise SystemExit("sktime is not installed: pip install sktime (only this script needs it)") from None
    return root.joinpath(f"{archive}_{part}.ts").read_text()


def make_arrays(name: str) -> dict[str, np.ndarray]:
    """The arrays stored in ``<name>.npz`` (module docstring)."""
    archive, length, chans, n_train, n_test = ARCHIVES[name]
    texts = {part: archive_text(archive, part) for part in ("TRAIN", "TEST")}
    classes = class_names(texts["TRAIN"])
    parts = [read_ts(texts[p]) for p in ("TRAIN", "TEST")]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)
    labels = np.array([classes.index(c) for p in parts for c in p[1]], dtype=np.uint8)
    if x.shape != (n_train + n_test, length, chans):
        raise SystemExit(f"{archive}: unexpected shape {x.shape}")
    train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    return {"x": x, "labels": labels, "train": train, "test": test, "calib": train, "val": train, "fit": train,
            "all": np.arange(len(x))}


def main() -> None:
    from models._export import write_data

    for name in ARCHIVES:
        write_data(DATA_DIR / f"{name}.npz", make_arrays(name))


if __name__ == "__main__":
    main()
