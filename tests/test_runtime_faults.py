"""Runtime faults point back at core, pc, assembly line and ONNX node (pinned format); input checking."""

from __future__ import annotations

import re

import numpy as np
import pytest

from isa import MemInit, MvmuImage, RuntimeFault, XbarcError
from runtime import Machine
from support import HW, I, M, loc, program

d = HW.data_base


def fault_of(instrs, source=None, lines=None, inputs=None, **kw) -> str:
    prog = program({(0, 1): instrs}, source=source, lines={(0, 1): lines} if lines else None, **kw)
    with pytest.raises(RuntimeFault) as exc:
        Machine(prog).run(inputs or {}, **({"max_instructions": 100} if "loop" in str(source) else {}))
    return str(exc.value)


def test_register_out_of_range_pinned_message():
    src = ["fc1:", "  set r6144, 1", "  add r6142, r6144, r6144, n=4, w=16  ; fc1/Add"]
    msg = fault_of([I("set", d, 1), I("add", HW.core_regs - 2, d, d, 4, 16, node="fc1/Add"), I("halt")],
                   source=src, lines=[2, 3, 4])
    assert msg == ("runtime fault: register operand d: words [6142, 6146) outside the register file [0, 6144)\n"
                   "  core: tile 0 core 1, pc 1\n"
                   "  at t.s:3: add r6142, r6144, r6144, n=4, w=16  ; fc1/Add\n"
                   "  node: fc1/Add")


def test_bad_memory_address_from_base_register():
    msg = fault_of([I("set", d, 65530), I("load", d + 1, M(2, d), 16, node="x"), I("halt")])
    assert msg.startswith("runtime fault: memory words [65532, 65548) outside tile 0 memory [0, 65536)\n"
                          "  core: tile 0 core 1, pc 1\n  at <program>:?: load")
    assert msg.endswith("\n  node: x")


def test_missing_mvmu_image():
    w = np.ones((4, 4), dtype=np.int64)
    msg = fault_of([I("mvm", 0b101, 8, 10, 0, 16, 0, -1, node="conv"), I("halt")],
                   mvmus=[MvmuImage(0, 1, 0, w, 4)])
    assert msg.startswith("runtime fault: mvm fires MVMU 2 of tile 0 core 1, which has no programmed image\n"
                          "  core: tile 0 core 1, pc 0\n")
    assert msg.endswith("node: conv")


def test_mask_beyond_mvmus_per_core():
    msg = fault_of([I("mvm", 1 << HW.mvmus_per_core, 8, 10, 0, 16, 0, -1), I("halt")])
    assert "selects an MVMU >= 8" in msg and msg.endswith("node: -")


def test_bad_tile_in_send():
    msg = fault_of([I("send", M(0), 1, HW.tiles + 1, 0), I("halt")])
    assert msg.startswith(f"runtime fault: tile {HW.tiles + 1} outside the chip [0, {HW.tiles}) and not the host port "
                          f"(tile {HW.port_tile})")


def test_pc_runs_off_the_end():
    msg = fault_of([I("set", d, 1, node="fc1")], source=["  set r0, 1  ; @fc1"], lines=[1])
    assert msg.startswith("runtime fault: pc 1 ran past the end of the code (1 instructions) without halt\n"
                          "  core: tile 0 core 1, pc 1\n  after the last instruction, t.s:1: set r0, 1  ; @fc1\n"
                          "  node: fc1")


def test_instruction_budget():
    msg = fault_of([I("jmp", 0)], source=["loop:", "  jmp loop"], lines=[2])
    assert re.match(r"runtime fault: instruction budget of 100 instructions exceeded\n  core: tile 0 core 1, pc 0\n"
                    r"  at t\.s:2: jmp loop\n", msg)


def test_message_length_mismatch():
    prog = program({(0, 0): [I("send", M(0), 2, 1, 0), I("halt")], (1, 0): [I("recv", M(0), 3, 0, 0, 0), I("halt")]},
                   data=[MemInit(0, 0, np.array([1, 2]))])
    with pytest.raises(RuntimeFault, match=r"message of 2 words on channel \(0 -> 1, ch 0\), recv expects n=3"):
        Machine(prog).run({})


def test_unwritten_output_is_a_fault():
    prog = program({(0, 0): [I("halt")]}, outputs=[loc("y", 0, 10, 4)])
    with pytest.raises(RuntimeFault, match=r"output 'y': 4 of words \[10, 14\) of tile 0 memory are not valid"):
        Machine(prog).run({})


def test_input_checks():
    prog = program({(0, 0): [I("halt")]}, inputs=[loc("x", 0, 0, 4, bits=8)])
    m = Machine(prog)
    with pytest.raises(XbarcError, match=r"missing \['x'\], unexpected \['z'\]"):
        m.run({"z": np.zeros((1, 4), dtype=np.int64)})
    with pytest.raises(XbarcError, match=r"expected shape \(batch, 4\)"):
        m.run({"x": np.zeros((2, 5), dtype=np.int64)})
    with pytest.raises(XbarcError, match="expected quantized integers"):
        m.run({"x": np.zeros((2, 4))})
    with pytest.raises(XbarcError, match="outside the 8-bit range"):
        m.run({"x": np.full((2, 4), 128)})


def test_image_checks():
    with pytest.raises(XbarcError, match="does not fit a 128x128 crossbar"):
        Machine(program({(0, 0): [I("halt")]}, mvmus=[MvmuImage(0, 0, 0, np.ones((129, 2), dtype=np.int64), 4)]))
    with pytest.raises(XbarcError, match="weights do not fit weight_bits=4"):
        Machine(program({(0, 0): [I("halt")]}, mvmus=[MvmuImage(0, 0, 0, np.full((2, 2), -8), 4)]))


def test_vector_write_over_a_pointer_register_faults_at_run_time():
    """Issue 18: a vector destination covering a register this core uses as a memory base faults when it
    executes (naming core, pc, line and node), instead of moving the next store and deadlocking later."""
    p = HW.core_regs - 5  # a loop pointer, as the codegen places them
    src = ["  set r6139, 64", "  load r2048, [r6139+0], n=4", "  add r6136, r2048, r2048, n=8, w=16",
           "  store [r6139+0], r2048, n=4, count=0"]
    instrs = [I("set", p, 64), I("load", d, M(0, p), 4), I("add", p - 3, d, d, 8, 16, node="res/Add"),
              I("store", M(0, p), d, 4, 0), I("halt")]
    msg = fault_of(instrs, source=src, lines=[1, 2, 3, 4, 5],
                   data=[MemInit(0, 64, np.arange(4, dtype=np.int64), 0)])
    assert msg == (f"runtime fault: vector destination r{p - 3}..r{p + 4} (8 words) overlaps pointer register "
                   f"r{p}, the base register of this core's memory operands\n"
                   "  core: tile 0 core 1, pc 2\n"
                   "  at t.s:3: add r6136, r2048, r2048, n=8, w=16\n"
                   "  node: res/Add")


def test_scalar_pointer_writes_stay_legal():
    p = HW.core_regs - 5
    prog = program({(0, 1): [I("set", p, 64), I("iaddi", p, p, 4), I("load", p, M(0), 1),
                             I("store", M(0, p), d, 1, 0), I("halt")]},
                   data=[MemInit(0, 0, np.array([8], dtype=np.int64), 0)])
    Machine(prog).run({})
