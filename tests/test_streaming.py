"""Line buffers: `peek` reads without consuming, `free` consumes without reading, so a row stored with a reader
count per reader core is overwritten only after every reader freed it; and convolution chains whose activations do
not fit a tile run in row bands, bit-exact against the functional model."""

from __future__ import annotations

import pytest

from isa import DeadlockError
from runtime import Machine
from support import HW, I, M, loc, program

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
