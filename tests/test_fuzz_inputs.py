"""Fuzzing what a user hands xbarc (issue 12): mutated ONNX models (bytes and structure), precision files and
hardware files. Each input must compile and run bit-exactly, or fail with an `XbarcError` (a message naming the
file, field, node or tensor); any other exception is a bug. CI runs a bounded number of examples per fuzzer;
``benchmarks/fuzz_inputs.py`` runs the large campaign through the command line and also looks for silent wrong
results."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from compiler import compile_model
from compiler.runner import bit_exact, run
from isa.errors import XbarcError
from models.datasets import load_dataset

from conftest import MLP

LENET = MLP.parent / "lenet5_digits.onnx"
# derandomized: CI sees the same examples on every machine (benchmarks/fuzz_inputs.py explores at random)
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
X_FLAT = load_dataset("digits", "calib")[0][:16]
X_32 = load_dataset("digits32", "calib")[0][:16]


def compile_and_run(model: onnx.ModelProto | str | Path, **kw) -> None:
    """Compile and run 4 images; the run must be bit-exact. XbarcError passes through."""
    cm = compile_model(model, calib={"input": X_32 if "lenet" in str(kw.pop("tag", "")) else X_FLAT}, **kw)
    x = {cm.program.inputs[0].name: (X_32 if cm.program.inputs[0].shape == (1, 32, 32) else X_FLAT)[:4]}
    outcome = run(cm, x)
    assert bit_exact(cm, x, outcome)


def expect_clean(fn) -> None:
    try:
        fn()
    except XbarcError as e:
        assert str(e).strip(), "an error without a message"


# ---- ONNX models -------------------------------------------------------------------------------------------------
_EXTREME = st.sampled_from([0.0, -0.0, 1e30, -1e30, 1e-30, float("nan"), float("inf"), -float("inf"), 65504.0])


@st.composite
def structure_mutant(draw) -> onnx.ModelProto:
    m = onnx.load(MLP)
    g = m.graph
    kind = draw(st.sampled_from(["value", "scale", "attr", "drop_node", "op_type", "shape", "opset", "dtype",
                                 "drop_init"]))
    if kind in ("value", "scale", "dtype"):
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        a = numpy_helper.to_array(t).astype(np.float64).copy()
        if kind == "value":
            a.flat[draw(st.integers(0, a.size - 1))] = draw(_EXTREME)
        elif kind == "scale":
            a = a * draw(st.sampled_from([0.0, 1e-30, 1e30, -1.0]))
        dtype = draw(st.sampled_from([np.float16, np.float64, np.int64])) if kind == "dtype" else np.float32
        with np.errstate(all="ignore"):
            t.CopyFrom(numpy_helper.from_array(a.astype(dtype), t.name))
    elif kind == "attr":
        n = g.node[draw(st.sampled_from([0, 2, 4]))]  # the Gemms
        n.attribute.append(onnx.helper.make_attribute(draw(st.sampled_from(["alpha", "beta"])), draw(_EXTREME)))
    elif kind == "drop_node":
        del g.node[draw(st.integers(0, len(g.node) - 1))]
    elif kind == "op_type":
        g.node[draw(st.integers(0, len(g.node) - 1))].op_type = draw(st.sampled_from(
            ["Relu", "Sigmoid", "Gemm", "Conv", "Exp", "Softmax", "Flatten", "LRN", "MaxPool"]))
    elif kind == "shape":
        d = g.input[0].type.tensor_type.shape.dim[draw(st.integers(0, 1))]
        d.Clear()
        d.dim_value = draw(st.sampled_from([0, 1, 3, 63, 65]))
    elif kind == "opset":
        m.opset_import[0].version = draw(st.sampled_from([1, 6, 11, 17, 99]))
    else:
        del g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
    return m


@FUZZ
@given(structure_mutant())
def test_fuzz_onnx_structure(model: onnx.ModelProto) -> None:
    expect_clean(lambda: compile_and_run(copy.deepcopy(model)))


@FUZZ
@given(st.data())
def test_fuzz_onnx_bytes(tmp_path_factory, data) -> None:
    raw = bytearray(MLP.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        if op == "flip":
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "truncate":
            del raw[i:]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            break
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    path.write_bytes(bytes(raw))
    expect_clean(lambda: compile_and_run(path))


# ---- precision and hardware files --------------------------------------------------------------------------------
_SCALAR = st.one_of(st.integers(-3, 40), st.sampled_from([2 ** 70, -1]), st.floats(allow_nan=True),
                    st.booleans(), st.none(), st.sampled_from(["16bit", "sce", "tc", "csd", "twos", "uniform",
                                                               "varied", "nonuniform", "", "x"]))
_KEYS = st.sampled_from(["w_bits", "w_frac", "in_bits", "in_frac", "acc_bits", "acc_frac", "adc_bits", "w_enc",
                         "in_enc", "skip", "w_scheme", "w_k", "w_channels", "scheme", "bits", "bogus"])
_JSON = st.recursive(_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=8)


@st.composite
def precision_doc(draw):
    if draw(st.booleans()):
        return draw(_JSON)
    layers = st.sampled_from(["fc1", "fc2", "fc3", "ghost"])
    return {"preset": draw(st.sampled_from(["16bit", "8bit", "puma", "nope"])),
            "layers": draw(st.dictionaries(layers, st.dictionaries(_KEYS, _JSON, max_size=3), max_size=3))}


@FUZZ
@given(precision_doc())
def test_fuzz_precision_files(tmp_path_factory, doc) -> None:
    path = tmp_path_factory.mktemp("prec") / "p.json"
    path.write_text(json.dumps(doc))
    expect_clean(lambda: compile_and_run(MLP, precision=str(path)))


def _hardware_fields() -> tuple[list[str], list[str]]:
    import dataclasses

    from isa.hardware import CostTable, HardwareConfig

    return ([f.name for f in dataclasses.fields(HardwareConfig) if f.name != "costs"],
            [f.name for f in dataclasses.fields(CostTable)])


HW_FIELDS, COST_FIELDS = _hardware_fields()


@st.composite
def hardware_doc(draw):
    doc = draw(st.dictionaries(st.sampled_from(HW_FIELDS + ["bogus"]), _SCALAR, min_size=1, max_size=3))
    if draw(st.booleans()):
        doc["costs"] = draw(st.dictionaries(st.sampled_from(COST_FIELDS), _SCALAR, max_size=2))
    return doc


@FUZZ
@given(hardware_doc())
def test_fuzz_hardware_files(tmp_path_factory, doc) -> None:
    path = tmp_path_factory.mktemp("hw") / "hw.json"
    path.write_text(json.dumps(doc))
    expect_clean(lambda: compile_and_run(MLP, hw=str(path)))


@pytest.mark.parametrize("doc", ['{"cell_bits": 0}', '{"alu_lanes": 0}', '{"mvmus_per_core": 0}',
                                 '{"data_regs": -5}', '{"costs": {"adc_pj_per_bit": -5}}', '{"clock_ghz": -1}',
                                 '[1, 2]', '', '{"tiles": "many"}'])
def test_bad_hardware_files_are_errors(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "hw.json"
    path.write_text(doc)
    with pytest.raises(XbarcError, match=str(path).replace(".", r"\.") + "|hardware"):
        compile_and_run(MLP, hw=str(path))


@pytest.mark.parametrize("attr,value", [("alpha", float("inf")), ("alpha", float("nan")), ("beta", float("nan"))])
def test_a_non_finite_attribute_is_named(attr: str, value: float) -> None:
    m = onnx.load(MLP)
    m.graph.node[2].attribute.append(onnx.helper.make_attribute(attr, value))
    with pytest.raises(XbarcError, match=r"node 'fc2' \(Gemm\): its (weight|bias) is not finite"):
        compile_model(m, calib={"input": X_FLAT})


def test_a_name_that_is_not_utf8_is_a_damaged_model(tmp_path: Path) -> None:
    raw = MLP.read_bytes()
    i = raw.index(b"mlp_digits")  # the graph's name
    path = tmp_path / "m.onnx"
    path.write_bytes(raw[:i] + b"\xed" + raw[i + 1:])
    with pytest.raises(XbarcError, match=r"m.onnx: damaged: the graph.s name is not valid UTF-8 text"):
        compile_model(path, calib={"input": X_FLAT})


def test_a_reference_that_onnxruntime_cannot_run_is_a_clean_error() -> None:
    from compiler.runner import reference_outputs

    m = onnx.load(MLP)
    m.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(XbarcError, match="onnxruntime, the float reference, cannot run the source model"):
        reference_outputs(m, {"input": X_FLAT[:2]}, ["logits"])
