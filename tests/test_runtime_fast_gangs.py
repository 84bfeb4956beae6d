"""Fast mode across cores (`runtime.gangs`) and messages in batched loops (`runtime.loops`): loops that pass
partial sums through fixed-address mailboxes run as one gang, a value stored and sent (or received and loaded)
in one iteration passes through without memory traffic, send and recv loops batch; each against the reference
interpreter bit for bit and counter for counter, with the outputs checked against numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime import Machine
from support import HW, I, M, compile_model, loc, program
from test_runtime_fast import K, N, P, Q, _loop, assert_same, both

D = HW.data_base


def _loop_instructions(cores: list[list[Any]], trips: int) -> int:
    """Dynamic instructions of the loop bodies (the four-instruction setup and the halt excluded)."""
    return sum((len(c) - 5) * trips for c in cores)


def _partial_sums() -> tuple[Any, list[list[Any]]]:
    """Core 0.0 adds up x, 2x (core 0.1's mailbox [100, 104)) and 3x (core 0.2's mailbox [104, 108)) for 8
    four-word pixels: alone, no loop can batch (each mailbox holds one pixel)."""
    consumer = _loop([I("load", D, M(0, P), 4), I("load", D + 4, M(100), 4), I("add", D, D, D + 4, 4, 16),
                      I("load", D + 4, M(104), 4), I("add", D, D, D + 4, 4, 16), I("store", M(200, Q), D, 4, 0)], 8)
    first = _loop([I("load", D, M(0, P), 4), I("muli", D, D, 2, 4, 0, 16), I("store", M(100), D, 4, 1)], 8)
    second = _loop([I("load", D, M(0, P), 4), I("muli", D, D, 3, 4, 0, 16), I("store", M(104), D, 4, 1)], 8)
    cores = [consumer, first, second]
    prog = program({(0, 0): consumer, (0, 1): first, (0, 2): second}, inputs=[loc("x", 0, 0, 32, 8)],
                   outputs=[loc("y", 0, 200, 32, 16)])
    return prog, cores


@pytest.mark.parametrize("batch", [1, 3])
def test_partial_sums_through_mailboxes_run_as_one_gang(batch: int) -> None:
    prog, cores = _partial_sums()
    x = np.random.default_rng(batch).integers(-128, 128, (batch, 32))
    ref, fast, machine = both(prog, {"x": x})
    assert_same(ref, fast)
    assert np.array_equal(fast.outputs["y"], 6 * x)
    assert len(machine._gangs) == 1
    assert machine.batched == _loop_instructions(cores, 8)  # every iteration of all three loops


def test_a_gang_member_needing_a_parked_core_falls_back() -> None:
    """Core 0.1 must load a word core 0.0 stores in its loop's first iteration before it reaches its own loop:
    core 0.0 parked at the gang's head would wait for ever, so the gang is given up and both cores are
    interpreted, with the reference's results and counters."""
    consumer = _loop([I("store", M(300, Q), D + 8, 4, 0), I("load", D, M(100), 4), I("addi", D, D, 1, 4, 16),
                      I("store", M(200, P), D, 4, 0)], 8)
    producer = _loop([I("load", D, M(0, P), 4), I("muli", D, D, 3, 4, 0, 16), I("store", M(100), D, 4, 1)], 8)
    producer[-2] = I("blt", K, N, 5)  # the loop's head moves by the load put before it
    producer.insert(0, I("load", D + 8, M(300), 4))
    prog = program({(0, 0): consumer, (0, 1): producer}, inputs=[loc("x", 0, 0, 32, 8)],
                   outputs=[loc("y", 0, 200, 32, 16)])
    x = np.random.default_rng(7).integers(-128, 128, (2, 32))
    ref, fast, machine = both(prog, {"x": x})
    assert_same(ref, fast)
    assert np.array_equal(fast.outputs["y"], 3 * x + 1)
    assert len(machine._gangs) == 1


def _across_tiles(fixed_recv: bool) -> tuple[Any, list[list[Any]]]:
    """Tile 0 computes 2x + 1 per pixel, stores it in a one-pixel slot (reader count 1) and sends it to tile 1,
    which receives it (into one slot it loads at once, or into a distinct slot per pixel) and stores 3 times it."""
    sender = _loop([I("load", D, M(0, P), 4), I("muli", D, D, 2, 4, 0, 16), I("addi", D, D, 1, 4, 16),
                    I("store", M(100), D, 4, 1), I("send", M(100), 4, 1, 0)], 8)
    slot = M(50) if fixed_recv else M(50, Q)
    receiver = _loop([I("recv", slot, 4, 0, 0, 1 if fixed_recv else 0), I("load", D, slot, 4),
                      I("muli", D, D, 3, 4, 0, 16), I("store", M(200, P), D, 4, 0)], 8)
    prog = program({(0, 0): sender, (1, 0): receiver}, inputs=[loc("x", 0, 0, 32, 8)],
                   outputs=[loc("y", 1, 200, 32, 16)])
    return prog, [sender, receiver]


@pytest.mark.parametrize("fixed_recv", [True, False])
@pytest.mark.parametrize("batch", [1, 2])
def test_send_and_recv_loops_batch(fixed_recv: bool, batch: int) -> None:
    prog, cores = _across_tiles(fixed_recv)
    x = np.random.default_rng(batch).integers(-64, 64, (batch, 32))
    ref, fast, machine = both(prog, {"x": x})
    assert_same(ref, fast)
    assert np.array_equal(fast.outputs["y"], 3 * (2 * x + 1))
    assert machine.batched == _loop_instructions(cores, 8)


