"""Binary encoding: the pure encode/decode pair, the container, and clear errors on garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isa.assembler import assemble
from isa.encoding import MAGIC, decode_instr, decode_program, encode_instr, encode_program
from isa.errors import AsmError
from isa.hardware import DEFAULT
from isa.printer import format_program
from isa import ops
from isa.program import Instr
from isa.table import BY_MNEMONIC, INSTRUCTIONS, NO_BASE, Field, field_slices


def table_value(f: Field) -> st.SearchStrategy:
    """Any value the table allows (no hardware limits)."""
    if f.kind == "mem":
        return st.tuples(st.integers(0, NO_BASE), st.integers(f.lo, f.hi))
    return st.integers(f.lo, f.hi)


def test_known_word_layout() -> None:
    word = encode_instr(Instr.of("add", (1, 2, 3, 128, 32)))
    expected = (0x10 << 120) | (1 << 104) | (2 << 88) | (3 << 72) | (128 << 56) | (32 << 49)
    assert word == expected
    store = encode_instr(Instr.of("store", ((NO_BASE, 300), 7, 64, 1)))
    assert store >> 80 & ((1 << 40) - 1) == (NO_BASE << 24) | 300
    rq = encode_instr(Instr.of("rqnt", (0, 0, 1, -3, 8)))
    shift_lsb = dict((f.name, lsb) for f, lsb in field_slices(BY_MNEMONIC["rqnt"]))["shift"]
    assert rq >> shift_lsb & 0xFF == 0xFD  # two's complement of -3 in 8 bits
    assert encode_instr(Instr.of("halt", ())) == 0x5F << 120


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_encode_decode_is_a_pure_pair_over_the_whole_table(data: st.DataObject) -> None:
    for spec in INSTRUCTIONS:
        instr = Instr.of(spec.mnemonic, tuple(data.draw(table_value(f)) for f in spec.fields))
        assert decode_instr(encode_instr(instr)) == instr


@pytest.mark.parametrize("instr, message", [
    (Instr.of("add", (1, 2, 3, 0, 32)), "cannot encode add: field n: n=0 out of range [1, 65535]"),
    (Instr.of("rqnt", (1, 2, 3, 128, 8)), "cannot encode rqnt: field shift: shift=128 out of range [-128, 127]"),
    (Instr.of("load", (1, (2, 1 << 24), 4)), "cannot encode load: field src: offset 16777216 out of range"),
    (Instr.of("mvm", (0, 8, 8, 0, 8, 0, -1)), "cannot encode mvm: field mask: mask 0b0 selects no MVMU"),
    (Instr.of("add", (1 << 16, 2, 3, 1, 32)), r"cannot encode add: field d: register r65536 out of range"),
])
def test_encode_rejects_out_of_range_operands(instr: Instr, message: str) -> None:
    with pytest.raises(AsmError, match=message.replace("[", r"\[")):
        encode_instr(instr)


def test_records_take_exactly_the_table_operands() -> None:
    with pytest.raises(AsmError, match="add: 2 operands, the table lists 5"):
        Instr.of("add", (1, 2))
    with pytest.raises(TypeError):
        ops.add(d=1, a=2, b=3, n=4)  # type: ignore[call-arg]  # w missing
    with pytest.raises(TypeError):
        ops.Add(1, 2, 3, 4, 5)  # type: ignore[misc]  # keyword only


def test_decode_rejects_unknown_opcode_and_dirty_unused_bits() -> None:
    with pytest.raises(AsmError, match=r"unknown opcode 0x77"):
        decode_instr(0x77 << 120)
    with pytest.raises(AsmError, match=r"halt: unused bits \[119:0\] are not zero"):
        decode_instr((0x5F << 120) | 1)
    with pytest.raises(AsmError, match=r"add: field n: n=0 out of range"):
        decode_instr(0x10 << 120 | 32 << 49)


PROG = ".core 0 0\nL0:\n    set r1, imm=-7\n    blt r1, r2, L0\n    halt\n\n.core 2 5\n    halt\n"


def test_container_layout_and_disassemble_reassemble_identity() -> None:
    data = encode_program(assemble(PROG))
    assert data[:8] == MAGIC + struct.pack("<HH", 1, 2)
    assert data[8:16] == struct.pack("<HHI", 0, 0, 3) and len(data) == 8 + 8 + 3 * 16 + 8 + 16
    again = encode_program(assemble(format_program(decode_program(data))))
    assert again == data


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"ELF!" + d[4:], r"<binary>: not an xbarc binary \(magic b'ELF!'"),
    (lambda d: d[:4] + struct.pack("<H", 9) + d[6:], r"unsupported binary version 9"),
    (lambda d: d[:6], r"truncated at byte 6 while reading the header"),
    (lambda d: d[:40], r"truncated at byte 40 while reading the instruction 1 of core 0\.0"),
    (lambda d: d + b"\0", r"1 trailing bytes after the last core"),
    (lambda d: d[:32] + bytes(15) + b"\x77" + d[48:], r"core 0\.0 pc 1: unknown opcode 0x77"),
    (lambda d: d[:16 + 32] + bytes(16) + d[64:], r"core 0\.0 pc 2: unknown opcode 0x00"),
])
def test_decode_garbage_gives_clear_errors(mutate, message: str) -> None:
    data = encode_program(assemble(PROG))
    with pytest.raises(AsmError, match=message):
        decode_program(mutate(data))


def test_decode_checks_hardware_and_branch_targets() -> None:
    bad_core = MAGIC + struct.pack("<HHHHI", 1, 1, 0, 99, 0)
    with pytest.raises(AsmError, match=r"core 0\.99: core 99 out of range: a tile has 8 cores"):
        decode_program(bad_core)
    jump = encode_instr(Instr.of("jmp", (5,))).to_bytes(16, "little")
    with pytest.raises(AsmError, match=r"pc 0: jmp: field target: branch target 5 beyond the end"):
        decode_program(MAGIC + struct.pack("<HHHHI", 1, 1, 0, 0, 1) + jump, DEFAULT, "x.bin")
    big = encode_instr(Instr.of("copy", (9000, 1, 4))).to_bytes(16, "little")
    with pytest.raises(AsmError, match=r"x\.bin: core 0\.0 pc 0: copy: field d: register r9000 out of range"):
        decode_program(MAGIC + struct.pack("<HHHHI", 1, 1, 0, 0, 1) + big, DEFAULT, "x.bin")
