"""Precision files are checked against a schema with located messages (issue 12 item 8), at compile
(``--precision FILE`` and dicts) and when a compiled directory's precision.json is loaded back; a fuzz test: any
JSON value resolves or gives a `ConfigError`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from compiler.cli import main
from compiler.driver import load_compiled
from compiler.quant import calibrate, resolve_precision
from compiler.quant.precision_schema import channel_specs, option_specs
from isa.errors import ConfigError, XbarcError
from isa.hardware import DEFAULT
from isa.files import write_checksums
from models.datasets import load_dataset

from conftest import MLP


@pytest.fixture(scope="module")
def graph_ranges():
    from compiler.driver import import_graph

    g, _, _ = import_graph(MLP)
    x, _ = load_dataset("digits", "calib")
    return g, calibrate(g, {"input": x[:64]}, DEFAULT.xbar_rows)


def _resolve(graph_ranges, tmp_path, doc):
    g, ranges = graph_ranges
    path = tmp_path / "precision.json"
    path.write_text(json.dumps(doc))
    return resolve_precision(g, path, ranges, DEFAULT)


VARIED = {"w_scheme": "varied", "w_bits": 8}


@pytest.mark.parametrize("doc,where,problem", [
    ({"layers": ["fc1"]}, "layers", "must be an object mapping layer names to options, got a list ['fc1']"),
    ({"layers": {"fc1": 8}}, "layers.fc1", "must be an object of options, got a number 8"),
    ({"layers": {"fc1": None}}, "layers.fc1", "must be an object of options, got null None"),
    ({"default": [1]}, "default", "must be an object of options, got a list [1]"),
    (["16bit"], "", "a precision config is a JSON object, got a list"),
    ({"preset": 8}, "preset", "unknown precision preset 8"),
    ({"layers": {"fc1": VARIED | {"w_channels": [{"scheme": "uniform", "bits": 4}] * 3
                                  + [{"scheme": "uniform", "bits": 4, "foo": 1}]}}},
     "layers.fc1.w_channels[3]", "unknown key 'foo'; keys: scheme, bits, k, bins"),
    ({"layers": {"fc1": VARIED | {"w_channels": [{"bits": 4}]}}}, "layers.fc1.w_channels[0]", "missing key 'scheme'"),
    ({"layers": {"fc1": VARIED | {"w_channels": [{"scheme": "pot"}]}}}, "layers.fc1.w_channels[0]",
     "missing key 'bits'"),
    ({"layers": {"fc1": VARIED | {"w_channels": [{"scheme": "pot", "bits": True}]}}},
     "layers.fc1.w_channels[0].bits", "must be an integer in [1, 64], got True"),
    ({"layers": {"fc1": VARIED | {"w_channels": [{"scheme": "pot", "bits": 3, "k": 1.0}]}}},
     "layers.fc1.w_channels[0]", "keys 'k' and 'bins' belong to the codebook scheme, not 'pot'"),
    ({"layers": {"fc1": VARIED | {"w_channels": ["uniform"]}}}, "layers.fc1.w_channels[0]", "must be an object"),
    ({"layers": {"fc1": VARIED | {"w_channels": {"scheme": "pot"}}}}, "layers.fc1.w_channels",
     "must be a list of channel schemes"),
    ({"layers": {"fc1": VARIED | {"w_channels": [{"scheme": "uniform", "bits": 9}]}}},
     "layers.fc1.w_channels[0].bits", "must be an integer in [2, 8] (the layer's w_bits), got 9"),
    ({"default": VARIED | {"w_channels": [{"scheme": "uniform", "bits": 9}]}}, "default.w_channels[0].bits",
     "must be an integer in [2, 8] (the layer's w_bits), got 9"),
    ({"layers": {"fc1": {"w_bits": "8"}}}, "layers.fc1.w_bits", "must be an integer in [2, 16]"),
    ({"layers": {"fc1": {"w_k": float("nan")}}}, "layers.fc1.w_k", "must be a finite number"),
    ({"layers": {"fc1": {"w_frac": 70}}}, "layers.fc1.w_frac", "must be an integer in [-16, 62], got 70"),
    ({"default": {"w_frac_delta": 1, "w_frac": 3}}, "default",
     "options 'w_frac_delta' and 'w_frac' exclude each other"),
])
def test_structural_errors_are_located(graph_ranges, tmp_path, doc, where, problem):
    with pytest.raises(ConfigError) as e:
        _resolve(graph_ranges, tmp_path, doc)
    path = tmp_path / "precision.json"
    assert str(e.value) == (f"{path}: {where}: {problem}" if where else f"{path}: {problem}") or \
        str(e.value).startswith(f"{path}: {where}: {problem}")


def test_codebook_entries_take_k_and_bins(graph_ranges, tmp_path):
    chans = [{"scheme": "codebook", "bits": 3, "k": 0.5, "bins": 256}, {"scheme": "uniform", "bits": 4}]
    p = _resolve(graph_ranges, tmp_path, {"layers": {"fc1": VARIED | {"w_channels": chans}}})
    assert p["fc1"].w_channels == tuple(chans)


@pytest.fixture()
def compiled(tmp_path, mlp16):
    out = tmp_path / "mlp"
    mlp16.save(out)
    return out


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["layers"].pop("fc2"), "layers: missing layer 'fc2'"),
    (lambda d: d["layers"]["fc1"].pop("w_frac"), "layers.fc1: missing option(s) w_frac"),
    (lambda d: d.update(layers=["fc1"]), "layers: must be an object mapping layer names to options"),
    (lambda d: d["layers"].update(fc1=8), "layers.fc1: must be an object of options, got a number 8"),
    (lambda d: d["layers"]["fc3"].update(foo=1), "layers.fc3: unknown option 'foo'"),
    (lambda d: d["layers"]["fc3"].update(w_k=-1), "layers.fc3.w_k: -1 (search k) is not a resolved value"),
])
def test_loading_a_damaged_precision_json_names_the_place(compiled, edit, message):
    path = compiled / "precision.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    write_checksums(compiled)  # a deliberate edit: the schema, not the checksums, must name what is wrong
    with pytest.raises(ConfigError) as e:
        load_compiled(compiled)
    assert str(e.value).startswith(f"{path}: {message}")


def test_loading_back_gives_the_compiled_precision(compiled, mlp16):
    assert load_compiled(compiled).precision == mlp16.precision


def test_empty_precision_json_names_the_file(compiled, capsys):
    (compiled / "precision.json").write_text("")
    write_checksums(compiled)
    assert main(["run", str(compiled), "--dataset", "digits", "--limit", "2"]) != 0
    err = capsys.readouterr().err
    assert f"{compiled / 'precision.json'}:1:1: invalid JSON" in err and "Traceback" not in err


def test_cli_precision_file_error_is_located(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"layers": {"fc1": 8}}))
    assert main(["compile", str(MLP), "-o", str(tmp_path / "o"), "--precision", str(path)]) != 0
    err = capsys.readouterr().err
    assert f"{path}: layers.fc1: must be an object of options, got a number 8" in err and "Traceback" not in err


# ---- fuzz -------------------------------------------------------------------------------------------------------
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-100, 100), st.integers(-(1 << 70), 1 << 70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                     st.sampled_from(["16bit", "8bit", "varied", "nonuniform", "uniform", "pot", "codebook",
                                      "twos", "sce", "csd", "fc1"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3),
                                                                                             inner, max_size=3),
                       max_leaves=6)
_CHANNEL = st.dictionaries(st.sampled_from(sorted(channel_specs()) + ["foo"]),
                           st.integers(-1, 20) | st.sampled_from(["uniform", "pot", "apot", "codebook"]) | _SCALARS,
                           max_size=4)
_OPT_VALUES = st.integers(-20, 70) | st.floats(-2, 10) | st.lists(_CHANNEL, max_size=3) | _VALUES
_OPTIONS = st.dictionaries(st.sampled_from(sorted(option_specs(DEFAULT)) + ["bogus"]), _OPT_VALUES, max_size=4)
_DOCS = st.fixed_dictionaries({}, optional={
    "preset": st.sampled_from(["16bit", "8bit", "4bit", "puma"]) | _SCALARS,
    "default": _OPTIONS | _VALUES,
    "layers": st.dictionaries(st.sampled_from(["fc1", "fc2", "fc3", "fc9"]), _OPTIONS | _VALUES, max_size=3)
    | _VALUES,
    "extra": _VALUES}) | _VALUES


@settings(max_examples=50, deadline=None)
@given(doc=_DOCS, resolved=st.booleans())
def test_fuzz_precision_configs_resolve_or_raise_config_error(graph_ranges, doc, resolved):
    g, ranges = graph_ranges
    try:
        prec = resolve_precision(g, doc, ranges, DEFAULT, resolved=resolved)
    except XbarcError as e:
        # a string is a preset name or a file, not a document
        assert str(e).startswith("precision config: " if not isinstance(doc, str) else "precision '")
        assert "\n" not in str(e)
        return
    assert set(prec) == {"fc1", "fc2", "fc3"}


def test_preset_widths_are_checked_against_a_small_chip(graph_ranges):
    """A preset's widths are not in the document, but they must fit the chip too."""
    g, ranges = graph_ranges
    hw = DEFAULT.with_changes(max_input_bits=8, max_weight_bits=8)
    with pytest.raises(ConfigError, match=r"^precision config: preset '16bit': option 'w_bits' \(layer fc1\): must "
                                          r"be an integer in \[2, 8\] \(max_weight_bits of the chip\), got 16$"):
        resolve_precision(g, "16bit", ranges, hw)
    with pytest.raises(ConfigError, match=r"^precision config: default\.in_bits: must be an integer in \[1, 8\]"):
        resolve_precision(g, {"preset": "8bit", "default": {"in_bits": 16}}, ranges, hw)
    assert resolve_precision(g, "8bit", ranges, hw)["fc1"].w_bits == 8
