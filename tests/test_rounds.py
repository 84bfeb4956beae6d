"""Reprogramming rounds (docs/cost-model.md, "Reprogramming rounds"): the prog instruction's text, bits, semantics
and costs against hand computation, and models compiled on chips too small for them: bit-exact against the
functional model, write energy equal to cells x per-cell energy, writes per crossbar as the rounds imply."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler import runner
from compiler.cli import main
from compiler.driver import load_compiled
from isa import MvmuImage, RuntimeFault, ops
from isa.assembler import assemble_instr
from isa.costs import image_shape, mvmu_write
from isa.encoding import decode_instr, encode_instr
from isa.errors import ModelError
from isa.printer import format_instr
from runtime import Machine
from support import DATA, HW, I, M, compile_model, loc, program

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "models" / "lenet5_digits.onnx"
TINY = HW.with_changes(tiles=1, cores_per_tile=2)  # 16 MVMUs: LeNet-5 needs 9 on 5 cores, so it takes rounds


def test_prog_text_record_bits_round_trip() -> None:
    instr = assemble_instr("prog 0b1011", HW)
    assert instr == ops.prog(mask=0b1011)
    assert format_instr(instr) == "prog 0b1011"
    assert decode_instr(encode_instr(instr)) == instr


def _one_mvmu(code: list, batch: int, budget: int | None = None):
    w = np.random.default_rng(0).integers(-127, 128, (128, 128))
    prog = program({(0, 0): code}, mvmus=[MvmuImage(0, 0, 0, w, 8)], inputs=[loc("x", 0, 0, 128, 8)],
                   outputs=[loc("y", 0, 200, 128, 32)] if any(i.op == "store" for i in code) else [])
    x = np.random.default_rng(1).integers(-128, 128, (batch, 128))
    return Machine(prog).run({"x": x}, budget=budget)


RUN = [I("prog", 1, node="fc"), I("load", HW.mvmu_in(0), M(0), 128, node="fc"),
       I("mvm", 1, 8, 10, 0, 32, 0, -1, node="fc"), I("store", M(200), HW.mvmu_out(0), 128, 0), I("halt")]


def test_prog_charges_cells_times_write_energy_once_per_batch() -> None:
    c = HW.costs
    cells = 8 * 128 * 128  # 8-bit weights, 2-bit cells: 4 slices x (+, -) naive arrays, every row across 128 lines
    per_batch = cells * c.xbar_write_pj + cells * HW.cell_bits * c.offchip_pj_per_bit
    link_ns = cells * HW.cell_bits * HW.tiles * HW.cores_per_tile / c.offchip_bits_per_ns
    for batch in (1, 4):
        s = _one_mvmu(RUN, batch).stats
        assert s.per_component["program"] == pytest.approx(per_batch / batch, rel=1e-12)
        assert s.per_instruction["prog"]["cycles"] == HW.cycles(max(128 * c.xbar_write_ns, link_ns))
        assert s.cells_written == cells and s.writes == {"0.0.0": [1] * 8}
        assert s.write_summary()["max_writes_per_crossbar"] == 1


def test_prog_in_chunks_costs_what_one_pass_costs() -> None:
    whole = _one_mvmu(RUN, 6)
    parts = _one_mvmu(RUN, 6, budget=2 * 2 ** 20)  # 6 x (registers + a 512 KB tile memory): chunks of 3 or fewer
    assert np.array_equal(whole.outputs["y"], parts.outputs["y"])
    assert parts.stats.per_component["program"] == pytest.approx(whole.stats.per_component["program"], rel=1e-12)
    assert parts.stats.cells_written == whole.stats.cells_written


def test_mvm_before_prog_faults_and_prog_needs_an_image() -> None:
    late = [RUN[1], RUN[2], RUN[0], RUN[4]]
    with pytest.raises(RuntimeFault, match="before the prog that writes its weights"):
        _one_mvmu(late, 1)
    with pytest.raises(RuntimeFault, match="MVMU 1 .* no image"):
        _one_mvmu([I("prog", 0b10), I("halt")], 1)


def test_program_without_prog_charges_no_writes() -> None:
    s = _one_mvmu([RUN[1], RUN[2], RUN[4]], 2).stats
    assert "program" not in s.per_component and s.cells_written == 0 and s.writes == {}


@pytest.fixture(scope="module")
def lenet_rounds():
    return compile_model(LENET, "16bit", hw=TINY, rounds=True)


def _digits(cm, n: int = 12) -> dict[str, np.ndarray]:
    inp = cm.program.inputs[0]
    x, _ = DATA("digits32", "test", tuple(inp.shape))
    return {inp.name: x[:n].reshape((n,) + tuple(inp.shape))}


def test_lenet_in_rounds_is_bit_exact_and_charges_its_writes(lenet_rounds) -> None:
    cm = lenet_rounds
    assert len(cm.rounds) >= 2
    table = cm.program.meta["rounds"]
    assert [op for r in table for op in r["ops"]] == [op.name for op in cm.graph.ops]  # every op once, in order
    assert all(r["tiles"] <= TINY.tiles for r in table)
    x = _digits(cm)
    out = runner.run(cm, x)
    ref = runner.functional_outputs(cm, x)
    for name, got in out.device_int.items():
        assert got.dtype.kind == "i" and np.array_equal(got, ref[name].reshape(got.shape))
    s, c = out.stats, TINY.costs
    # every image of every round is written once per batch: cells from the images, energy from the cost table
    cells = sum(mvmu_write(TINY, image_shape(img, TINY)).cells for p in cm.rounds for img in p.mvmus)
    assert s.cells_written == cells == sum(r["cells_written"] for r in table)
    per_cell = c.xbar_write_pj + TINY.cell_bits * c.offchip_pj_per_bit
    assert s.per_component["program"] == pytest.approx(cells * per_cell / 12, rel=1e-12)
    assert s.energy_pj == pytest.approx(sum(s.per_component.values()), rel=1e-12)
    # writes per crossbar: an MVMU's array is written once in every round whose image there uses it
    want: dict[str, list[int]] = {}
    for p in cm.rounds:
        for img in p.mvmus:
            arrays = mvmu_write(TINY, image_shape(img, TINY)).arrays
            row = want.setdefault(f"{img.tile}.{img.core}.{img.mvmu}", [])
            row.extend([0] * (arrays - len(row)))
            for a in range(arrays):
                row[a] += 1
    assert s.writes == want
    assert s.write_summary()["max_writes_per_crossbar"] == max(max(r) for r in want.values()) > 1
    assert s.cycles == sum(r["cycles"] + r["spill_cycles"] for r in s.rounds)
    slow = runner.run(cm, x, reference=True)  # the interpreter one instruction at a time: the same run
    assert all(np.array_equal(slow.device_int[k], out.device_int[k]) for k in out.device_int)
    assert (slow.stats.cycles, slow.stats.writes, slow.stats.rounds) == (s.cycles, s.writes, s.rounds)


def test_a_model_that_fits_takes_no_rounds() -> None:
    plain = compile_model(LENET, "16bit")
    again = compile_model(LENET, "16bit", rounds=True)
    assert again.rounds == [] and "rounds" not in again.program.meta
    assert [c.instrs for c in again.program.cores] == [c.instrs for c in plain.program.cores]
    assert not any(isinstance(i, ops.Prog) for c in again.program.cores for i in c.instrs)


def test_a_column_block_larger_than_the_chip_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match=r"layer 'fc1': one column block of 128 output channels already needs more "
                                         r"tiles than the chip has"):
        compile_model(LENET, "16bit", hw=HW.with_changes(tiles=1, cores_per_tile=1, mvmus_per_core=3), rounds=True)


def _wide_mlp() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """200 -> 300 (relu) -> 10: fc1 is 2 row blocks x 3 column blocks (6 MVMUs), fc2 3 row blocks."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(0, 0.1, (200, 300)), rng.normal(0, 0.1, (300, 10))
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2")], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 200])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
         ((w1, "w1"), (rng.normal(0, 0.1, 300), "b1"), (w2, "w2"), (rng.normal(0, 0.1, 10), "b2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model, {"x": rng.uniform(0, 1, (16, 200))}


def test_a_layer_larger_than_the_chip_is_split_by_columns_bit_exactly() -> None:
    model, x = _wide_mlp()
    hw = HW.with_changes(tiles=1, cores_per_tile=2, mvmus_per_core=2)  # 4 MVMUs: fc1's 6 do not fit
    cm = compile_model(model, "16bit", hw=hw, calib=x, rounds=True)
    table = cm.program.meta["rounds"]
    assert [r["layers"] for r in table] == [["fc1.part0"], ["fc1.part1"], ["fc2"]]
    assert cm.program.meta["joins"] == {cm.graph.op("fc1").outputs[0]: [f"{cm.graph.op('fc1').outputs[0]}.part0",
                                                                        f"{cm.graph.op('fc1').outputs[0]}.part1"]}
    assert cm.mapping is not None and cm.mapping.layers["fc1"].col_blocks == 3  # the report shows fc1 whole
    out = runner.run(cm, x)
    ref = runner.functional_outputs(cm, x)
    assert all(np.array_equal(out.device_int[k], ref[k].reshape(out.device_int[k].shape)) for k in ref)
    assert out.stats.per_component["spill"] > 0


def test_saved_rounds_reload_and_run_alike(lenet_rounds, tmp_path) -> None:
    lenet_rounds.save(tmp_path / "out")
    back = load_compiled(tmp_path / "out")
    assert len(back.rounds) == len(lenet_rounds.rounds)
    x = _digits(lenet_rounds, 4)
    a, b = runner.run(lenet_rounds, x), runner.run(back, x)
    assert all(np.array_equal(a.device_int[k], b.device_int[k]) for k in a.device_int)
    assert a.stats.cycles == b.stats.cycles and a.stats.writes == b.stats.writes


def test_cli_compiles_inspects_and_runs_rounds(tmp_path, capsys) -> None:
    hw = tmp_path / "tiny.json"
    hw.write_text(json.dumps({"tiles": 1, "cores_per_tile": 2}))
    out = tmp_path / "lenet"
    assert main(["compile", str(LENET), "-o", str(out), "--hardware", str(hw), "--rounds"]) == 0
    assert "reprogramming rounds:" in capsys.readouterr().out
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["rounds"]) >= 2 and info["rounds"][0]["ops"][0] == "conv1"
    assert main(["run", str(out), "--dataset", "digits32", "--limit", "8", "--check", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["bit_exact"] is True and r["per_component"]["program"] > 0
    assert r["reprogramming"]["writes"]["max_writes_per_crossbar"] > 1
    assert main(["inspect", str(out), "--dynamic", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {lay["layer"] for lay in info["layers"] if lay.get("dynamic_instructions")} >= {"conv1", "fc3"}


@pytest.mark.slow
def test_vgg16_shape_on_a_small_isaac_splits_a_layer_and_stays_bit_exact() -> None:
    from isa.hardware import ISAAC
    from models import cnn_zoo

    m = cnn_zoo.vgg16(resolution=32, width=0.25, num_classes=10)
    x = {m.graph.input[0].name: np.random.default_rng(0).uniform(0, 1, (4, 3, 32, 32))}
    hw = ISAAC.with_changes(tiles=4, tile_mem_words=1 << 18)  # 48 cores: classifier.3 (64 blocks) is split
    cm = compile_model(m, "8bit", hw=hw, calib={k: v[:2] for k, v in x.items()}, rounds=True)
    assert len(cm.program.meta["joins"]) == 1 and len(cm.rounds) >= 3
    out = runner.run(cm, x)
    assert runner.bit_exact(cm, x, out)
    assert out.stats.write_summary()["max_writes_per_crossbar"] == len(cm.rounds)
