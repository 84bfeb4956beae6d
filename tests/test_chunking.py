"""Large batches run and calibrate in chunks that fit the memory budget, with the results of one pass; one item
that cannot fit is an error with the numbers, raised before the allocation (issue 12 item 9)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler import compile_model, runner
from compiler.driver import import_graph
from compiler.quant import calibrate
from compiler.quant.calibrate import item_bytes
from isa import MvmuImage, memory
from isa.errors import XbarcError
from runtime import Machine
from support import HW, D, I, M, loc, program

from conftest import MLP


def _conv_model(c_in: int, c_out: int, size: int) -> onnx.ModelProto:
    w = np.random.default_rng(3).normal(0, 0.3, (c_out, c_in, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c_in, size, size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c_out, size, size])],
                          [onnx.numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _chunked_equals_one_pass(cm, x: np.ndarray, chunks: int, monkeypatch) -> None:
    """The run split into chunks (a budget from the program's own per-item sizes: a first chunk of
    len(x) / ``chunks`` items) gives the outputs and every statistic of one pass, exactly."""
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x})
    m = Machine(cm.program)
    one = m.run(q, budget=1 << 40)
    regs, tmp, known, whole, _ = m._item_bytes()
    calls = []
    fresh = Machine._fresh_state
    monkeypatch.setattr(Machine, "_fresh_state", lambda self, b, arrays, *rest: calls.append(b) or fresh(self, b, arrays, *rest))
    split = m.run(q, budget=(regs + tmp + whole) * (len(x) // chunks))
    # the first chunk fits the bound; the others are sized from what it really held
    assert calls[0] == len(x) // chunks and len(calls) >= 2 and sum(calls) == len(x)
    for k in one.outputs:
        assert np.array_equal(one.outputs[k], split.outputs[k])
    assert split.stats == one.stats  # cycles, energy per component/instruction/layer, counts: bit for bit


def test_runtime_chunks_equal_one_pass_on_the_mlp(mlp16, digits_test, monkeypatch):
    _chunked_equals_one_pass(mlp16, digits_test[0], 4, monkeypatch)


def test_runtime_chunks_equal_one_pass_on_a_conv_layer(monkeypatch):
    """A conv layer with data-dependent crossbar and DAC energy (the conductance model), packed spatially."""
    x = np.random.default_rng(0).uniform(-1, 1, (23, 3, 6, 6))
    cm = compile_model(_conv_model(3, 8, 6), "8bit", calib={"x": x}, mapping="spatial")
    _chunked_equals_one_pass(cm, x, 3, monkeypatch)


def test_one_item_over_the_budget_is_refused_with_the_numbers(mlp16, digits_test):
    q = runner.quantize_inputs(mlp16, {mlp16.program.inputs[0].name: digits_test[0][:2]})
    hw = mlp16.program.hw
    with pytest.raises(XbarcError) as e:
        Machine(mlp16.program).run(q, budget=1000)
    text = str(e.value)
    assert re.match(rf"run: one item needs about [\d,.]+ MiB \({len(mlp16.program.cores)} cores x {hw.core_regs} "
                    rf"registers, .*\), over the memory budget of 0\.0 MiB; set XBARC_MEMORY_BUDGET", text)


def test_data_dependent_control_flow_cannot_be_split():
    """Branches read batch lane 0: split, the chunks would take different paths -- refused, not wrong."""
    code = [I("load", D, M(0), 1), I("set", D + 1, 0), I("blt", D + 1, D, 4), I("addi", D, D, 1, 1, 16),
            I("store", M(100), D, 1, 0), I("halt")]
    prog = program({(0, 0): code}, inputs=[loc("x", 0, 0, 1)], outputs=[loc("y", 0, 100, 1)])
    x = np.array([[5], [1], [2], [3], [-3], [4]])
    m = Machine(prog)
    assert m.run({"x": x}).outputs["y"].ravel().tolist() == [5, 1, 2, 3, -3, 4]  # lane 0 > 0: no add
    regs, tmp, known, whole, _ = m._item_bytes()
    with pytest.raises(XbarcError, match="takes a different path through its code in different parts of the batch"):
        m.run({"x": x}, budget=(regs + tmp + whole) * 4)  # chunks [0, 4) and [4, 6): lane 0 of the second is -3


def test_idle_mvmu_program_chunks_too(monkeypatch):
    img = MvmuImage(0, 0, 0, np.eye(4, dtype=np.int64), 8)
    code = [I("load", HW.mvmu_in(0), M(0), 4), I("mvm", 1, 8, HW.full_adc_bits, 0, 32, 0, -1),
            I("store", M(200), HW.mvmu_out(0), 4, 0), I("halt")]
    prog = program({(0, 0): code}, mvmus=[img], inputs=[loc("x", 0, 0, 4, 8)], outputs=[loc("y", 0, 200, 4, 32)])
    x = np.random.default_rng(1).integers(-100, 100, (9, 4))
    m = Machine(prog)
    one = m.run({"x": x})
    regs, tmp, known, whole, _ = m._item_bytes()
    split = m.run({"x": x}, budget=(regs + tmp + whole) * 2)
    assert np.array_equal(one.outputs["y"], x) and np.array_equal(split.outputs["y"], x)
    assert split.stats == one.stats


def test_calibration_chunks_give_the_ranges_of_one_pass(digits_test):
    g, _, _ = import_graph(MLP)
    x = {"input": digits_test[0]}
    one = calibrate(g, x, 128, budget=1 << 40)
    per, _ = item_bytes(g)
    split = calibrate(g, x, 128, budget=per * 7)  # 52 chunks of 7 samples (and one of 3)
    assert split.values == one.values and dict(split) == dict(one)
    with pytest.raises(XbarcError, match=r"^calibration: one item needs about"):
        calibrate(g, x, 128, budget=per - 1)


def test_huge_conv_input_is_refused_before_calibration_allocates(monkeypatch):
    """The issue's 1x4096x4096 conv input: 256 synthetic samples would be 32 GiB; one sample's float tensors and
    im2col rows are already over the default budget, which the message says with the numbers."""
    monkeypatch.delenv(memory.ENV, raising=False)
    with pytest.raises(XbarcError) as e:
        compile_model(_conv_model(1, 4, 4096), "16bit")
    assert re.match(r"calibration: one item needs about [\d,.]+ MiB \(\d+ tensors in float32 at op 'conv'; layer 'conv': "
                    r"16777216 windows of 9 inputs\), over the memory budget of 2,048\.0 MiB", str(e.value))


@pytest.mark.parametrize("text,value", [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29),
                                        ("100000", 100000), ("64k", 64 << 10)])
def test_budget_from_the_environment(monkeypatch, text, value):
    monkeypatch.setenv(memory.ENV, text)
    assert memory.memory_budget() == value


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "inf"])
def test_bad_budget_in_the_environment(monkeypatch, text):
    monkeypatch.setenv(memory.ENV, text)
    with pytest.raises(XbarcError, match="XBARC_MEMORY_BUDGET="):
        memory.memory_budget()
