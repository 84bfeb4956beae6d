"""Loading a compiled directory reads the program at once and the source model, graph IR and precision on
first use (`driver.CompiledModel`): what it reads back equals what the frontend rebuilt eagerly (as loading did
before), running the program never runs the frontend, and a changed source is still named at load time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler import driver, runner
from compiler.driver import import_graph, load_compiled
from compiler.ir import dump
from compiler.modelref import restore_model
from compiler.quant import Ranges, resolve_precision
from models.datasets import load_dataset
from support import compile_model

ROOT = Path(__file__).resolve().parent.parent
CASES = [("lenet5_digits.onnx", "8bit"), ("mlp_digits.onnx", "4bit"), ("resnet_digits.onnx", "8bit"),
         ("lstm_italy_power.onnx", "16bit")]


def _with_host_tail() -> object:
    """A two-layer perceptron ending in Softmax (evaluated on the host after the program)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2"], ["z"]), helper.make_node("Softmax", ["z"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (16, 12)), ("w2", (12, 5)))]
    graph = helper.make_graph(nodes, "tail", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("name", "precision"), CASES + [("host tail", "16bit")])
def test_lazy_load_equals_the_eager_frontend(tmp_path: Path, name: str, precision: str) -> None:
    cm = compile_model(_with_host_tail() if name == "host tail" else ROOT / "models" / name, precision)
    cm.save(tmp_path)
    back = load_compiled(tmp_path)
    graph, host, proto = import_graph(restore_model(tmp_path))  # what load_compiled did before
    prec = resolve_precision(graph, tmp_path / "precision.json", Ranges(), back.hw, resolved=True)
    assert dump(back.graph) == dump(graph) == dump(cm.graph)
    assert back.precision == prec == cm.precision
    assert back.model.SerializeToString() == proto.SerializeToString() == cm.model.SerializeToString()
    assert (back.host_model is None) == (host is None) == (name != "host tail")
    if host is not None:
        assert back.host_model is not None and back.host_model.SerializeToString() == host.SerializeToString()
    assert back.host_ops == graph.host_ops and back.formats == cm.formats and back.warnings == cm.warnings


def test_running_a_loaded_model_does_not_run_the_frontend(tmp_path: Path, monkeypatch) -> None:
    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit")
    cm.save(tmp_path)
    x, y = load_dataset("digits32", "test")
    x, y = x[:8], y[:8]
    expected = runner.evaluate(cm, x, y, check=True)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the frontend ran")

    monkeypatch.setattr(driver, "import_graph", refuse)
    back = load_compiled(tmp_path)
    got = runner.evaluate(back, x, y, check=False)  # the program and the onnxruntime reference only
    for key in ("accuracy", "reference_accuracy", "agreement", "max_abs_error", "energy_pj", "cycles", "host_ops"):
        assert got[key] == expected[key], key
    monkeypatch.undo()
    out = runner.run(back, {back.program.inputs[0].name: x})
    assert runner.bit_exact(back, {back.program.inputs[0].name: x}, out)  # --check: the graph, read on demand
    assert np.array_equal(out.device_int[back.program.outputs[0].name],
                          runner.run(cm, {cm.program.inputs[0].name: x}).device_int[cm.program.outputs[0].name])


def test_a_loaded_model_saves_the_same_directory(tmp_path: Path) -> None:
    cm = compile_model(ROOT / "models" / "mlp_digits.onnx", "8bit")
    cm.save(tmp_path / "a")
    load_compiled(tmp_path / "a").save(tmp_path / "b")  # everything read on demand; no mapping to report
    names = {p.name for p in (tmp_path / "a").iterdir()} - {"mapping.json", "checksums.json"}
    for n in sorted(names):
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n
