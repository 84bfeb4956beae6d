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
    got = np.asarray(out.host.get("y", out.device_float.get("y"))).reshape(len(x), -1)  # a host Identity tail
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
    # x and y (8 x 32 x 32 = 8,192 words each) pass the host port as line buffers; the memory-aware placement
    # (compiler/mapping/fit.py) puts the add on a tile of its own, whose copies hold what the add needs: one
    # 256-word row of x (a port input held in rows) and of y (being sent to the port), and a ring of one 4-pixel
    # group (32 words) of a, the 1x1 conv's output that the add reads pixel by pixel: 544 words
    hw.write_text(json.dumps({"name": "small-memory", "tile_mem_words": 512}))
    x = np.random.default_rng(3).random((2, 8, 32, 32)).astype(np.float32)
    with pytest.raises(ModelError, match=r"tile 1 memory overflow placing tensor 'y' \(256 words\): the tile needs "
                                         r"544 words and has 512 \(tile_mem_words of .small-memory.\) \(ops placed "
                                         r"on it: add\); it holds tensor 'x' 256 words \(band of 1 of 32 rows x 32 x 8\), "
                                         r"tensor 'y' 256 words \(band of 1 of 32 rows x 32 x 8\), tensor 'a' 32 words "
                                         r"\(ring of 1 of 256 groups x 4 x 8\).*tile_mem_words >= "):
        compile_model(residual_model(8, 32), "16bit", hw=str(hw), calib={"x": x})


def dense_block(layers: int, c0: int = 16, growth: int = 8, hw: int = 6, pool: bool = True) -> onnx.ModelProto:
    """A DenseNet block: stem conv, then `layers` x (BN, ReLU, 3x3 conv, concat with everything before)."""
    rng = np.random.default_rng(0)
    lines = ["stem = Conv<kernel_shape=[1,1]>(x, ws)"]
    inits = {"ws": (rng.normal(0, 1, (c0, c0, 1, 1)) / np.sqrt(c0)).astype(np.float32)}
    cur, ch = "stem", c0
    for i in range(layers):
        inits |= {f"s{i}": rng.uniform(0.5, 1.5, ch), f"b{i}": rng.normal(0, 0.1, ch),
                  f"m{i}": rng.normal(0, 0.1, ch), f"v{i}": rng.uniform(0.5, 2, ch),
                  f"w{i}": rng.normal(0, 1, (growth, ch, 3, 3)) / np.sqrt(9 * ch)}
        lines += [f"bn{i} = BatchNormalization({cur}, s{i}, b{i}, m{i}, v{i})", f"r{i} = Relu(bn{i})",
                  f"c{i} = Conv<kernel_shape=[3,3], pads=[1,1,1,1]>(r{i}, w{i})", f"cat{i} = Concat<axis=1>({cur}, c{i})"]
        cur, ch = f"cat{i}", ch + growth
    side = hw // 2 if pool else hw
    lines.append(f"y = AveragePool<kernel_shape=[2,2], strides=[2,2]>({cur})" if pool else f"y = Identity({cur})")
    m = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : 13]>\nagraph (float[N, {c0}, {hw}, {hw}] x) '
                                f'=> (float[N, {ch}, {side}, {side}] y) {{\n' + "\n".join(lines) + "\n}")
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items())
    return m


@pytest.mark.parametrize("layers", [8, 12])
def test_a_dense_block_across_tiles_sends_every_part_of_a_concat_to_its_readers(layers: int) -> None:
    """DenseNet-121 deadlocked: a concat's earlier parts (stem, c0, ...) were sent to the tiles reading the last
    concat but not to a tile reading an intermediate one (cat3 on tile 1). 8 layers already need 3 tiles."""
    x = np.random.default_rng(1).random((2, 16, 6, 6)).astype(np.float32)
    cm = compile_model(dense_block(layers), "16bit", calib={"x": x})
    assert cm.mapping_report()["tiles"] >= 3
    check(dense_block(layers), None, x)


@pytest.mark.parametrize("layers", [2, 8])
def test_a_concat_as_the_graph_output(layers: int) -> None:
    """A dense block whose (nested) concat is the graph output: its parts are sent to the first part's tile,
    which holds the output (it was an error); 8 layers span 3 tiles."""
    x = np.random.default_rng(1).random((2, 16, 6, 6)).astype(np.float32)
    check(dense_block(layers, pool=False), None, x)


@pytest.mark.parametrize("pad", [0, 1])
def test_a_padded_average_pool_sent_to_another_tile_arrives_in_its_order(tmp_path: Path, pad: int) -> None:
    """An average pool with a divisor per border window stores its pixels block by block (border rows and
    columns first); a receiver on another tile took them in raster order, so ShuffleNet's concat of such a pool
    was wrong in its second half. One core per tile puts every op on its own tile."""
    c, h = 16, 12
    out = (h + 2 * pad - 3) // 2 + 1
    text = f"""<ir_version: 8, opset_import: ["" : 9]>
agraph (float[N, {c}, {h}, {h}] x) => (float[N, {2 * c}, {out}, {out}] y) {{
    s = Relu(x)
    sc = AveragePool<kernel_shape=[3,3], strides=[2,2], pads=[{pad},{pad},{pad},{pad}]>(s)
    e = Conv<kernel_shape=[3,3], pads=[{pad},{pad},{pad},{pad}], strides=[2,2]>(s, w)
    cat = Concat<axis=1>(e, sc)
    y = Relu(cat)
}}"""
    m = onnx.parser.parse_model(text)
    rng = np.random.default_rng(4)
    m.graph.initializer.append(numpy_helper.from_array((rng.normal(0, 1, (c, c, 3, 3)) / 12).astype(np.float32), "w"))
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"name": "one-core-tiles", "cores_per_tile": 1}))
    x = rng.normal(0, 1, (2, c, h, h)).astype(np.float32)
    check(m, str(hw), x)
