"""Line buffers without border rows, rings of pixel groups and per-tile copies (docs/design-notes.md, "Activations
larger than a tile"): a ResNet stem (7x7/2 conv, 3x3/2 max pool) whose windows reach above and below the image of
line buffers that hold no rows there, and a bottleneck block whose 1x1 convs and add read rings of a few pixels;
on tiles one word too small for the whole tensors, with eight cores per tile and with one (every op on its own
tile, tensors received group by group): bit-exact against the functional model, equal to the whole-tensor
program's integers, and free of deadlocks (a deadlock is an error of the run)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from compiler.driver import compile_model
from compiler.runner import bit_exact, run
from isa.hardware import DEFAULT
from support import parsed_model
from test_streaming import tile_need
from test_streaming_residual import planned


def stem(size: int = 40) -> tuple[onnx.ModelProto, np.ndarray]:
    """x (3 x size x size) -> 7x7/2 conv (8, pad 3) relu -> 3x3/2 max pool (pad 1) = p -> 3x3 conv (8, pad 1)
    relu -> + p -> 1x1 conv (4) = y."""
    rng = np.random.default_rng(5)
    h = size // 4
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 3, {size}, {size}] x) => (float[N, 4, {h}, {h}] y) <float[8, 3, 7, 7] w1, float[8, 8, 3, 3] w2,
      float[4, 8, 1, 1] w3> {{
        a = Conv<pads=[3,3,3,3], strides=[2,2]>(x, w1)
        ar = Relu(a)
        p = MaxPool<kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>(ar)
        b = Conv<pads=[1,1,1,1]>(p, w2)
        br = Relu(b)
        s = Add(br, p)
        y = Conv(s, w3)
    }}"""
    model = parsed_model(text, [("w1", (8, 3, 7, 7)), ("w2", (8, 8, 3, 3)), ("w3", (4, 8, 1, 1))], rng)
    return model, rng.normal(0, 1, (2, 3, size, size)).astype(np.float32)


