"""Shared fixtures: the bundled digits data and compiled models (compiled once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import compile_model
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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """Print the ONNX node-test summary (tests/test_onnx_backend.py) when that module ran, after the short test
    summary (an outermost wrapper: its code after ``yield`` runs last)."""
    import sys

    yield
    for mod in list(sys.modules.values()):
        if getattr(mod, "__file__", None) and str(mod.__file__).endswith("test_onnx_backend.py"):
            for line in getattr(mod, "summary_lines", lambda: [])():
                terminalreporter.write_line(line)
            break
