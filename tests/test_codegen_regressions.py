"""Regressions of code generation found on real models (issue 14): each compiled, ran, and is compared with the
functional model bit for bit and with onnxruntime within the 16-bit preset's tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler import compile_model
from compiler.runner import bit_exact, reference_outputs, run


def residual_model(c: int, h: int) -> onnx.ModelProto:
    """y = conv1x1(x) + x over ``c`` channels at ``h`` x ``h`` (a ResNet bottleneck's residual Add)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.normal(size=(c, c, 1, 1)) / np.sqrt(c)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Add", ["a", "x"], ["y"], name="add")]
    g = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, h, h])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, h, h])], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def check(model: onnx.ModelProto, hw: str | None, x: np.ndarray) -> None:
    cm = compile_model(model, "16bit", hw=hw, calib={"x": x})
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    ref = reference_outputs(model, {"x": x}, ["y"])["y"].reshape(len(x), -1)
    got = out.device_float["y"].reshape(len(x), -1)
    frac = cm.program.outputs[0].frac
    # 16-bit activations with >= 8 fraction bits here: rounding of the inputs, the weights and the output plus the
    # accumulated rounding of c products stays far below 2^-5
    assert frac >= 8 and np.abs(got - ref).max() < 2.0 ** -5


@pytest.mark.parametrize("h", [1, 3])
def test_vector_op_chunks_leave_the_loop_registers_alone(tmp_path: Path, h: int) -> None:
    """A vector op over more channels than half the data registers holds is cut into chunks; the second operand
    region of a chunk must end below the loop counters and pointers at the top of the register file (ResNet-50's
    2048-channel residual Add deadlocked or lost 2044 of 2048 words). The smallest register file the compiler
    accepts for one MVMU per core (2 x 128 + 10 words) shows it at 130 channels."""
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"name": "small-regs", "mvmus_per_core": 1, "data_regs": 266}))
    x = np.random.default_rng(1).random((2, 130, h, h)).astype(np.float32)
    check(residual_model(130, h), str(hw), x)


def test_resnet50_width_residual_add_on_the_default_chip() -> None:
    x = np.random.default_rng(2).random((2, 2048, 1, 1)).astype(np.float32)
    check(residual_model(2048, 1), None, x)


def test_a_tile_memory_overflow_names_the_tensor_and_the_size_that_fits(tmp_path: Path) -> None:
    from isa.errors import ModelError

    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"name": "small-memory", "tile_mem_words": 4096}))
    x = np.random.default_rng(3).random((2, 8, 32, 32)).astype(np.float32)  # 8 x 32 x 32 = 8,192 words
    with pytest.raises(ModelError, match=r"tile 0 memory overflow placing tensor 'x' \(8,192 words\): the tile needs "
                                         r"[\d,]+ words and has 4,096 \(tile_mem_words\); .*tile_mem_words >= "):
        compile_model(residual_model(8, 32), "16bit", hw=str(hw), calib={"x": x})
