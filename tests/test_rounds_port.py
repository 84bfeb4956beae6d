"""Reprogramming rounds whose boundary tensors do not fit a tile (docs/cost-model.md, "The host port"): the round
that produces such a tensor line-buffers it and sends it to the host through the port pixel by pixel as it is
stored; the round that reads it takes it row by row from the port into its reader's line buffer. Bit-exact
against the functional model of the whole graph, in both runtime modes, and equal to the rounds with whole
tensors; the tensor's transfer time is the rounds' own (no spill cycles), its buffer energy still charged."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest

from compiler import runner
from compiler.cli import main
from isa.hardware import DEFAULT
from support import compile_model
from test_streaming import conv_chain


@pytest.fixture(scope="module")
def chain():
    model, x = conv_chain(hw=32)  # 3 convs; 2 cores: two rounds, cut at 'br' (32 x 32 x 16 = 16,384 words)
    hw = DEFAULT.with_changes(name="tiny", tiles=1, cores_per_tile=2)
    whole = compile_model(model, "16bit", hw=hw, calib={"x": x}, rounds=True)
    small = compile_model(model, "16bit", hw=hw.with_changes(tile_mem_words=8192), calib={"x": x}, rounds=True)
    return whole, small, {"x": x}


def test_a_round_boundary_larger_than_the_tile_goes_through_the_port(chain) -> None:
    whole, small, x = chain
    assert len(small.rounds) == len(whole.rounds) == 2
    out0, in1 = small.rounds[0].outputs[0], small.rounds[1].inputs[0]
    assert out0.name == in1.name == "br" and out0.port and in1.port and small.rounds[1].outputs[0].port
    assert not whole.rounds[0].outputs[0].port and not whole.rounds[1].inputs[0].port
    sends = [i for cc in small.rounds[0].cores for i in cc.instrs if i.op == "send"]
    assert sends and all(i.tile == small.hw.port_tile for i in sends)
    out = runner.run(small, x)
    assert runner.bit_exact(small, x, out)
    assert np.array_equal(out.device_int["y"], runner.run(whole, x).device_int["y"])
    slow = runner.run(small, x, reference=True)
    assert np.array_equal(slow.device_int["y"], out.device_int["y"])
    assert slow.stats.to_dict() == out.stats.to_dict()


def test_the_port_charges_per_flit_and_the_boundary_costs_no_spill_cycles(chain) -> None:
    whole, small, x = chain
    s, hw = runner.run(small, x).stats, small.hw
    flit = hw.mem_bus_words * hw.datapath_bits
    pixels, c = 32 * 32, 16
    # in: x (32 rows of 32 words) to round 0, br (32 rows of 512 words) to round 1; out, one pixel per message:
    # br from round 0 and the graph output y (16 x 16 pixels of 4 channels) from round 1
    flits = 32 * math.ceil(32 / hw.mem_bus_words) + 32 * math.ceil(32 * c / hw.mem_bus_words) \
        + pixels * math.ceil(c / hw.mem_bus_words) + 16 * 16 * math.ceil(4 / hw.mem_bus_words)
    assert s.per_component["port"] == pytest.approx(flits * flit * hw.costs.port_pj_per_bit, rel=1e-12)
    spill = 2 * pixels * c * 16 * hw.costs.offchip_pj_per_bit  # br written to the buffer and read back, 16 bits
    assert s.per_component["spill"] == pytest.approx(spill, rel=1e-12)
    assert [r["spill_cycles"] for r in s.rounds] == [0, 0]
    assert all(r["spill_cycles"] > 0 for r in runner.run(whole, x).stats.rounds)


def test_cli_compiles_inspects_and_runs_rounds_through_the_port(tmp_path, capsys) -> None:
    model, x = conv_chain(hw=32)
    onnx_file, data = tmp_path / "chain.onnx", tmp_path / "x.npy"
    onnx.save(model, onnx_file)
    np.save(data, x)
    hw = tmp_path / "tiny.json"
    hw.write_text(json.dumps({"tiles": 1, "cores_per_tile": 2, "tile_mem_words": 8192}))
    out = tmp_path / "out"
    assert main(["compile", str(onnx_file), "-o", str(out), "--hardware", str(hw), "--calib", str(data),
                 "--rounds"]) == 0
    assert "reprogramming rounds: 2" in capsys.readouterr().out
    assert main(["inspect", str(out), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rounds"]) == 2
    assert main(["run", str(out), "--dataset", str(data), "--check", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["bit_exact"] is True and r["per_component"]["port"] > 0 and r["per_component"]["program"] > 0
