"""Shared by the model scripts: onnxruntime accuracy of an exported model and the checked, byte-exact write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from models.datasets import load_dataset


def onnxruntime_accuracy(model: onnx.ModelProto, dataset: str, split: str = "test") -> float:
    """Top-1 accuracy of the model run by onnxruntime on a split of a bundled data set."""
    import onnxruntime as ort

    x, y = load_dataset(dataset, split)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    return float(np.mean(logits.argmax(axis=1) == y))


def check_and_write(model: onnx.ModelProto, path: Path, numpy_acc: float, dataset: str, note: str = "") -> None:
    """Refuse to write unless onnxruntime reproduces the training script's own accuracy; then write the file."""
    ort_acc = onnxruntime_accuracy(model, dataset)
    print(f"{note}float test accuracy: numpy {numpy_acc:.4f}, onnxruntime {ort_acc:.4f}")
    if ort_acc != numpy_acc:
        raise SystemExit("onnxruntime accuracy differs from the numpy forward pass")
    path.write_bytes(model.SerializeToString())
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def write_data(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a committed data set (images, labels and split index arrays) as a compressed npz and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    sizes = ", ".join(f"{k}={len(v)}" for k, v in arrays.items() if k not in ("images", "labels"))
    print(f"wrote {path} ({path.stat().st_size} bytes): {sizes}")
