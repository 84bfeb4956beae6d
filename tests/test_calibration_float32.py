"""Calibration runs the float reference in float32 (half the memory of float64): on every bundled model and
precision preset, the resolved precision (precision.json) and every tensor's format equal those of a float64
calibration on the same data, so the compiled programs are unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler.driver import calibration_inputs, import_graph
from compiler.quant import PRESETS, assign_formats, calibrate, precision_to_json, resolve_precision
from isa.hardware import DEFAULT
from support import DATA

MODELS = sorted(Path(__file__).resolve().parent.parent.glob("models/*.onnx"))


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_float32_calibration_chooses_the_float64_formats(path: Path) -> None:
    g, _, proto = import_graph(str(path))
    inputs, _ = calibration_inputs(g, onnx.load(str(path)), None, data=DATA)
    r32 = calibrate(g, inputs, DEFAULT.xbar_rows)
    r64 = calibrate(g, inputs, DEFAULT.xbar_rows, dtype=np.float64)
    assert r32.values.keys() == r64.values.keys() and dict(r32).keys() == dict(r64).keys()
    for k in r64.values:  # the ranges themselves agree to float32 rounding
        assert r32.values[k] == pytest.approx(r64.values[k], rel=1e-5, abs=1e-30), k
    for preset in PRESETS:
        p32, p64 = (resolve_precision(g, preset, r, DEFAULT) for r in (r32, r64))
        assert precision_to_json(p32) == precision_to_json(p64), preset
        assert assign_formats(g, p32, r32) == assign_formats(g, p64, r64), preset
