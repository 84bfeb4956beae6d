"""Assembly errors: exact messages pinned by golden files (tests/golden/asm_errors/NAME.s -> NAME.expected).

Set XBARC_REGEN_GOLDEN=1 to rewrite the .expected files from the current output (then review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isa.assembler import assemble, assemble_instr, parse
from isa.errors import AsmError

GOLDEN = Path(__file__).parent / "golden" / "asm_errors"
CASES = sorted(p.stem for p in GOLDEN.glob("*.s"))


def _message(name: str) -> str:
    with pytest.raises(AsmError) as info:
        assemble((GOLDEN / f"{name}.s").read_text(), f"{name}.s")
    return str(info.value) + "\n"


@pytest.mark.parametrize("name", CASES)
def test_golden_error_message(name: str) -> None:
    expected = GOLDEN / f"{name}.expected"
    message = _message(name)
    if os.environ.get("XBARC_REGEN_GOLDEN"):
        expected.write_text(message)
    assert message == expected.read_text()


def test_golden_cases_cover_the_required_errors() -> None:
    required = {"unknown_mnemonic", "bad_register", "imm_out_of_range", "wrong_keyword", "too_few_operands",
                "undefined_label", "duplicate_label", "before_core", "duplicate_core", "missing_operand",
                "mask_no_bit"}
    assert required <= set(CASES)
    assert all((GOLDEN / f"{c}.expected").exists() for c in CASES)


def test_error_carries_location_with_caret_on_offending_token() -> None:
    with pytest.raises(AsmError) as info:
        assemble(".core 0 0\n    add r1, r2, r3, n=1, w=99\n", "x.s")
    loc = info.value.location
    assert loc is not None and (loc.file, loc.line, loc.col) == ("x.s", 2, 26)
    assert loc.text[loc.col - 1:].startswith("w=99")
    assert info.value.message == "w=99 out of range [1, 64]"


def test_unknown_mnemonic_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(AsmError) as info:
        assemble_instr("xyzzy r1")
    assert info.value.message == "unknown mnemonic 'xyzzy'"


def test_uppercase_mnemonic_suggests_lowercase() -> None:
    with pytest.raises(AsmError, match=r"unknown mnemonic 'ADD'; did you mean 'add'\?"):
        assemble_instr("ADD r1, r2, r3, n=1, w=8")


def test_syntax_error_in_single_operand_parse() -> None:
    with pytest.raises(AsmError) as info:
        parse("[r5+]", "operand")
    assert info.value.message == "expected a number, got ']'"


def test_empty_and_comment_only_programs_assemble_to_no_cores() -> None:
    assert assemble("").cores == [] and assemble("; nothing\n\n").cores == []
    assert assemble(".core 0 0\n").cores[0].instrs == []


# ---- hostile text: the caret stays under its column, the message stays short ------------------------------------
@pytest.mark.parametrize("sep", ["\r", "\u2028", "\x0b", "\x85"])
def test_a_line_breaking_character_inside_a_line_keeps_the_caret(sep: str) -> None:
    with pytest.raises(AsmError) as info:
        assemble(f".core 0 0\n    addi r1, r2, imm=5{sep} junk\n    halt\n", "x.s")
    lines = str(info.value).splitlines()
    assert lines[0].startswith("x.s:2:23: expected ',' or end of line") and len(lines) == 3
    assert lines[1] == "    addi r1, r2, imm=5\ufffd junk" and lines[2].index("^") == 22


def test_windows_line_endings_assemble() -> None:
    text = ".core 0 0\r\n    addi r1, r2, imm=5, n=1, w=8\r\n    halt\r\n"
    try:
        assemble(text, "x.s")
    except AsmError as e:  # if the grammar refuses "\r", the location and caret must still be right
        assert e.location is not None and e.location.line == 2 and "\r" not in str(e)


@pytest.mark.parametrize("where", [10, 500_000, 999_990])
def test_a_megabyte_line_gives_a_short_message(where: int) -> None:
    line = "    addi r1, r2, imm=5" + " " * 1_000_000
    line = line[:where] + "%" + line[where + 1:]
    with pytest.raises(AsmError) as info:
        assemble(".core 0 0\n" + line + "\n", "x.s")
    msg = str(info.value)
    assert len(msg) < 600 and msg.startswith(f"x.s:2:{where + 1}: ")
    shown, caret = msg.splitlines()[1:]
    assert shown[caret.index("^")] == "%"


def test_a_number_too_long_for_python_is_a_located_error() -> None:
    with pytest.raises(AsmError) as info:
        assemble(".core 0 0\n    addi r1, r2, imm=" + "9" * 10_000 + ", n=1, w=8\n", "x.s")
    assert str(info.value).startswith("x.s:2:18: malformed operand") and len(str(info.value)) < 800
