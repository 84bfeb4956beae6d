"""Precision presets, config files and their validation."""

from __future__ import annotations

import json

import pytest

from compiler.driver import import_graph
from compiler.quant import calibrate, resolve_precision
from compiler.quant.precision import frac_for, precision_to_json
from isa.errors import ConfigError
from isa.hardware import DEFAULT
from models.datasets import load_dataset

from conftest import MLP


@pytest.fixture(scope="module")
def graph_ranges():
    g, _, _ = import_graph(MLP)
    x, _ = load_dataset("digits", "calib")
    return g, calibrate(g, {"input": x}, DEFAULT.xbar_rows)


def test_frac_for_fits_the_range():
    assert frac_for(1.0, 8) == 6          # 1.0 * 2^6 = 64 <= 127 < 128
    assert frac_for(0.49, 8) == 8         # 0.49 * 256 = 125.4 <= 127
    assert frac_for(100.0, 8) == 0        # 100 <= 127
    assert frac_for(300.0, 8) == -2       # 300 / 4 = 75 <= 127
    assert frac_for(1.0, 16, headroom=1) == 13


def test_presets_and_calibrated_fractions(graph_ranges):
    g, ranges = graph_ranges
    p = resolve_precision(g, "16bit", ranges, DEFAULT)
    assert p["fc1"].w_bits == 16 and p["fc1"].adc_bits == DEFAULT.full_adc_bits == 10
    # inputs are pixels in [0, 1]: 1.0 needs one integer bit above the sign: frac = 14
    assert p["fc1"].in_frac == 14
    for name, lp in p.items():
        top = (1 << (lp.w_bits - 1)) - 1
        assert ranges[name].weight * 2 ** lp.w_frac <= top < ranges[name].weight * 2 ** (lp.w_frac + 1)


def test_layer_overrides_and_round_trip(graph_ranges, tmp_path):
    g, ranges = graph_ranges
    cfg = {"preset": "8bit", "layers": {"fc2": {"adc_bits": 4, "w_frac": 5}}}
    p = resolve_precision(g, cfg, ranges, DEFAULT)
    assert (p["fc2"].adc_bits, p["fc2"].w_frac, p["fc2"].w_bits) == (4, 5, 8)
    assert p["fc1"].adc_bits == 10
    path = tmp_path / "p.json"
    path.write_text(precision_to_json(p))
    assert resolve_precision(g, path, ranges, DEFAULT) == p


@pytest.mark.parametrize("cfg, message", [
    ({"layers": {"fc9": {}}}, "layers.fc9: not a crossbar layer of the model; layers: fc1, fc2, fc3"),
    ({"layers": {"fc1": {"wbits": 4}}}, "layers.fc1: unknown option 'wbits'"),
    ({"layers": {"fc1": {"w_bits": 1}}}, "layers.fc1.w_bits: must be an integer in [2, 16]"),
    ({"layers": {"fc3": {"adc_bits": 0.5}}}, "layers.fc3.adc_bits: must be an integer"),
    ({"preset": "3bit"}, "preset: unknown precision preset '3bit'"),
    ({"layer": {}}, "unknown key 'layer'; keys: preset, default, layers"),
])
def test_invalid_configs_are_rejected(graph_ranges, cfg, message):
    g, ranges = graph_ranges
    with pytest.raises(ConfigError) as e:
        resolve_precision(g, cfg, ranges, DEFAULT)
    assert message in str(e.value)


def test_bad_json_file_points_at_the_position(graph_ranges, tmp_path):
    g, ranges = graph_ranges
    path = tmp_path / "p.json"
    path.write_text('{"preset": "8bit",\n  "layers": {,}}')
    with pytest.raises(ConfigError, match=r"p\.json:2:14: invalid JSON"):
        resolve_precision(g, path, ranges, DEFAULT)


def test_saturating_activation_frac_rule(graph_ranges):
    g, ranges = graph_ranges
    g.op("fc1").attrs["act"] = "sigmoid"
    try:
        with pytest.raises(ConfigError, match="cannot hold the activation's value 1.0"):
            resolve_precision(g, {"layers": {"fc1": {"acc_bits": 8, "acc_frac": 7}}}, ranges, DEFAULT)
    finally:
        g.op("fc1").attrs["act"] = "relu"
    assert json.loads(precision_to_json(resolve_precision(g, "8bit", ranges, DEFAULT)))["layers"]["fc3"]


def test_frac_deltas_shift_the_calibrated_fractions(graph_ranges):
    g, ranges = graph_ranges
    base = resolve_precision(g, "8bit", ranges, DEFAULT)
    cfg = {"preset": "8bit", "layers": {"fc1": {"w_frac_delta": 2, "in_frac_delta": 1, "acc_frac_delta": -1}}}
    p = resolve_precision(g, cfg, ranges, DEFAULT)
    r = ranges["fc1"]
    assert p["fc1"].w_frac == base["fc1"].w_frac + 2 == frac_for(r.weight, 8) + 2
    assert p["fc1"].in_frac == base["fc1"].in_frac + 1
    assert p["fc1"].acc_frac == base["fc1"].acc_frac - 1
    assert p["fc2"] == base["fc2"]
    with pytest.raises(ConfigError, match="'w_frac_delta' and 'w_frac' exclude each other"):
        resolve_precision(g, {"layers": {"fc1": {"w_frac_delta": 1, "w_frac": 3}}}, ranges, DEFAULT)
    with pytest.raises(ConfigError, match=r"layers\.fc1\.in_frac_delta: must be an integer in \[-8, 8\], got 9"):
        resolve_precision(g, {"layers": {"fc1": {"in_frac_delta": 9}}}, ranges, DEFAULT)
