"""Line buffers through element-wise ops: a residual block whose add reads x rows after the branch's first conv did
(the lag `lag.settle_bands` sizes the bands for), a downsampling block, several tiles with the add receiving both
inputs row by row; bit-exact against the functional model and equal to the whole-tensor program."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from compiler.codegen.lag import RowSchedule
from compiler.codegen.rowops import row_windows
from compiler.driver import compile_model
from compiler.runner import bit_exact, run
from isa import DeadlockError
from isa.hardware import DEFAULT
from isa.printer import format_instr
from support import parsed_model
from test_streaming import tile_need


def residual(size: int = 24, c: int = 8, downsample: bool = False, depth: int = 2, seed: int = 0,
             gap: str = "") -> tuple[onnx.ModelProto, np.ndarray]:
    """x (2 x size x size) -> 3x3 conv (c) relu = t -> [``depth`` 3x3 convs, relu between] + t (or, with
    ``downsample``, the branch's first conv 3x3/2, plus a 1x1/2 conv of t) -> relu -> 3x3/2 conv (4) = y (with
    ``gap`` "global" or "avg": a global average pool, or an average pool of the whole image, = y)."""
    rng = np.random.default_rng(seed)
    s = 2 if downsample else 1
    h = size // s
    shapes = {"w0": (c, 2, 3, 3), **{f"w{k + 1}": (c, c, 3, 3) for k in range(depth)}, "w9": (4, c, 3, 3)}
    lines, prev = ["t0 = Conv<pads=[1,1,1,1]>(x, w0)", "t = Relu(t0)"], "t"
    for k in range(depth):
        stride = s if k == 0 else 1
        lines.append(f"b{k} = Conv<pads=[1,1,1,1], strides=[{stride},{stride}]>({prev}, w{k + 1})")
        if k < depth - 1:
            lines.append(f"r{k} = Relu(b{k})")
        prev = f"r{k}"
    if downsample:
        shapes["wd"] = (c, c, 1, 1)
        lines += ["d = Conv<strides=[2,2]>(t, wd)", f"u = Add(b{depth - 1}, d)"]
    else:
        lines.append(f"u = Add(b{depth - 1}, t)")
    pool = f"AveragePool<kernel_shape=[{h},{h}]>(ur)" if gap == "avg" else "GlobalAveragePool(ur)"
    lines += ["ur = Relu(u)", f"y = {pool}" if gap else "y = Conv<pads=[1,1,1,1], strides=[2,2]>(ur, w9)"]
    if gap:
        del shapes["w9"]
    decl = ", ".join(f"float[{', '.join(map(str, sh))}] {k}" for k, sh in shapes.items())
    out = f"{c}, 1, 1" if gap else f"4, {h // 2}, {h // 2}"
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 2, {size}, {size}] x) => (float[N, {out}] y) <{decl}> {{
        {chr(10).join(lines)}
    }}"""
    model = parsed_model(text, shapes, rng)
    return model, rng.random((2, 2, size, size)).astype(np.float32)


def banded_program(model: onnx.ModelProto, x: np.ndarray, cores: int, tiles: int = 8):
    """(whole-tensor program, line-buffered program on tiles of exactly what it needs)."""
    big = DEFAULT.with_changes(name="big", tiles=tiles, cores_per_tile=cores, tile_mem_words=1 << 20)
    whole = compile_model(model, "16bit", hw=big, calib={"x": x})
    need = tile_need(whole, big)
    banded = tile_need(whole, big.with_changes(tile_mem_words=need - 1))
    assert banded < need
    return whole, compile_model(model, "16bit", hw=big.with_changes(name="small", tile_mem_words=banded),
                                calib={"x": x})


def peeks(cm, node: str) -> int:
    return sum(i.op == "peek" for cc in cm.program.cores for i in cc.instrs if i.node == node)


@pytest.mark.parametrize(("cores", "downsample"), [(8, False), (1, False), (8, True), (1, True)])
def test_a_residual_block_runs_in_line_buffers(cores: int, downsample: bool) -> None:
    """The add reads both its inputs from line buffers and writes one; with one core per tile it receives both
    inputs row by row. Bit-exact, and equal to the whole-tensor program's integers."""
    model, x = residual(downsample=downsample)
    whole, cm = banded_program(model, x, cores)
    add = next(op.name for op in cm.graph.ops if op.kind == "eltwise")
    assert peeks(cm, add) > 0, "the add reads line buffers"
    if cores == 1:
        add_core = next(cc for cc in cm.program.cores if any(i.node == add for i in cc.instrs))
        assert sum(i.op == "recv" for i in add_core.instrs) > 0, "the add receives rows"
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def test_the_skip_band_covers_the_branch_lag() -> None:
    """t's readers are the branch's first conv (3 rows and a stride: a band of 4) and the add, which reads row h
    only once the branch of four 3x3 convs produced its row h, four rows of halo later: the producer of t must
    be able to write row h + 4 while the add still holds row h, so the schedule grows t's band to 6. With t's band
    held at 4 the row schedule stops on t, and so does the program (a reported deadlock)."""
    import compiler.codegen.lag as lag

    model, x = residual(size=32, depth=4)
    whole, cm = banded_program(model, x, 8, tiles=1)
    st, plan = planned(cm)
    assert st.buffer("t").band_on(0) == 6 and st.buffer("r0").band_on(0) == 4
    windows = {op.name: row_windows(cm.graph, cm.mapping, op) for op in cm.graph.ops}
    assert RowSchedule(cm.graph, cm.mapping, st, plan, windows).run() == []
    st.buffer("t").slots[0] = 4
    assert RowSchedule(cm.graph, cm.mapping, st, plan, windows).run() == ["t"]
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])

    saved = lag.settle_bands
    lag.settle_bands = lambda *a, **k: 0  # type: ignore[assignment]
    try:  # the program the schedule rejects
        short = compile_model(model, "16bit", hw=cm.hw, calib={"x": x})
    finally:
        lag.settle_bands = saved
    assert text(short) != text(cm)
    with pytest.raises(DeadlockError, match="blocked"):
        run(short, {"x": x})