def test_a_recv_loop_stops_where_the_messages_do() -> None:
    """The receiver runs first (lower tile) and finds no message; the sender then sends all 8 at once and the
    receiver batches them: the same clocks as the interpreter's, whose receiver waits for each arrival."""
    sender = _loop([I("load", D, M(0, P), 4), I("store", M(100), D, 4, 1), I("send", M(100), 4, 0, 3)], 8)
    receiver = _loop([I("recv", M(50, Q), 4, 1, 3, 0), I("load", D, M(50, Q), 4), I("store", M(200, P), D, 4, 0)], 8)
    prog = program({(0, 0): receiver, (1, 0): sender}, inputs=[loc("x", 1, 0, 32, 8)],
                   outputs=[loc("y", 0, 200, 32, 16)])
    x = np.random.default_rng(3).integers(-64, 64, (1, 32))
    ref, fast, machine = both(prog, {"x": x})
    assert_same(ref, fast)
    assert np.array_equal(fast.outputs["y"], x)
    assert machine.batched > 0


def test_a_message_of_the_wrong_length_faults_at_its_recv() -> None:
    """A batched receiver stops before the message whose length differs; the interpreter then faults there."""
    sender = _loop([I("load", D, M(0, P), 4), I("send", M(0, P), 4, 1, 0)], 8)
    receiver = _loop([I("recv", M(50, Q), 2, 0, 0, 0), I("load", D, M(50, Q), 2), I("store", M(200, P), D, 2, 0)],
                     8)
    prog = program({(0, 0): sender, (1, 0): receiver}, inputs=[loc("x", 0, 0, 32, 8)],
                   outputs=[loc("y", 1, 200, 16, 16)])
    x = np.zeros((1, 32), dtype=np.int64)
    errors = []
    for reference in (True, False):
        with pytest.raises(Exception, match="message of 4 words") as err:
            Machine(prog, reference=reference).run({"x": x})
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_a_small_resnet_on_isaac_runs_its_gangs_bit_exactly() -> None:
    """ResNet-18 (a quarter of the channels) at 32x32 on the isaac preset: its convolutions' row blocks sit on
    several cores that pass partial sums through mailboxes and messages."""
    from compiler import runner
    from isa.hardware import PRESETS
    from models.cnn_zoo import resnet18

    model = resnet18(resolution=32, width=0.25, num_classes=10)
    inp = model.graph.input[0].name
    x = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    cm = compile_model(model, "8bit", hw=PRESETS["isaac"].with_changes(tile_mem_words=1 << 16),
                       calib={inp: x[:2]}, calib_images=2)
    q = runner.quantize_inputs(cm, {inp: x[2:]})
    ref, fast, machine = both(cm.program, q)
    assert_same(ref, fast)
    assert machine._gangs and machine.batched > 0.9 * fast.stats.dynamic_instructions
    assert runner.bit_exact(cm, {inp: x[2:]}, runner.run(cm, {inp: x[2:]}))  # the functional model's integers
    from runtime.devices import DeviceModel  # read noise is drawn per firing: gangs leave device runs alone too

    dev = DeviceModel(read_sigma=0.05, prog_sigma=0.02, seed=3)
    one = {k: v[:1] for k, v in q.items()}
    noisy = machine.run(one, devices=dev)
    assert machine.batched == 0
    assert_same(Machine(cm.program, reference=True).run(one, devices=dev), noisy)



def _refilled_slots() -> Any:
    """Core 0.0 sends slots [100, 132) twice (its two loops) while core 0.1 refills them in between (reader
    count 1: each send frees its slot); tile 1 receives all 16 messages only after both: y = x."""
    R = K - 4  # a second pointer of the producer
    fill = [I("set", R, 0), I("set", K, 0), I("set", N, 8)]
    producer = fill + [I("load", D, M(0, R), 4), I("store", M(100, R), D, 4, 1), I("iaddi", R, R, 4),
                       I("iaddi", K, K, 1), I("blt", K, N, 3)]
    producer += [I("set", R, 0), I("set", K, 0), I("load", D, M(32, R), 4), I("store", M(100, R), D, 4, 1),
                 I("iaddi", R, R, 4), I("iaddi", K, K, 1), I("blt", K, N, 10), I("halt")]
    sender = [I("set", P, 0), I("set", K, 0), I("set", N, 8), I("send", M(100, P), 4, 1, 0), I("iaddi", P, P, 4),
              I("iaddi", K, K, 1), I("blt", K, N, 3), I("set", P, 0), I("set", K, 0), I("send", M(100, P), 4, 1, 0),
              I("iaddi", P, P, 4), I("iaddi", K, K, 1), I("blt", K, N, 9), I("halt")]
    receiver = [I("set", Q, 0), I("set", K, 0), I("set", N, 16), I("recv", M(0, Q), 4, 0, 0, 0),
                I("iaddi", Q, Q, 4), I("iaddi", K, K, 1), I("blt", K, N, 3), I("halt")]
    return program({(0, 0): sender, (0, 1): producer, (1, 0): receiver}, inputs=[loc("x", 0, 0, 64, 8)],
                   outputs=[loc("y", 1, 0, 64, 16)])


def test_a_batched_send_copies_its_words() -> None:
    """A batched send's messages hold the words as they were when sent, not a view of memory that a refill
    overwrites before they are received (`_refilled_slots`)."""
    prog = _refilled_slots()
    x = np.random.default_rng(12).integers(-64, 64, (2, 64))
    ref, fast, machine = both(prog, {"x": x})
    assert np.array_equal(ref.outputs["y"], x)
    assert_same(ref, fast)
    assert machine.batched > 0
