"""Line buffers: `peek` reads without consuming, `free` consumes without reading, so a row stored with a reader
count per reader core is overwritten only after every reader freed it; and convolution chains whose activations do
not fit a tile run in row bands, bit-exact against the functional model."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from compiler.driver import compile_model
from compiler.runner import bit_exact, reference_outputs, run
from isa import DeadlockError
from isa.errors import ModelError
from isa.hardware import DEFAULT
from isa.printer import format_instr
from runtime import Machine
from support import HW, I, M, loc, parsed_model, program

d = HW.data_base


def test_a_word_is_rewritten_only_after_each_reader_freed_it() -> None:
    """Core 0 stores 4 words with 2 readers, then stores new values at the same place; cores 1 and 2 peek twice
    (no effect on the counts) and free once each: the second store waits for both frees, so both readers see the
    first values and the output holds the second."""
    writer = [I("addi", d, d, 7, 4, 16), I("store", M(0), d, 4, 2), I("addi", d, d, 2, 4, 16),
              I("store", M(0), d, 4, 0), I("halt")]

    def reader(k: int) -> list:
        return [I("peek", d, M(0), 4), I("peek", d + 4, M(0), 4), I("free", M(0), 4),
                I("store", M(8 + 8 * k), d, 8, 0), I("halt")]

    prog = program({(0, 0): writer, (0, 1): reader(0), (0, 2): reader(1)},
                   outputs=[loc("y", 0, 0, 4), loc("r0", 0, 8, 8), loc("r1", 0, 16, 8)])
    res = Machine(prog).run({})
    assert res.outputs["y"].tolist() == [[9] * 4]
    assert res.outputs["r0"].tolist() == res.outputs["r1"].tolist() == [[7] * 8]
    assert res.stats.per_instruction["free"]["count"] == 2


def test_a_row_nobody_freed_is_never_overwritten() -> None:
    """Peeks alone leave the reader count: the writer's second store blocks for ever (a reported deadlock)."""
    writer = [I("addi", d, d, 7, 4, 16), I("store", M(0), d, 4, 1), I("store", M(0), d, 4, 0), I("halt")]
    prog = program({(0, 0): writer, (0, 1): [I("peek", d, M(0), 4), I("halt")]}, outputs=[loc("y", 0, 0, 4)])
    with pytest.raises(DeadlockError, match="tile 0 core 0 pc 2: store"):
        Machine(prog).run({})