def text(cm) -> list[str]:
    """The program's instructions as assembly lines."""
    return [format_instr(i) for cc in cm.program.cores for i in cc.instrs]


def planned(cm):
    """(storage, plan) of ``cm``'s graph and mapping planned again on its hardware."""
    from compiler.codegen.plan import TileMemory, plan_communication
    from compiler.codegen.storage import Storage
    from compiler.quant import quantize_layer

    st = Storage(cm.graph, cm.formats)
    biased = {op.name for op in cm.graph.crossbar_ops() if quantize_layer(op, cm.precision[op.name]).bias is not None}
    return st, plan_communication(cm.graph, cm.mapping, st, cm.hw, biased, TileMemory(cm.hw))


def test_an_add_in_two_channel_chunks_reads_each_row_once() -> None:
    """32 channels on cores whose data registers hold 24-channel operand regions: the add takes its two chunks
    pixel by pixel inside one sweep of its rows, so it frees each row once; bit-exact on one tile and across
    tiles, equal to the whole-tensor program."""
    from compiler.codegen.rowops import vector_chunk

    model, x = residual(size=8, c=32)
    for cores in (8, 1):
        small = DEFAULT.with_changes(name="small", xbar_rows=16, xbar_cols=16, mvmus_per_core=2, data_regs=58,
                                     tiles=64, cores_per_tile=cores, tile_mem_words=1 << 20)
        whole = compile_model(model, "16bit", hw=small, calib={"x": x})
        add = next(op for op in whole.graph.ops if op.kind == "eltwise")
        assert vector_chunk(whole.graph, add, small) == 24
        banded = tile_need(whole, small.with_changes(tile_mem_words=tile_need(whole, small) - 1))
        cm = compile_model(model, "16bit", hw=small.with_changes(tile_mem_words=banded), calib={"x": x})
        assert peeks(cm, add.name) > 0
        out = run(cm, {"x": x})
        assert bit_exact(cm, {"x": x}, out)
        assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def test_code_size_does_not_depend_on_the_image_size() -> None:
    """The residual block at 32 x 32 and at 64 x 64, line-buffered on tiles that cannot hold its whole tensors:
    the same number of instructions on every core (the interior rows are loops over groups of rows)."""
    sizes = {}
    for size in (32, 64):
        model, x = residual(size=size, depth=2)
        whole, cm = banded_program(model, x[:1], 8, tiles=1)
        assert peeks(cm, "u") > 0
        sizes[size] = {(cc.tile, cc.core): len(cc.instrs) for cc in cm.program.cores}
    assert sizes[32] == sizes[64]


