"""The compiler's register plan: a vector op's two operand regions stay clear of the loop registers at the top of
the register file. Regression for issue 14's residual Add of two 2048-channel tensors (ResNet-50): its second
operand region (2044 words) overlapped the output pointer, so the store waited forever for invalid words (7x7,
3x3) or the output stayed invalid (1x1)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler import compile_model, runner
from compiler.codegen.loops import LOOP_REGS


def _residual_add(channels: int, size: int) -> onnx.ModelProto:
    rng = np.random.default_rng(channels)
    inits = [onnx.numpy_helper.from_array(rng.normal(0, 0.2, (channels, 16, 1, 1)).astype(np.float32), n)
             for n in ("w1", "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], name="c2", kernel_shape=[1, 1]),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, size, size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, size, size])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("size", [1, 3])
def test_residual_add_of_2048_channels(size):
    m = _residual_add(2048, size)
    x = np.random.default_rng(size).uniform(0, 1, (2, 16, size, size))
    cm = compile_model(m, "16bit", calib={"x": x})
    got = runner.run(cm, {"x": x})
    assert runner.bit_exact(cm, {"x": x}, got)
    ref = runner.reference_outputs(m, {"x": x}, ["y"])["y"]
    # 16-bit weights and inputs: each operand's relative rounding is about 2^-15; two 16-term dot products added
    np.testing.assert_allclose(got.device_float["y"].reshape(ref.shape), ref, atol=2e-3 * np.abs(ref).max())
    hw = cm.program.hw
    loop_regs = set(range(hw.core_regs - LOOP_REGS, hw.core_regs))
    for core in cm.program.cores:  # no vector-op register operand (n words) reaches the loop registers
        for ins in core.instrs:
            names = [f.name for f in ins.spec.fields]
            if "n" not in names:
                continue
            n = int(ins.args[names.index("n")])
            for f, v in zip(ins.spec.fields, ins.args):
                if f.kind == "reg":
                    assert not loop_regs & set(range(int(v), int(v) + n)), ins