def conv_chain(c: int = 16, hw: int = 16) -> tuple[onnx.ModelProto, np.ndarray]:
    """x (1 x hw x hw) -> 3x3 conv (c) relu -> 1x1 conv (c) relu -> 3x3/2 conv (4): the two c-channel tensors
    (hw x hw x c words each, the second with a border) are read by convs only."""
    rng = np.random.default_rng(0)
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 1, {hw}, {hw}] x) => (float[N, 4, {hw // 2}, {hw // 2}] y) <float[{c}, 1, 3, 3] w1,
      float[{c}] b1, float[{c}, {c}, 1, 1] w2, float[4, {c}, 3, 3] w3> {{
        a = Conv<pads=[1,1,1,1]>(x, w1, b1)
        ar = Relu(a)
        b = Conv(ar, w2)
        br = Relu(b)
        y = Conv<pads=[1,1,1,1], strides=[2,2]>(br, w3)
    }}"""
    model = onnx.parser.parse_model(text)
    for name, shape in [("w1", (c, 1, 3, 3)), ("b1", (c,)), ("w2", (c, c, 1, 1)), ("w3", (4, c, 3, 3))]:
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        model.graph.initializer.append(onnx.numpy_helper.from_array(
            (rng.normal(0, 1, shape) / np.sqrt(fan)).astype(np.float32), name))
    return model, rng.random((3, 1, hw, hw)).astype(np.float32)


@pytest.mark.parametrize(("mapping", "size", "words"), [("naive", 16, 6144), ("spatial", 32, 12288)])
def test_a_conv_chain_larger_than_the_tile_runs_in_line_buffers_bit_exact(mapping: str, size: int,
                                                                          words: int) -> None:
    """Whole, the two size x size x 16 tensors (the second with its border: 4,096 + 5,184 words at 16, 16,384 +
    18,496 at 32) do not fit the tile; as line buffers they do: a ring of pixel groups for the 1x1 conv's input
    (it reads pixel by pixel), rows of (size + 2) x 16 words for the strided 3x3 conv's (no border rows). At 32 the
    interior rows run as loops over groups of unrolled rows. The runtime's integers equal the functional
    model's and those of the same model compiled with whole tensors."""
    model, x = conv_chain(hw=size)
    hw = DEFAULT.with_changes(name="tiny", tiles=1, tile_mem_words=words)
    cm = compile_model(model, "16bit", hw=hw, calib={"x": x}, mapping=mapping)
    text = [format_instr(i) for cc in cm.program.cores for i in cc.instrs]
    assert any(t.startswith("peek") for t in text) and any(t.startswith("free") for t in text)
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    whole = compile_model(model, "16bit", hw=DEFAULT.with_changes(tiles=1), calib={"x": x}, mapping=mapping)
    assert not any(format_instr(i).startswith("peek") for cc in whole.program.cores for i in cc.instrs)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])
    ref = reference_outputs(model, {"x": x}, ["y"])["y"].reshape(len(x), -1)
    assert np.abs(out.device_float["y"].reshape(len(x), -1) - ref).max() < 2.0 ** -5


def test_line_buffers_travel_between_tiles_row_by_row() -> None:
    """One core per tile: every conv on its own tile, so each line-buffered tensor is sent pixel by pixel and
    received by its reader row by row into its band (the producer's copy is freed by its sends)."""
    model, x = conv_chain(hw=32)
    hw = DEFAULT.with_changes(name="tiny", tiles=3, cores_per_tile=1, tile_mem_words=8192)
    cm = compile_model(model, "16bit", hw=hw, calib={"x": x})
    assert sorted(cc.tile for cc in cm.program.cores) == [0, 1, 2]
    text = [format_instr(i) for cc in cm.program.cores for i in cc.instrs]
    assert any(t.startswith("recv") for t in text) and any(t.startswith("free") for t in text)
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    whole = compile_model(model, "16bit", hw=hw.with_changes(tile_mem_words=65536), calib={"x": x})
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def strided_chain(hw: int = 24) -> tuple[onnx.ModelProto, np.ndarray]:
    """x (2 x hw x hw) -> dilated 3x3 conv (8, dilation 2, pad 2) relu -> 1x1/2 conv (8) relu (reads every other
    row: the odd rows are freed unread) -> 3x3 conv (8, pad 1) relu -> 2x2/2 conv (3) = y."""
    rng = np.random.default_rng(1)
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 2, {hw}, {hw}] x) => (float[N, 3, {hw // 4}, {hw // 4}] y) <float[8, 2, 3, 3] w1,
      float[8, 8, 1, 1] w2, float[8, 8, 3, 3] w3, float[3, 8, 2, 2] w4> {{
        a = Conv<pads=[2,2,2,2], dilations=[2,2]>(x, w1)
        ar = Relu(a)
        b = Conv<strides=[2,2]>(ar, w2)
        br = Relu(b)
        c = Conv<pads=[1,1,1,1]>(br, w3)
        cr = Relu(c)
        y = Conv<strides=[2,2]>(cr, w4)
    }}"""
    model = parsed_model(text, [("w1", (8, 2, 3, 3)), ("w2", (8, 8, 1, 1)), ("w3", (8, 8, 3, 3)), ("w4", (3, 8, 2, 2))], rng)
    return model, rng.random((2, 2, hw, hw)).astype(np.float32)


@pytest.mark.parametrize("cores_per_tile", [8, 1])
def test_dilated_and_strided_windows_in_line_buffers(cores_per_tile: int) -> None:
    model, x = strided_chain()
    hw = DEFAULT.with_changes(name="tiny", tiles=4, cores_per_tile=cores_per_tile, tile_mem_words=4096)
    cm = compile_model(model, "16bit", hw=hw, calib={"x": x})
    assert sum(format_instr(i).startswith("free") for cc in cm.program.cores for i in cc.instrs) > 0
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    whole = compile_model(model, "16bit", hw=hw.with_changes(tile_mem_words=65536), calib={"x": x})
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def random_chain(seed: int) -> tuple[onnx.ModelProto, np.ndarray]:
    """Three to four convs of random kernel (1-3), stride (1-2), padding (0-k//2 x dilation), dilation (1-2) and
    width (2-12 channels) on a 20-28 pixel image."""
    rng = np.random.default_rng(seed)
    size, c = int(rng.integers(20, 29)), int(rng.integers(1, 4))
    lines, inits, shape = [], {}, (c, size, size)
    prev = "x"
    for n in range(int(rng.integers(3, 5))):
        k, s, d = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 3)) if n % 2 else 1
        p = int(rng.integers(0, k // 2 + 1)) * d
        out = int(rng.integers(2, 13))
        h = (shape[1] + 2 * p - d * (k - 1) - 1) // s + 1
        if h < 3:
            break
        inits[f"w{n}"] = (rng.normal(0, 1, (out, shape[0], k, k)) / np.sqrt(shape[0] * k * k)).astype(np.float32)
        lines.append(f"c{n} = Conv<pads=[{p},{p},{p},{p}], strides=[{s},{s}], dilations=[{d},{d}]>({prev}, w{n})")
        lines.append(f"r{n} = Relu(c{n})")
        prev, shape = f"r{n}", (out, h, h)
    lines[-1] = lines[-1].replace(f"{prev} = Relu", "y = Relu")
    decl = ", ".join(f"float[{', '.join(map(str, w.shape))}] {k}" for k, w in inits.items())
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, {c}, {size}, {size}] x) => (float[N, {shape[0]}, {shape[1]}, {shape[2]}] y) <{decl}> {{
        {chr(10).join(lines)}
    }}"""
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(onnx.numpy_helper.from_array(w, k) for k, w in inits.items())
    return model, rng.random((2, c, size, size)).astype(np.float32)


def tile_need(cm, hw) -> int:
    """The words the busiest tile needs when ``cm``'s graph and mapping are planned on ``hw`` (line buffers
    included when whole tensors overflow it)."""
    from compiler.codegen.plan import TileMemory, plan_communication
    from compiler.codegen.storage import Storage
    from compiler.quant import quantize_layer

    biased = {op.name for op in cm.graph.crossbar_ops() if quantize_layer(op, cm.precision[op.name]).bias is not None}
    mem = TileMemory(hw)
    try:
        plan_communication(cm.graph, cm.mapping, Storage(cm.graph, cm.formats), hw, biased, mem)
    except ModelError:
        pass
    return max(mem.top.values())


@pytest.mark.parametrize("seed", range(6))
def test_random_conv_chains_in_line_buffers_equal_whole_tensors(seed: int) -> None:
    """Random geometries, one core or eight per tile, on tiles one word too small for the whole tensors: the
    line-buffered program (on tiles of exactly what it needs) is bit-exact and equals the whole-tensor program's
    integers."""
    model, x = random_chain(seed)
    big = DEFAULT.with_changes(name="big", tiles=4, cores_per_tile=1 + 7 * (seed % 2), tile_mem_words=1 << 20)
    whole = compile_model(model, "16bit", hw=big, calib={"x": x})
    need = tile_need(whole, big)
    banded = tile_need(whole, big.with_changes(tile_mem_words=need - 1))
    assert banded < need
    cm = compile_model(model, "16bit", hw=big.with_changes(name="small", tile_mem_words=banded), calib={"x": x})
    assert any(format_instr(i).startswith("free") for cc in cm.program.cores for i in cc.instrs)
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def test_a_max_pool_reads_and_writes_line_buffers() -> None:
    """conv 3x3 -> max pool 3x3/2 pad 1 (border filled with the format's smallest value) -> conv 3x3 -> max pool
    2x2/2 -> conv 1x1: the pools' inputs and outputs are line buffers, on one tile and across tiles."""
    rng = np.random.default_rng(4)
    text = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 2, 32, 32] x) => (float[N, 4, 8, 8] y) <float[8, 2, 3, 3] w1, float[8, 8, 3, 3] w2,
      float[4, 8, 1, 1] w3> {
        a = Conv<pads=[1,1,1,1]>(x, w1)
        p = MaxPool<kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>(a)
        b = Conv<pads=[1,1,1,1]>(p, w2)
        br = Relu(b)
        q = MaxPool<kernel_shape=[2,2], strides=[2,2]>(br)
        y = Conv(q, w3)
    }"""
    model = parsed_model(text, [("w1", (8, 2, 3, 3)), ("w2", (8, 8, 3, 3)), ("w3", (4, 8, 1, 1))], rng)
    x = rng.normal(0, 1, (2, 2, 32, 32)).astype(np.float32)
    for cores in (8, 1):
        big = DEFAULT.with_changes(name="big", tiles=6, cores_per_tile=cores, tile_mem_words=1 << 20)
        whole = compile_model(model, "16bit", hw=big, calib={"x": x})
        need = tile_need(whole, big)
        banded = tile_need(whole, big.with_changes(tile_mem_words=need - 1))
        cm = compile_model(model, "16bit", hw=big.with_changes(tile_mem_words=banded), calib={"x": x})
        pools = [cc for cc in cm.program.cores for i in cc.instrs if i.node in ("p", "q") and i.op == "peek"]
        assert pools, "the pools read line buffers"
        out = run(cm, {"x": x})
        assert bit_exact(cm, {"x": x}, out)
        assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])
