"""Shared fixtures: the bundled digits data and compiled models (compiled once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler import compile_model
from models.datasets import load_dataset

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "mlp_digits.onnx"


@pytest.fixture(scope="session")
def digits_test():
    """(x, y) of the digits test split."""
    return load_dataset("digits", "test")


@pytest.fixture(scope="session")
def mlp16():
    """The bundled MLP compiled at the 16-bit preset."""
    return compile_model(MLP, "16bit")
