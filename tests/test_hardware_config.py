"""Hardware files: every field of `HardwareConfig` and `CostTable` typed and range-checked at load, with the
field named in one line (issue 12 item 4); a fuzz test: any JSON value loads or gives a `ConfigError`."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from compiler import runner
from support import compile_model
from compiler.cli import main
from isa.errors import ConfigError, XbarcError
from isa.hardware import COST_FIELDS, DEFAULT, HARDWARE_FIELDS, PUMA, CostTable, HardwareConfig, load_hardware

from conftest import MLP


def _load(tmp_path, doc) -> HardwareConfig:
    path = tmp_path / "hardware.json"
    path.write_text(json.dumps(doc))
    return load_hardware(path)


@pytest.mark.parametrize("doc,message", [
    # the cases
    ({"cell_bits": 0}, "field 'cell_bits': must be an integer in [1, 15]"),
    ({"alu_lanes": 0}, "field 'alu_lanes': must be an integer >= 1, got 0"),
    ({"mvmus_per_core": 0}, "field 'mvmus_per_core': must be an integer in [1, 16]"),
    ({"data_regs": -5}, "field 'data_regs': must be an integer in [0, 65535]"),
    ({"costs": {"adc_pj_per_bit": -5}}, "field 'costs.adc_pj_per_bit': must be a finite number >= 0"),
    ({"clock_ghz": -1}, "field 'clock_ghz': must be a finite number in [1e-06, 1000000]"),
    # types: bool is not an int, nor a string or a float
    ({"tiles": True}, "field 'tiles': must be an integer in [1, 4096] (send and recv name a tile in 12 bits), "
                      "got True"),
    ({"tiles": "64"}, "field 'tiles': must be an integer in [1, 4096] (send and recv name a tile in 12 bits), "
                      "got '64'"),
    ({"tiles": 64.0}, "got 64.0"),
    ({"clock_ghz": False}, "field 'clock_ghz'"),
    ({"name": 3}, "field 'name': must be a string, got 3"),
    ({"costs": {"xbar_energy": "quantum"}}, "field 'costs.xbar_energy': must be one of 'conductance', 'static'"),
    ({"costs": {"adc_pj_table": "0.1"}}, "field 'costs.adc_pj_table': must be a list of finite numbers >= 0"),
    ({"costs": {"adc_pj_table": [0.1, None]}}, "field 'costs.adc_pj_table': entry [1] must be a finite number"),
    ({"costs": {"hop_cycles": 1.5}}, "field 'costs.hop_cycles': must be an integer >= 0"),
    ({"costs": []}, "field 'costs': must be an object of cost fields, got a list"),
    ([1, 2], "a hardware description is a JSON object, got a list"),
    # unknown keys, presets
    ({"cel_bits": 2}, "unknown field 'cel_bits'; fields: name, xbar_rows"),
    ({"costs": {"adc_pj": 1}}, "unknown field 'costs.adc_pj'; fields: costs.xbar_energy"),
    ({"preset": "isaac-2"}, "field 'preset': must be one of 'default', 'puma', 'puma-chip', 'isaac', got 'isaac-2'"),
    ({"preset": 1}, "field 'preset': must be one of"),
    # limits derived from the code
    ({"tiles": 5000}, "field 'tiles': must be an integer in [1, 4096]"),
    ({"tile_mem_words": (1 << 24) + 1}, "field 'tile_mem_words': must be an integer in [1, 16777216]"),
    ({"max_input_bits": 33}, "field 'max_input_bits': must be an integer in [2, 32]"),
    ({"dac_bits": 2}, "field 'dac_bits': must be an integer in [1, 1]"),
    # cross-field limits
    ({"xbar_rows": 1024, "cell_bits": 6},
     f"fields 'xbar_rows', 'cell_bits': xbar_rows x (2^cell_bits - 1) = {1024 * 63} must be at most 32767"),
    ({"data_regs": 64000}, f"a core's {8 * 256 + 64000} registers"),
    ({"tiles": 4096, "cores_per_tile": 16}, "fields 'tiles', 'cores_per_tile': 65536 cores must be at most 65535"),
    ({"max_weight_bits": 32}, f"an MVM's exact sum reaches 2^{32 + 7 + 2 * 16} "),  # inputs, log2 rows, 16 slices
    ({"costs": {"adc_pj_table": [0.1, 0.2]}}, "field 'costs.adc_pj_table': needs an entry for every ADC "
                                              "resolution 1..10 bits"),
])
def test_bad_field_is_named_in_one_line(tmp_path, doc, message):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, doc)
    text = str(e.value)
    assert text.startswith(f"{tmp_path / 'hardware.json'}: ") and message in text and "\n" not in text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_floats_are_rejected(tmp_path, value):
    path = tmp_path / "hardware.json"
    path.write_text('{"costs": {"router_pj": %s}}' % value)
    with pytest.raises(ConfigError, match="field 'costs.router_pj': must be a finite number >= 0"):
        load_hardware(path)


def test_invalid_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "hw.json"
    path.write_text('{"tiles": 4,\n "cores_per_tile": }')
    with pytest.raises(ConfigError, match=r"hw\.json:2:20: invalid JSON"):
        load_hardware(path)


def test_construction_and_changes_are_checked_too():
    with pytest.raises(ConfigError, match="^hardware: field 'cell_bits'"):
        HardwareConfig(cell_bits=0)
    with pytest.raises(ConfigError, match="^hardware: field 'costs.fifo_pj'"):
        CostTable(fifo_pj=math.nan)
    with pytest.raises(ConfigError, match="^hardware: field 'alu_lanes'"):
        DEFAULT.with_changes(alu_lanes=0)
    with pytest.raises(ConfigError, match="^hardware: unknown field 'lanes'"):
        DEFAULT.with_changes(lanes=4)
    with pytest.raises(ConfigError, match="^hardware: field 'costs.adc_pj_per_bit'"):
        DEFAULT.with_changes(costs={"adc_pj_per_bit": -1.0})


def test_presets_and_every_field_round_trip():
    for hw in (DEFAULT, PUMA):
        assert HardwareConfig.from_dict(hw.to_dict()) == hw
    assert set(HARDWARE_FIELDS) == {f.name for f in dataclasses.fields(HardwareConfig)} - {"costs"}
    assert set(COST_FIELDS) == {f.name for f in dataclasses.fields(CostTable)}


def test_compiler_needs_enough_data_registers(tmp_path):
    hw = DEFAULT.with_changes(data_regs=100)  # a legal chip (hand-written programs run on it) ...
    need = (8 + 1) * 128 + 10  # (MVMUs + 1) x columns: biases and a partial sum; 10 loop registers
    with pytest.raises(ConfigError, match=f"field 'data_regs': the compiler needs at least {need} data registers"):
        compile_model(MLP, "16bit", hw=hw)  # ... but the compiler's register plan does not fit


def test_cli_rejects_bad_hardware_file_without_traceback(tmp_path, capsys):
    path = tmp_path / "hardware.json"
    path.write_text('{"cell_bits": 0}')
    assert main(["compile", str(MLP), "-o", str(tmp_path / "out"), "--hardware", str(path)]) != 0
    err = capsys.readouterr().err
    assert "hardware.json: field 'cell_bits': must be an integer in [1, 15]" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_valid_small_chip_still_compiles_and_runs(digits_test):
    hw = DEFAULT.with_changes(alu_lanes=1, clock_ghz=0.5, costs={"adc_pj_per_bit": 0.0})
    cm = compile_model(MLP, "16bit", hw=hw)
    x = digits_test[0][:2]
    r = runner.run(cm, {cm.program.inputs[0].name: x})
    assert r.stats.per_component["adc"] == 0.0 and r.stats.energy_pj > 0


# ---- fuzz -------------------------------------------------------------------------------------------------------
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.integers(-3, 300),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                     st.sampled_from(["conductance", "static", "default", "puma"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                             max_size=3), max_leaves=8)
_HW_KEYS = st.sampled_from(sorted(HARDWARE_FIELDS) + ["preset", "costs", "bogus"])
_COST_KEYS = st.sampled_from(sorted(COST_FIELDS) + ["bogus"])
_COSTS = st.dictionaries(_COST_KEYS, _VALUES, max_size=4) | _VALUES
_DOCS = st.dictionaries(_HW_KEYS, _VALUES, max_size=5).flatmap(
    lambda d: st.just(d) if "costs" not in d else _COSTS.map(lambda c: d | {"costs": c})) | _VALUES


@settings(max_examples=50, deadline=None)
@given(doc=_DOCS)
def test_fuzz_hardware_files_load_or_raise_config_error(doc):
    try:
        hw = HardwareConfig.from_dict(doc, "fuzz.json")
    except XbarcError as e:
        assert str(e).startswith("fuzz.json: ") and "\n" not in str(e)
        return
    assert HardwareConfig.from_dict(hw.to_dict()) == hw  # whatever loads is a consistent machine
    assert hw.full_adc_bits <= 16 and hw.core_regs <= 65535 and hw.cycles(1.0) >= 1


@settings(max_examples=50, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(sorted(HARDWARE_FIELDS)), st.integers(-2, 70000), max_size=3))
def test_fuzz_integer_fields_near_their_limits(changes):
    try:
        hw = DEFAULT.with_changes(**changes)
    except ConfigError:
        return
    assert np.isfinite(hw.costs.adc_conversion_pj(hw.full_adc_bits))


def test_hardware_recorded_in_a_program_directory_is_checked(tmp_path, mlp16):
    from isa.files import load_program, write_checksums

    out = tmp_path / "mlp"
    mlp16.save(out)
    man = json.loads((out / "manifest.json").read_text())
    man["hw"]["cell_bits"] = 0
    (out / "manifest.json").write_text(json.dumps(man))
    write_checksums(out)  # a deliberate edit: the manifest's own check is reached
    with pytest.raises(ConfigError, match=r"manifest\.json: hw: field 'cell_bits': must be an integer in \[1, 15\]"):
        load_program(out)
