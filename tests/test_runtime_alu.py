"""Vector ALU, moves, scalar ops and branches against numpy (batch of 2 lanes)."""

from __future__ import annotations

import numpy as np
import pytest

from isa import numerics as nx
from runtime import Machine
from support import D, I, M, loc, program

A = np.array([[0, 1, -1, 32767, -32768, 100, -100, 7],
              [5, -6, 20000, -20000, 3, 4, -9, 0]], dtype=np.int64)
B = np.array([[0, 1, 1, 1, -1, -3, 50, -8],
              [2, 2, -20000, -20000, 9, 4, 9, 1]], dtype=np.int64)
N = A.shape[1]


def run_op(instr, a=A, b=B, out_len=N, out_reg=D + 2 * N):
    """Load a into D.., b into D+N..; run ``instr``; store out_len words from out_reg."""
    code = [I("load", D, M(0), N), I("load", D + N, M(100), N), instr,
            I("store", M(200), out_reg, out_len, 0), I("halt")]
    prog = program({(0, 0): code}, inputs=[loc("a", 0, 0, N, 17), loc("b", 0, 100, N, 17)],
                   outputs=[loc("y", 0, 200, out_len, 64)])
    return Machine(prog).run({"a": a, "b": b}).outputs["y"]


def sat(x, w):
    return np.clip(x, -(2 ** (w - 1)), 2 ** (w - 1) - 1)


def rnd(x, s):
    return np.floor(x / 2.0**s + 0.5).astype(np.int64)


O = D + 2 * N
CASES = {
    "add": (I("add", O, D, D + N, N, 16), sat(A + B, 16)),
    "sub": (I("sub", O, D, D + N, N, 16), sat(A - B, 16)),
    "mul": (I("mul", O, D, D + N, N, 2, 16), sat(rnd(A * B, 2), 16)),
    "min": (I("min", O, D, D + N, N), np.minimum(A, B)),
    "max": (I("max", O, D, D + N, N), np.maximum(A, B)),
    "addi": (I("addi", O, D, -5, N, 8), sat(A - 5, 8)),
    "muli": (I("muli", O, D, -3, N, 1, 12), sat(rnd(A * -3, 1), 12)),
    "mini": (I("mini", O, D, 4, N), np.minimum(A, 4)),
    "maxi": (I("maxi", O, D, -2, N), np.maximum(A, -2)),
    "shli": (I("shli", O, D, 3, N, 16), sat(A * 8, 16)),
    "shri": (I("shri", O, D, 2, N), rnd(A, 2)),
    "relu": (I("relu", O, D, N), np.maximum(A, 0)),
    "sig": (I("sig", O, D, N, 8), np.floor(256 / (1 + np.exp(-A / 256)) + 0.5).astype(np.int64)),
    "tanh": (I("tanh", O, D, N, 8), np.floor(np.tanh(A / 256) * 256 + 0.5).astype(np.int64)),
    "rqnt": (I("rqnt", O, D, N, 3, 8), sat(rnd(A, 3), 8)),
    "rqnt_left": (I("rqnt", O, D, N, -2, 12), sat(A * 4, 12)),
    "copy": (I("copy", O, D, N), A),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_vector_op(name):
    instr, want = CASES[name]
    assert np.array_equal(run_op(instr), want)


def test_rounding_is_half_up_for_negatives():
    # -6/4 = -1.5 -> -1 ; 6/4 = 1.5 -> 2 ; -10/4 = -2.5 -> -2
    a = np.array([[-6, 6, -10, 0, 0, 0, 0, 0]] * 2)
    got = run_op(I("shri", O, D, 2, N), a=a)
    assert got[0, :3].tolist() == [-1, 2, -2]


def test_sources_may_overlap_destination():
    # d = a + b with d == a shifted by one word: numpy must not read partially written values
    got = run_op(I("add", D + 1, D, D + N, N, 32), out_reg=D + 1)
    assert np.array_equal(got, A + B)
    got = run_op(I("copy", D + 1, D, N), out_reg=D + 1)
    assert np.array_equal(got, A)
    got = run_op(I("copy", D, D + 1, N), out_reg=D)  # backwards overlap
    assert np.array_equal(got[:, :N - 1], A[:, 1:])
    for instr, want in ((I("rqnt", D + 1, D, N, 3, 8), sat(rnd(A, 3), 8)), (I("rqnt", D + 1, D, N, 0, 8), sat(A, 8)),
                        (I("addi", D + 1, D, -5, N, 8), sat(A - 5, 8)), (I("relu", D + 1, D, N), np.maximum(A, 0)),
                        (I("sub", D, D + 1, D + N, N, 16), sat(np.concatenate([A[:, 1:], B[:, :1]], 1) - B, 16)),
                        (I("max", D + 1, D, D + N, N), np.maximum(A, B))):  # the handlers write in place
        assert np.array_equal(run_op(instr, out_reg=instr.d), want), instr.op


def test_scalar_ops_and_counted_loop():
    # r = 0; i = 0; n = 5; loop: r = r + i ; i += 1 ; blt i, n -> loop ; then r*3 - 1 -> 29
    r, i, n, t = D, D + 1, D + 2, D + 3
    code = [I("set", r, 0), I("set", i, 0), I("set", n, 5),
            I("iadd", r, r, i), I("iaddi", i, i, 1), I("blt", i, n, 3),
            I("set", t, 3), I("imul", r, r, t), I("set", t, 1), I("isub", r, r, t),
            I("beq", r, t, 13), I("bne", r, t, 13), I("set", r, -1),  # skipped by the bne
            I("store", M(0), r, 1, 0), I("halt")]
    prog = program({(0, 0): code}, outputs=[loc("y", 0, 0, 1, 64)])
    res = Machine(prog).run({})
    assert res.outputs["y"].tolist() == [[29]]
    assert res.stats.dynamic_instructions == 3 + 5 * 3 + 4 + 2 + 2
    assert res.stats.per_instruction["blt"]["count"] == 5


def test_jmp_skips():
    code = [I("set", D, 7), I("jmp", 3), I("set", D, 9), I("store", M(0), D, 1, 0), I("halt")]
    prog = program({(0, 0): code}, outputs=[loc("y", 0, 0, 1, 64)])
    assert Machine(prog).run({}).outputs["y"].tolist() == [[7]]


def test_memory_base_register_addressing():
    code = [I("set", D + 50, 100), I("load", D, M(0, D + 50), N), I("store", M(10, D + 50), D, N, 0), I("halt")]
    prog = program({(0, 0): code}, inputs=[loc("a", 0, 100, N, 17)], outputs=[loc("y", 0, 110, N, 64)])
    assert np.array_equal(Machine(prog).run({"a": A}).outputs["y"], A)


def test_saturation_edges_of_sat_helpers():
    assert nx.saturate(np.array([40000, -40000]), 16).tolist() == [32767, -32768]
    got = run_op(I("add", O, D, D, N, 16))
    assert got[0, 3] == 32767 and got[0, 4] == -32768
