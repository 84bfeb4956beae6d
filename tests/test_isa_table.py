"""The instruction table's load-time check and its invariants."""

from __future__ import annotations

import pytest

from isa.table import (BY_MNEMONIC, BY_OPCODE, INSTRUCTIONS, OPCODE_BITS, WORD_BITS, InstrSpec, check_table,
                       field_slices, reg, uimm)


def _spec(mn: str, op: int, fields: list) -> InstrSpec:
    return InstrSpec(mn, op, tuple(fields), "alu", "alu_add", "test")


def test_real_table_passes_and_indexes_agree() -> None:
    check_table()
    assert len(BY_MNEMONIC) == len(BY_OPCODE) == len(INSTRUCTIONS)
    assert BY_MNEMONIC["add"].opcode == 0x10 and BY_OPCODE[0x5F].mnemonic == "halt"


@pytest.mark.parametrize("table, message", [
    ((_spec("a", 1, []), _spec("a", 2, [])), "duplicate mnemonic a"),
    ((_spec("a", 1, []), _spec("b", 1, [])), "b: opcode 0x1 duplicate or out of range"),
    ((_spec("a", 0x100, []),), "opcode 0x100 duplicate or out of range"),
    ((_spec("a", 0, []),), "opcode 0x0 duplicate or out of range"),
    ((_spec("a", 1, [uimm("x", 60), uimm("y", 60), reg("z")]),), "a: 136 operand bits do not fit"),
    ((_spec("a", 1, [reg("d"), reg("d")]),), "a: duplicate field names ['d', 'd']"),
])
def test_check_table_rejects_bad_tables(table: tuple, message: str) -> None:
    with pytest.raises(AssertionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_table(table)


def test_field_slices_pack_from_bit_119_down_without_overlap() -> None:
    for spec in INSTRUCTIONS:
        top = WORD_BITS - OPCODE_BITS
        for f, lsb in field_slices(spec):
            assert lsb + f.bits == top and lsb >= 0
            top = lsb
    add = [(f.name, lsb) for f, lsb in field_slices(BY_MNEMONIC["add"])]
    assert add == [("d", 104), ("a", 88), ("b", 72), ("n", 56), ("w", 49)]


def test_generated_records_are_current_and_named_by_the_table() -> None:
    from isa import RECORDS, ops
    from isa.records import OPS_PATH, module_source

    assert OPS_PATH.read_text() == module_source(), "isa/ops.py is stale: python -m isa.recordgen"
    assert sorted(RECORDS) == sorted(BY_MNEMONIC)
    mvm = ops.mvm(mask=0b1, ibits=8, adc=6, shift=0, obits=16, enc=0, skip=-1)
    assert mvm.adc == 6 and mvm.args == (1, 8, 6, 0, 16, 0, -1) and mvm.spec is BY_MNEMONIC["mvm"]