def bottleneck(size: int = 24) -> tuple[onnx.ModelProto, np.ndarray]:
    """x (4 x size x size) -> 3x3 conv (32, pad 1) relu = u -> [1x1 conv (8) relu -> 3x3 conv (8, pad 1) relu ->
    1x1 conv (32)] + u -> relu -> 1x1 conv (4) = y: u, the branch's last conv and the add's output are read by
    1x1 convs and the add only (ResNet-50's 256-channel tensors)."""
    rng = np.random.default_rng(6)
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 4, {size}, {size}] x) => (float[N, 4, {size}, {size}] y) <float[32, 4, 3, 3] w0,
      float[8, 32, 1, 1] w1, float[8, 8, 3, 3] w2, float[32, 8, 1, 1] w3, float[4, 32, 1, 1] w4> {{
        u0 = Conv<pads=[1,1,1,1]>(x, w0)
        u = Relu(u0)
        c1 = Conv(u, w1)
        r1 = Relu(c1)
        c2 = Conv<pads=[1,1,1,1]>(r1, w2)
        r2 = Relu(c2)
        v = Conv(r2, w3)
        s0 = Add(v, u)
        s = Relu(s0)
        y = Conv(s, w4)
    }}"""
    shapes = [("w0", (32, 4, 3, 3)), ("w1", (8, 32, 1, 1)), ("w2", (8, 8, 3, 3)), ("w3", (32, 8, 1, 1)),
              ("w4", (4, 32, 1, 1))]
    return parsed_model(text, shapes, rng), rng.random((2, 4, size, size)).astype(np.float32)


def line_buffered(model: onnx.ModelProto, x: np.ndarray, cores: int, tiles: int = 8, tight: bool = False):
    """(whole-tensor program, the program on tiles of exactly its line-buffered need, below the whole need;
    ``tight``: the need of the smallest plan, graph input through the host port and bands of one window)."""
    big = DEFAULT.with_changes(name="big", tiles=tiles, cores_per_tile=cores, tile_mem_words=1 << 20)
    whole = compile_model(model, "16bit", hw=big, calib={"x": x})
    need = tile_need(whole, big)
    banded = tile_need(whole, big.with_changes(tile_mem_words=64 if tight else need - 1))
    assert banded < need
    return whole, compile_model(model, "16bit", hw=big.with_changes(name="small", tile_mem_words=banded),
                                calib={"x": x})


def ops_of(cm, node: str) -> list[str]:
    return [i.op for cc in cm.program.cores for i in cc.instrs if i.node == node]


@pytest.mark.parametrize("cores", [8, 1])
def test_a_resnet_stem_reads_line_buffers_without_border_rows(cores: int) -> None:
    """The 7x7/2 conv's input (through the host port), the pool's input and the 3x3 conv's input are line
    buffers of real rows only: the conv zeroes the MVMU inputs of a kernel row above or below the image (a
    `sub` of the register with itself), the max pool leaves that kernel row out. Same integers as with whole
    tensors, which read the stored border."""
    model, x = stem()
    whole, cm = line_buffered(model, x, cores, tight=True)
    st, _ = planned(cm)
    for v in ("x", "ar", "p"):
        buf = st.buffer(v)
        assert buf.band and buf.pads[0] and not buf.group, v
        assert all(buf.words_on(t) == buf.band_on(t) * buf.wp * buf.c for t in buf.bases), v  # no border row
    assert "sub" in ops_of(cm, "a") and "sub" in ops_of(cm, "b"), "kernel rows in the border are zeroed"
    assert "peek" in ops_of(cm, "p")
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


@pytest.mark.parametrize("cores", [8, 1])
def test_pointwise_readers_read_rings_of_pixel_groups(cores: int) -> None:
    """u (read by a 1x1 conv and the add), the branch's last 1x1 conv output and the add's output are rings of
    pixel groups (24 pixels a row: 8 groups of 3), each copy far smaller than one row; the ops touching them
    sweep group by group, and with one core per tile the rings are received group by group. Bit-exact,
    equal to the whole-tensor program."""
    model, x = bottleneck()
    whole, cm = line_buffered(model, x, cores)
    st, _ = planned(cm)
    rings = {v for v in ("u", "v", "s") if st.buffer(v).group}
    assert rings == {"u", "v", "s"}
    for v in rings:
        buf = st.buffer(v)
        assert buf.group == 3 and buf.units == 24 * 8
        assert all(buf.words_on(t) == buf.band_on(t) * 3 * 32 for t in buf.bases)
    assert min(st.buffer("v").words_on(t) for t in st.buffer("v").bases) < 24 * 32  # less than one row
    if cores == 1:
        add = next(cc for cc in cm.program.cores if any(i.node == "s0" for i in cc.instrs))
        assert any(i.op == "recv" for i in add.instrs), "the add receives its rings group by group"
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])


def test_each_copy_holds_what_the_readers_on_its_tile_need() -> None:
    """One core per tile: a producer's copy of a tensor read only on other tiles holds one row (or group), being
    sent; the reader's copy holds its windows' rows (the 3x3 conv's input: 3 rows and a stride, a band of 4 or
    more), so the copies of one tensor differ."""
    model, x = bottleneck()
    _, cm = line_buffered(model, x, 1)
    st, plan = planned(cm)
    buf = st.buffer("r1")  # the 1x1 conv's output, read by the 3x3 conv on another tile
    home = {c[0] for c, _, _ in plan.producers["r1"]}
    readers = {c[0] for c in plan.readers["r1"]}
    assert home.isdisjoint(readers)
    assert all(buf.band_on(t) == 1 for t in home)
    assert all(buf.band_on(t) >= 3 for t in readers)


def test_a_strided_1x1_conv_holds_one_row_and_frees_the_rows_between_its_windows_unread() -> None:
    """The 1x1/2 conv of a downsampling block reads every other row of t: on its own tile, in the tight plan,
    its copy of t holds one row; after each output row it frees the row it read, then receives and frees the
    odd row below it unread, one after the other (the lag schedule models these frees row by row: with the
    odd row counted among the rows the window needs, one row would deadlock and the copy took two)."""
    from test_streaming_residual import residual

    model, x = residual(downsample=True)
    whole, cm = line_buffered(model, x, 1, tight=True)
    st, plan = planned(cm)
    d = next(op for op in cm.graph.ops if op.kind == "conv" and op.attrs["strides"] == (2, 2)
             and op.attrs["kernel"] == (1, 1))
    tiles = {c[0] for c in cm.mapping.layers[d.name].cores()}
    assert all(st.buffer("t").band_on(t) == 1 for t in tiles)
    assert "recv" in ops_of(cm, d.name) and "free" in ops_of(cm, d.name)
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])
