"""The input port (`isa.inport`, docs/cost-model.md "The host port"): graph inputs streamed from the host row by
row instead of written whole into tile memory. The runtime delivers the host's messages with arrival times and
charges them per flit as the cost table says (checked against hand computation); compiled models whose input does
not fit the tile get it through the port into a line buffer (or whole, row by row), bit-exact against the
functional model, in reference and fast mode alike, equal to the program with the input written into memory."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from compiler.codegen import plan as plan_module
from compiler.runner import bit_exact, quantize_inputs, run
from isa import DeadlockError, TensorLoc, load_program, save_program
from isa.hardware import DEFAULT
from isa.printer import format_instr
from runtime import Machine
from support import HW, I, M, compile_model, program
from test_streaming import conv_chain, strided_chain, tile_need

PORT = HW.port_tile
FLIT = HW.mem_bus_words * HW.datapath_bits  # 256 bits


def _port_program(rows: int, row_words: int, hw=HW) -> tuple[object, TensorLoc]:
    """One core receiving ``rows`` rows of ``row_words`` words from the port into [0, rows x row_words), each row
    as two messages (its halves): the output is the received words."""
    half = row_words // 2
    x = TensorLoc("x", 0, 0, rows * row_words, 16, 0, (4, rows, row_words // 4),
                  port=((0, 0, 0, half), (0, 0, half, row_words - half)))
    code = [I("recv", M(r * row_words + lo), n, PORT, 0, 0) for r in range(rows)
            for lo, n in ((0, half), (half, row_words - half))] + [I("halt")]
    y = dataclasses.replace(x, name="y", port=())
    return program({(0, 0): code}, hw=hw, inputs=[x], outputs=[y]), x


@pytest.mark.parametrize("link", [HW.costs.port_bits_per_ns, 8.0])  # the core, then the link, is the bottleneck
def test_the_host_sends_rows_that_arrive_over_the_link_and_cost_per_flit(link: float) -> None:
    hw = HW.with_changes(costs={"port_bits_per_ns": link})
    prog, x = _port_program(rows=3, row_words=40, hw=hw)  # halves of 20 words: 2 flits each
    words = np.random.default_rng(0).integers(-2 ** 15, 2 ** 15, (2, 120))
    res = Machine(prog).run({"x": words})
    assert np.array_equal(res.outputs["y"], words)  # written nowhere before the run, received in order
    flits = 3 * 2 * math.ceil(20 / HW.mem_bus_words)
    assert res.stats.per_component["port"] == pytest.approx(flits * FLIT * HW.costs.port_pj_per_bit, rel=1e-12)
    # message k arrives when its 2k flits have crossed the link, plus one router (the port is beside tile 0's);
    # each recv starts when its message is there and the previous recv is done
    clock, recv = 0, 2 * HW.costs.mem_access_cycles
    for k in range(1, 7):
        clock = max(clock, math.ceil(2 * k * FLIT / link * HW.clock_ghz) + HW.costs.hop_cycles) + recv
    assert res.stats.cycles == clock + 1  # then the halt


def test_a_recv_from_the_port_with_no_message_left_is_a_deadlock() -> None:
    prog, _ = _port_program(rows=1, row_words=8)
    prog.cores[0].instrs.insert(-1, I("recv", M(100), 4, PORT, 0, 0))
    with pytest.raises(DeadlockError, match=f"channel \\({PORT} -> 0, ch 0\\)"):
        Machine(prog).run({"x": np.zeros((1, 8), np.int64)})


def _tight(model, x, tiles: int = 1, cores: int = 8):
    """(program compiled on tiles of exactly what it needs once the input comes through the port, the same
    model with every tensor whole)."""
    big = DEFAULT.with_changes(name="big", tiles=tiles, cores_per_tile=cores, tile_mem_words=1 << 20)
    whole = compile_model(model, "16bit", hw=big, calib={"x": x})
    need = tile_need(whole, big)
    banded = tile_need(whole, big.with_changes(tile_mem_words=need - 1))
    ported = tile_need(whole, big.with_changes(tile_mem_words=banded - 1))
    assert ported < banded < need  # line buffers alone leave the input whole; the port saves the rest
    return compile_model(model, "16bit", hw=big.with_changes(name="small", tile_mem_words=ported),
                         calib={"x": x}), whole


@pytest.mark.parametrize(("make", "size"), [(conv_chain, 32), (strided_chain, 48)])
def test_an_input_larger_than_its_share_of_the_tile_comes_through_the_port_bit_exact(make, size: int) -> None:
    model, x = make(hw=size)
    cm, whole = _tight(model, x)
    loc = cm.program.inputs[0]
    assert loc.port and not whole.program.inputs[0].port
    recvs = [format_instr(i) for cc in cm.program.cores for i in cc.instrs if i.op == "recv"]
    assert recvs and all(f"tile={cm.program.hw.port_tile}," in r for r in recvs)  # only the port sends (one tile)
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])
    words = quantize_inputs(cm, {"x": x})
    fast, ref = Machine(cm.program).run(words), Machine(cm.program, reference=True).run(words)
    assert all(np.array_equal(fast.outputs[k], ref.outputs[k]) for k in ref.outputs)
    assert fast.stats.to_dict() == ref.stats.to_dict()
    rows, row_words = x.shape[2], x.shape[1] * x.shape[3]
    c, h, w = cm.program.outputs[0].shape  # the output, line-buffered too, leaves through the port pixel by pixel
    assert cm.program.outputs[0].port
    flits = rows * math.ceil(row_words / HW.mem_bus_words) + h * w * math.ceil(c / HW.mem_bus_words)
    port_pj = flits * FLIT * HW.costs.port_pj_per_bit
    assert out.stats.per_component["port"] == pytest.approx(port_pj, rel=1e-12)


def test_a_port_input_held_whole_is_received_row_by_row_before_computing(monkeypatch) -> None:
    """A port input that is not line-buffered (a graph whose other input needs the port; here the port forced on
    a program that fits) is received whole: its first reader core takes every row in its prologue."""
    model, x = strided_chain(hw=24)
    hw = DEFAULT.with_changes(name="tiny", tiles=4, cores_per_tile=1, tile_mem_words=1 << 16)
    whole = compile_model(model, "16bit", hw=hw, calib={"x": x})
    make = plan_module._plan
    monkeypatch.setattr(plan_module, "_plan", lambda g, m, st, hw, b, mem, port=False: make(g, m, st, hw, b, mem,
                                                                                             True))
    cm = compile_model(model, "16bit", hw=hw, calib={"x": x})
    loc = cm.program.inputs[0]
    assert loc.port and {f[0] for f in loc.port} == {0}  # one tile reads the input
    first = cm.program.core(0, 0).instrs
    assert [format_instr(i).split()[0] for i in first[:4]] == ["set"] * 4  # the row loop of the prologue
    assert sum(i.op == "recv" for i in first) == 1 and not any(i.op == "free" for i in first)
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])
    assert out.stats.per_component["port"] > 0 and "port" not in run(whole, {"x": x}).stats.per_component


def test_port_feeds_survive_save_and_load(tmp_path) -> None:
    model, x = conv_chain(hw=32)
    cm, _ = _tight(model, x)
    save_program(cm.program, tmp_path / "out")
    back = load_program(tmp_path / "out")
    assert back.inputs == cm.program.inputs and back.inputs[0].port
    words = quantize_inputs(cm, {"x": x})
    assert np.array_equal(Machine(back).run(words).outputs["y"], Machine(cm.program).run(words).outputs["y"])
