"""Trace replay (`runtime.replay`): a machine's second run at a batch size replays the first run's recorded
schedule on new data. Against the reference interpreter on that new data, bit for bit and counter for counter,
on every bundled model x config, on hand-written pipelines (waits, reader counts, gangs, messages), on chunked
runs, and where a replay would be wrong (data reaching control flow), it is not used."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime import Machine
from support import HW, I, M, loc, program
from test_cost_golden import build, cases
from test_runtime_fast import K, N, _pipeline, assert_same
from test_runtime_fast_gangs import _across_tiles, _partial_sums, _refilled_slots

D = HW.data_base


def replayed(prog: Any, first: dict[str, np.ndarray], second: dict[str, np.ndarray], **run: Any) -> tuple[Any, Any]:
    """(reference result on ``second``, a fast machine's result on ``second`` after it ran ``first``: a
    replay when the batch sizes match)."""
    m = Machine(prog)
    m.run(first, **run)
    out = m.run(second, **run)
    assert m.replayed == (m.no_replay is None and len(next(iter(first.values()))) ==
                          len(next(iter(second.values()))))
    return Machine(prog, reference=True).run(second, **run), out


@pytest.mark.parametrize("name", sorted(cases()))
def test_replay_equals_reference_on_bundled_configs(name: str) -> None:
    from compiler import runner

    cm, x = build(cases()[name])
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x})
    assert Machine(cm.program).no_replay is None  # the compiler's programs keep data out of control flow
    for batch in (1, len(x)):
        first = {k: v[:batch] for k, v in q.items()}
        second = {k: v[:batch][::-1] + 0 for k, v in q.items()}  # other data (reversed), same batch size
        if batch == 1:
            second = {k: v[-1:] for k, v in q.items()}
        ref, out = replayed(cm.program, first, second)
        assert_same(ref, out)


@pytest.mark.parametrize("count,same_slot", [(0, False), (1, False), (2, False), (1, True)])
def test_replay_of_waits_reader_counts_and_gangs(count: int, same_slot: bool) -> None:
    rng = np.random.default_rng(count)
    a, b = rng.integers(-128, 128, (2, 3, 32))
    ref, out = replayed(_pipeline(count, same_slot), {"x": a}, {"x": b})
    assert_same(ref, out)


@pytest.mark.parametrize("fixed_recv", [True, False])
def test_replay_of_messages_and_mailboxes(fixed_recv: bool) -> None:
    rng = np.random.default_rng(9)
    for prog in (_across_tiles(fixed_recv)[0], _partial_sums()[0], _refilled_slots()):
        width = prog.inputs[0].length
        a, b = rng.integers(-64, 64, (2, 2, width))
        ref, out = replayed(prog, {"x": a}, {"x": b})
        assert_same(ref, out)


def test_a_batch_size_not_recorded_is_recorded_then_replayed() -> None:
    prog = _pipeline(1, True)
    rng = np.random.default_rng(4)
    m = Machine(prog)
    m.run({"x": rng.integers(-128, 128, (2, 32))})
    x3 = rng.integers(-128, 128, (3, 32))
    first = m.run({"x": x3})
    assert not m.replayed  # batch 3 was not recorded yet
    again = m.run({"x": x3})
    assert m.replayed
    assert_same(first, again)
    from runtime.replay import MAX_TRACES

    for size in range(4, 6 + MAX_TRACES):  # a machine keeps the traces of its last MAX_TRACES batch sizes
        m.run({"x": rng.integers(-128, 128, (size, 32))})
    assert sorted(m._traces) == list(range(6, 6 + MAX_TRACES))


def test_chunked_runs_replay_per_chunk() -> None:
    """A batch split by the memory budget records and replays each chunk size."""
    prog = _pipeline(0, False)
    m = Machine(prog)
    regs, tmp, _, whole, _ = m._item_bytes()
    budget = 2 * (regs + tmp + whole)  # two items per chunk
    rng = np.random.default_rng(2)
    a, b = rng.integers(-128, 128, (2, 5, 32))
    ref, out = replayed(prog, {"x": a}, {"x": b}, budget=budget)
    assert_same(ref, out)


def test_data_in_control_flow_is_never_replayed() -> None:
    """A loop bound loaded from the input: the trip count depends on the data (lane 0), so the machine says why
    it does not replay and each run follows its own data (y = the bound), as the reference does."""
    code = [I("set", K, 0), I("load", N, M(0), 1), I("set", D, 0),
            I("addi", D, D, 1, 1, 16), I("iaddi", K, K, 1), I("blt", K, N, 3),
            I("store", M(200), D, 1, 0), I("halt")]
    prog = program({(0, 0): code}, inputs=[loc("x", 0, 0, 1, 8)], outputs=[loc("y", 0, 200, 1, 16)])
    m = Machine(prog)
    assert m.no_replay is not None and f"r{N}" in m.no_replay
    for bound in (2, 2, 5):
        x = np.full((1, 1), bound, dtype=np.int64)
        out = m.run({"x": x})
        assert not m.replayed
        assert_same(Machine(prog, reference=True).run({"x": x}), out)
        assert int(out.outputs["y"][0, 0]) == bound


def test_no_replay_for_devices_budgets_or_when_off() -> None:
    from compiler import runner
    from runtime.devices import DeviceModel
    from support import compile_model
    from test_runtime_fast import ROOT
    from models.datasets import load_dataset

    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit")
    x, _ = load_dataset("digits32", "test")
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x[:2]})
    m = Machine(cm.program)
    base = m.run(q)
    dev = DeviceModel(read_sigma=0.05, prog_sigma=0.02, seed=3)
    noisy = m.run(q, devices=dev)
    assert not m.replayed and m.batched == 0  # read noise per firing: interpreted, not replayed
    assert_same(Machine(cm.program, reference=True).run(q, devices=dev), noisy)
    with pytest.raises(Exception, match="instruction budget"):
        m.run(q, max_instructions=base.stats.dynamic_instructions - 1)  # fewer than recorded: not replayed
    assert not m.replayed
    assert Machine(cm.program, replay=False).no_replay == "replay=False"
    assert Machine(cm.program, reference=True).no_replay == "reference mode"


def test_a_trace_too_long_is_not_kept(monkeypatch) -> None:
    from runtime import replay

    monkeypatch.setattr(replay, "MAX_ACTIONS", 5)
    prog = _pipeline(2, False)
    x = np.random.default_rng(6).integers(-128, 128, (2, 32))
    m = Machine(prog)
    first = m.run({"x": x})
    again = m.run({"x": x})
    assert not m.replayed and not m._traces
    assert_same(first, again)


@pytest.mark.parametrize("which,cores,tight", [("stem", 1, True), ("bottleneck", 8, False)])
def test_replay_of_line_buffers_rings_and_the_host_port(which: str, cores: int, tight: bool) -> None:
    """Programs that peek and free banded words and ring slots (`test_streaming_rings`), the input through the
    host port: replayed on the second image, equal to the reference on it."""
    from compiler import runner
    from test_streaming_rings import bottleneck, line_buffered, stem

    model, x = (stem if which == "stem" else bottleneck)()
    _, cm = line_buffered(model, x, cores, tight=tight)
    ops = {i.op for cc in cm.program.cores for i in cc.instrs}
    assert {"peek", "free"} <= ops
    q = runner.quantize_inputs(cm, {"x": x})
    ref, out = replayed(cm.program, {k: v[:1] for k, v in q.items()}, {k: v[1:] for k, v in q.items()})
    assert_same(ref, out)


def test_a_machine_for_one_run_records_only_for_later_chunks() -> None:
    """``once=True`` (`compiler.runner.run`, shards, rounds): a run in one chunk keeps no trace; a batch split by
    the memory budget records its first chunk and replays the later ones, equal to the reference."""
    prog = _pipeline(0, False)
    rng = np.random.default_rng(7)
    x = {"x": rng.integers(-128, 128, (5, 32))}
    ref = Machine(prog, reference=True).run(x)
    m = Machine(prog, once=True)
    assert_same(ref, m.run(x))
    assert not m._traces and not m.replayed
    m = Machine(prog, once=True)
    regs, tmp, _, whole, _ = m._item_bytes()
    budget = 2 * (regs + tmp + whole)  # chunks of 2, 2 and 1: the second replays the first's trace
    assert_same(ref, m.run(x, budget=budget))
    assert sorted(m._traces) == [2]
