"""Scheduling and time: valid bits and reader counts between cores, NoC messages, deadlock detection."""

from __future__ import annotations

import numpy as np
import pytest

from isa import DeadlockError
from runtime import Machine
from support import HW, I, M, loc, program

A = np.array([[1, -2, 3, -4], [5, 6, -7, 8]])


def test_producer_consumer_on_one_tile():
    d = HW.data_base
    consumer = [I("load", d, M(0), 4), I("load", d + 4, M(0), 4), I("add", d + 8, d, d + 4, 4, 16),
                I("store", M(200), d + 8, 4, 0), I("halt")]
    producer = [I("load", d, M(100), 4), I("relu", d, d, 160), I("store", M(0), d, 4, 2),
                I("store", M(0), d, 4, 0), I("halt")]
    prog = program({(0, 0): consumer, (0, 1): producer}, inputs=[loc("a", 0, 100, 4)],
                   outputs=[loc("sum", 0, 200, 4), loc("again", 0, 0, 4)])
    res = Machine(prog).run({"a": A})
    relu = np.maximum(A, 0)
    assert np.array_equal(res.outputs["sum"], 2 * relu)
    assert np.array_equal(res.outputs["again"], relu)
    # producer: load 0-2, relu(160 words) 2-12, store 12-14; consumer loads 14-16 and 16-18 (the second read
    # invalidates the words at 18), add 18-19, store 19-21, halt 21-22; the producer's second store waits for 18
    assert res.stats.per_core == {"0.0": 22, "0.1": 21}
    assert res.stats.cycles == 22


def test_input_reader_count_is_consumed():
    d = HW.data_base
    code = [I("load", d, M(0), 4), I("load", d, M(0), 4), I("halt")]
    prog = program({(0, 0): code}, inputs=[loc("a", 0, 0, 4, count=1)])
    with pytest.raises(DeadlockError, match=r"pc 1: .* waits for valid words \[0, 4\) of tile 0 memory"):
        Machine(prog).run({"a": A})


def send_recv(dst: int):
    prog = program({(0, 0): [I("send", M(0), 4, dst, 3), I("halt")],
                    (dst, 2): [I("recv", M(40), 4, 0, 3, 0), I("halt")]},
                   inputs=[loc("a", 0, 0, 4)], outputs=[loc("y", dst, 40, 4)])
    return Machine(prog).run({"a": A})


@pytest.mark.parametrize("dst,hops", [(1, 1), (9, 2), (63, 14)])
def test_send_recv_latency_grows_with_hops(dst, hops):
    res = send_recv(dst)
    assert np.array_equal(res.outputs["y"], A)
    # send: 1 memory access (2 cycles) + 1 flit = 3; arrival 3 + 31*hops; recv 2 cycles; halt 1
    assert res.stats.per_core[f"{dst}.2"] == 3 + 31 * hops + 3
    assert res.stats.per_component["noc"] == pytest.approx((hops + 1) * 16.13 + 8.96)


def test_messages_are_fifo_per_channel():
    d = HW.data_base
    sender = [I("set", d, 1), I("store", M(0), d, 1, 1), I("send", M(0), 1, 1, 0),
              I("set", d, 2), I("store", M(0), d, 1, 1), I("send", M(0), 1, 1, 0), I("halt")]
    receiver = [I("recv", M(0), 1, 0, 0, 0), I("recv", M(1), 1, 0, 0, 0), I("halt")]
    prog = program({(0, 0): sender, (1, 0): receiver}, outputs=[loc("y", 1, 0, 2)])
    assert Machine(prog).run({}).outputs["y"].tolist() == [[1, 2]]


DEADLOCK_SRC = ["core0:", "  load r6144, [0], n=4", "  store [8], r6144, n=4, count=1", "  halt",
                "core1:", "  set r6200, 4", "  load r6144, [r6200+4], n=4", "  store [0], r6144, n=4, count=1",
                "  halt"]


def test_deadlock_lists_every_blocked_core():
    d = HW.data_base
    core0 = [I("load", d, M(0), 4), I("store", M(8), d, 4, 1), I("halt")]
    core1 = [I("set", d + 56, 4), I("load", d, M(4, d + 56), 4), I("store", M(0), d, 4, 1), I("halt")]
    prog = program({(0, 0): core0, (0, 1): core1}, source=DEADLOCK_SRC,
                   lines={(0, 0): [2, 3, 4], (0, 1): [6, 7, 8, 9]})
    with pytest.raises(DeadlockError) as exc:
        Machine(prog).run({})
    assert str(exc.value) == (
        "deadlock: 2 core(s) blocked, none can progress\n"
        "  tile 0 core 0 pc 0: load r6144, [0], n=4 waits for valid words [0, 4) of tile 0 memory\n"
        "  tile 0 core 1 pc 1: load r6144, [r6200+4], n=4 waits for valid words [8, 12) of tile 0 memory")


def test_deadlock_on_missing_message_and_full_memory():
    d = HW.data_base
    prog = program({(0, 0): [I("set", d, 1), I("store", M(0), d, 1, 0), I("store", M(0), d, 1, 0), I("halt")],
                    (1, 0): [I("recv", M(0), 4, 0, 2, 0), I("halt")]})
    with pytest.raises(DeadlockError) as exc:
        Machine(prog).run({})
    msg = str(exc.value)
    assert "tile 0 core 0 pc 2: " in msg and "waits for invalid words [0, 1) of tile 0 memory" in msg
    assert "tile 1 core 0 pc 0: " in msg and "waits for message on channel (0 -> 1, ch 2)" in msg


def test_clock_waits_for_late_producer_on_other_core():
    # the consumer (core 0) runs first and blocks; its clock jumps to the producer's store completion
    d = HW.data_base
    producer = [I("set", d, 3)] + [I("relu", d + 1, d + 1, 16)] * 50 + [I("store", M(0), d, 1, 0), I("halt")]
    consumer = [I("load", d, M(0), 1), I("halt")]
    res = Machine(program({(0, 0): consumer, (0, 1): producer})).run({})
    store_end = 1 + 50 + 2
    assert res.stats.per_core["0.0"] == store_end + 2 + 1
    assert res.stats.per_layer["-"]["end"] == store_end + 3
