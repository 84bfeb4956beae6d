"""Fast mode (static loops batched, `runtime.loops`) against the reference interpreter: outputs bit for bit and
every counter (cycles, per-core clocks, per-instruction counts and energies, per-layer start/end) equal, on every
bundled model and config, and on hand-written programs that exercise reader counts, waits and fallbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime import Machine
from support import HW, I, M, compile_model, loc, program
from test_cost_golden import build, cases

ROOT = Path(__file__).resolve().parent.parent
D = HW.data_base
P, Q, K, N = (HW.core_regs - k for k in (1, 2, 3, 4))  # pointer, second pointer, counter, bound registers


def both(prog: Any, inputs: dict[str, np.ndarray]) -> tuple[Any, Any, Machine]:
    """Run ``prog`` in reference and fast mode; returns both results and the fast machine."""
    ref = Machine(prog, reference=True).run(inputs)
    fast = Machine(prog)
    return ref, fast.run(inputs), fast


def assert_same(ref: Any, fast: Any) -> None:
    """Outputs as integers and every counter equal."""
    assert ref.outputs.keys() == fast.outputs.keys()
    for k in ref.outputs:
        assert ref.outputs[k].dtype == fast.outputs[k].dtype and np.array_equal(ref.outputs[k], fast.outputs[k])
    assert ref.stats.to_dict() == fast.stats.to_dict()


@pytest.mark.parametrize("name", sorted(cases()))
def test_fast_equals_reference_on_bundled_configs(name: str) -> None:
    cm, x = build(cases()[name])
    from compiler import runner

    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x})
    for batch in (1, len(x)):
        ref, fast, machine = both(cm.program, {k: v[:batch] for k, v in q.items()})
        assert_same(ref, fast)
    if name.split("/")[0] != "mlp" and not name.startswith("puma"):  # convolutions are loops: they must batch
        assert machine.batched > 0


def test_fast_equals_reference_on_mnist_lenet() -> None:
    from compiler import runner
    from models.datasets import load_dataset

    cm = compile_model(ROOT / "models" / "lenet5_mnist.onnx", "8bit")
    x, _ = load_dataset("mnist", "test")
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x[:3]})
    ref, fast, machine = both(cm.program, q)
    assert_same(ref, fast)
    assert machine.batched > 0


def _loop(body: list[Any], trips: int, step_p: int = 4, step_q: int = 4) -> list[Any]:
    """``body`` as a loop of ``trips`` iterations over pointers P and Q."""
    head = 4
    return [I("set", P, 0), I("set", Q, 0), I("set", K, 0), I("set", N, trips), *body,
            I("iaddi", P, P, step_p), I("iaddi", Q, Q, step_q), I("iaddi", K, K, 1), I("blt", K, N, head),
            I("halt")]


def _pipeline(count: int, same_slot: bool) -> Any:
    """Core 0.0 consumes what core 0.1 produces (it runs first, so it waits): words [100, 132) with reader count
    ``count``; ``same_slot``: the producer reuses one 4-word slot, so they alternate: alone neither loop can
    batch, but with reader count 1 the slot is a mailbox and both loops run as one gang (`runtime.gangs`)."""
    slot = M(100) if same_slot else M(100, Q)
    consumer = _loop([I("load", D, slot, 4), I("addi", D, D, 3, 4, 16), I("load", D + 4, slot, 4) if count > 1 else
                      I("copy", D + 4, D, 4), I("add", D, D, D + 4, 4, 16), I("store", M(200, P), D, 4, 0)], 8)
    producer = _loop([I("load", D, M(0, P), 4), I("muli", D, D, 3, 4, 0, 16), I("store", slot, D, 4, count)], 8,
                     step_q=0 if same_slot else 4)
    return program({(0, 0): consumer, (0, 1): producer}, inputs=[loc("x", 0, 0, 32, 8)],
                   outputs=[loc("y", 0, 200, 32, 16)])


@pytest.mark.parametrize("count,same_slot", [(0, False), (1, False), (2, False), (1, True)])
def test_waits_reader_counts_and_fallback(count: int, same_slot: bool) -> None:
    rng = np.random.default_rng(count)
    x = rng.integers(-128, 128, (3, 32))
    ref, fast, machine = both(_pipeline(count, same_slot), {"x": x})
    assert_same(ref, fast)
    expect = 3 * x + 3 + (3 * x if count > 1 else 3 * x + 3)
    assert np.array_equal(ref.outputs["y"], np.clip(expect, -2**15, 2**15 - 1))
    assert machine.batched > 0


def test_a_prefix_runs_batched_while_a_producer_is_behind() -> None:
    """Core 0.0 produces slots 0-3 and halts, the consumer (0.1) batches those four iterations and blocks on slot
    4, which core 0.2 produces only then: the batch stops before the first iteration that would block."""
    first = _loop([I("load", D, M(0, P), 4), I("muli", D, D, 3, 4, 0, 16), I("store", M(100, Q), D, 4, 1)], 4)
    second = _loop([I("load", D, M(16, P), 4), I("muli", D, D, 3, 4, 0, 16), I("store", M(116, Q), D, 4, 1)], 4)
    consumer = _loop([I("load", D, M(100, Q), 4), I("addi", D, D, 1, 4, 16), I("store", M(200, P), D, 4, 0)], 8)
    prog = program({(0, 0): first, (0, 1): consumer, (0, 2): second}, inputs=[loc("x", 0, 0, 32, 8)],
                   outputs=[loc("y", 0, 200, 32, 16)])
    x = np.random.default_rng(5).integers(-128, 128, (2, 32))
    ref, fast, machine = both(prog, {"x": x})
    assert_same(ref, fast)
    assert np.array_equal(fast.outputs["y"], 3 * x + 1)
    assert machine.batched >= 3 * 4 * 7  # both producers' loops and the consumer's first four iterations


def test_chunks_of_a_wide_batch_and_the_budget(monkeypatch) -> None:
    from runtime import loops

    prog = _pipeline(0, False)
    x = np.arange(32 * 50).reshape(50, 32) % 200 - 100
    monkeypatch.setattr(loops, "MAX_COLUMNS", 3 * 50)  # 3 iterations per chunk
    monkeypatch.setattr(loops, "MIN_CHUNK", 2)
    ref, fast, machine = both(prog, {"x": x})
    assert_same(ref, fast)
    assert machine.batched > 0
    monkeypatch.setattr(loops, "MAX_LANES", 49)  # a wider batch is left to the interpreter
    ref, fast, machine = both(prog, {"x": x})
    assert_same(ref, fast)
    assert machine.batched == 0
    with pytest.raises(Exception, match="instruction budget") as fast_err:
        Machine(prog).run({"x": x[:1]}, max_instructions=60)
    with pytest.raises(Exception, match="instruction budget") as ref_err:
        Machine(prog, reference=True).run({"x": x[:1]}, max_instructions=60)
    assert str(fast_err.value) == str(ref_err.value)


def test_bitline_read_hook() -> None:
    """A device model's read replaces the ideal one on every MVM (the exact shortcut is off while it is set): the
    ideal read through the hook changes nothing; a read that adds one level to every bit line changes outputs."""
    from compiler import runner
    from runtime import mvm

    cm = compile_model(ROOT / "models" / "mlp_digits.onnx", "8bit")
    from models.datasets import load_dataset

    x, _ = load_dataset("digits", "test")
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x[:4]})
    base = Machine(cm.program).run(q)
    seen: list[int] = []

    def ideal(stack: Any, digits: np.ndarray) -> np.ndarray:
        seen.append(digits.shape[0])
        return mvm.ideal_read(stack, digits)

    try:
        mvm.set_bitline_read(ideal)
        assert mvm.bitline_read() is ideal
        assert_same(base, Machine(cm.program).run(q))
        assert seen
        mvm.set_bitline_read(lambda stack, digits: mvm.ideal_read(stack, digits) + 1)
        moved = Machine(cm.program).run(q)
    finally:
        mvm.set_bitline_read(None)
    assert any(not np.array_equal(base.outputs[k], moved.outputs[k]) for k in base.outputs)


def test_device_runs_are_interpreted_in_fast_mode_too() -> None:
    """A non-ideal device run draws read noise per firing: fast mode leaves its loops to the interpreter, so
    both modes draw the same noise and agree bit for bit."""
    from compiler import runner
    from models.datasets import load_dataset
    from runtime.devices import DeviceModel

    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit")
    x, _ = load_dataset("digits32", "test")
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x[:2]})
    dev = DeviceModel(read_sigma=0.05, prog_sigma=0.02, seed=3)
    fast = Machine(cm.program)
    a = fast.run(q, devices=dev)
    assert fast.batched == 0
    assert_same(Machine(cm.program, reference=True).run(q, devices=dev), a)