def random_residual(seed: int) -> tuple[onnx.ModelProto, np.ndarray]:
    """A random chain of 3x3 convs (stride 1 or 2, 4-12 channels) on an 18-26 pixel image with residual adds of
    random reach: an add joins the current tensor with one 1 to 3 convs earlier of the same shape."""
    rng = np.random.default_rng(100 + seed)
    size, c = int(rng.integers(18, 27)), int(rng.integers(4, 13))
    lines, inits = ["s0 = Conv<pads=[1,1,1,1]>(x, w0)", "a0 = Relu(s0)"], {"w0": (c, 1, 3, 3)}
    shapes, h = {"a0": size}, size
    names = ["a0"]
    for n in range(1, int(rng.integers(4, 7))):
        stride = 2 if rng.random() < 0.25 and h >= 10 else 1
        inits[f"w{n}"] = (c, c, 3, 3)
        lines.append(f"s{n} = Conv<pads=[1,1,1,1], strides=[{stride},{stride}]>({names[-1]}, w{n})")
        h = (h - 1) // stride + 1
        same = [v for v in names[-3:] if shapes[v] == h]
        if same and rng.random() < 0.6:
            lines.append(f"j{n} = Add(s{n}, {same[int(rng.integers(len(same)))]})")
            lines.append(f"a{n} = Relu(j{n})")
        else:
            lines.append(f"a{n} = Relu(s{n})")
        names.append(f"a{n}")
        shapes[f"a{n}"] = h
    inits["wy"] = (3, c, 1, 1)
    lines.append(f"y = Conv({names[-1]}, wy)")
    decl = ", ".join(f"float[{', '.join(map(str, sh))}] {k}" for k, sh in inits.items())
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 1, {size}, {size}] x) => (float[N, 3, {h}, {h}] y) <{decl}> {{
        {chr(10).join(lines)}
    }}"""
    model = parsed_model(text, inits, rng)
    return model, rng.random((2, 1, size, size)).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_random_residual_chains_in_line_buffers_equal_whole_tensors(seed: int) -> None:
    """Random residual chains, one core or eight per tile, on tiles of exactly the line-buffered need: bit-exact,
    no deadlock, and the whole-tensor program's integers."""
    model, x = random_residual(seed)
    whole, cm = banded_program(model, x, 1 + 7 * (seed % 2), tiles=16)
    assert any(format_instr(i).startswith("peek") for cc in cm.program.cores for i in cc.instrs)
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def test_bands_of_one_window_when_overlapping_bands_overflow() -> None:
    """On tiles one word short of the overlapping bands (window plus stride, a power of two), the plan takes bands
    of one window (3 rows for a 3x3 reader; `rowops.band_height`), grown where the lag needs it: less memory,
    still deadlock-free and bit-exact, and the whole-tensor program's integers."""
    model, x = residual(size=24, depth=2)
    whole, cm = banded_program(model, x, 8)
    ported = tile_need(whole, cm.hw.with_changes(tile_mem_words=cm.hw.tile_mem_words - 1))  # the input port first
    tight_words = tile_need(whole, cm.hw.with_changes(tile_mem_words=ported - 1))
    assert tight_words < ported < cm.hw.tile_mem_words
    tight = compile_model(model, "16bit", hw=cm.hw.with_changes(tile_mem_words=tight_words), calib={"x": x})
    st, _ = planned(tight)
    assert st.buffer("r0").band == 3 and planned(cm)[0].buffer("r0").band == 4
    out = run(tight, {"x": x})
    assert bit_exact(tight, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


@pytest.mark.parametrize("gap", ["global", "avg"])
def test_a_global_average_reads_a_line_buffer(gap: str) -> None:
    """The residual block ending in a global average pool (or an average pool whose window is the whole image, as
    ResNet-50's onnx export has it): the pool sweeps the add's line-buffered output once, in one channel chunk (8
    channels) and in two (32 channels on 24-channel operand regions, its accumulators in the vector core's idle
    MVMU registers; 72 channels, more than the 64 MVMU registers: accumulators from register 0 into the data
    registers); bit-exact, equal to the whole-tensor program."""
    from compiler.codegen.rowops import gap_registers

    small = DEFAULT.with_changes(name="small", xbar_rows=16, xbar_cols=16, mvmus_per_core=2, data_regs=58,
                                 tiles=64, cores_per_tile=8, tile_mem_words=1 << 20)
    cases = [(8, DEFAULT.with_changes(name="big", tiles=8, cores_per_tile=8, tile_mem_words=1 << 20)),
             (32, small), (72, small)]
    for c, big in cases:
        model, x = residual(size=16 if c == 8 else 8, c=c, gap=gap)
        whole = compile_model(model, "16bit", hw=big, calib={"x": x})
        pool = next(op for op in whole.graph.ops if op.kind in ("gap", "pool"))
        assert gap_registers(whole.graph, pool, big) is not None
        banded = tile_need(whole, big.with_changes(tile_mem_words=tile_need(whole, big) - 1))
        cm = compile_model(model, "16bit", hw=big.with_changes(tile_mem_words=banded), calib={"x": x})
        assert planned(cm)[0].buffer(pool.inputs[0]).band and peeks(cm, pool.name) > 0
        out = run(cm, {"x": x})
        assert bit_exact(cm, {"x": x}, out)
        assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def test_the_vgg_shapes_that_deadlocked_the_first_line_buffers_run() -> None:
    """A quarter-width VGG-16 at 64 x 64 on `isaac` with 60,000-word tiles: with the first line buffers its
    multi-core convs across tiles deadlocked (148 cores blocked, docs/design-notes.md); with the row tokens and the
    lag schedule it runs one image bit-exact in line buffers."""
    from isa.hardware import PRESETS
    from models.cnn_zoo import vgg16

    model = vgg16(resolution=64, width=0.25, num_classes=10)
    x = np.random.default_rng(0).random((3, 3, 64, 64)).astype(np.float32)
    name = model.graph.input[0].name
    cm = compile_model(model, "8bit", hw=PRESETS["isaac"].with_changes(tile_mem_words=60000), calib={name: x[:2]},
                       calib_images=2)
    assert any(i.op == "peek" for cc in cm.program.cores for i in cc.instrs)
    assert bit_exact(cm, {name: x[2:]}, run(cm, {name: x[2:]}))
