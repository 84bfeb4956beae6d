"""docs/isa.md is generated from the table and must be up to date."""

from __future__ import annotations

from isa.docgen import DOC_PATH, render_instr, render_isa_doc, text_form
from isa.table import BY_MNEMONIC, INSTRUCTIONS


def test_docs_isa_md_is_up_to_date() -> None:
    current = DOC_PATH.read_text() if DOC_PATH.exists() else ""
    assert current == render_isa_doc(), "docs/isa.md is stale: run `python -m isa.docgen` and commit the result"


def test_render_is_deterministic_and_covers_every_instruction() -> None:
    doc = render_isa_doc()
    assert doc == render_isa_doc()
    for spec in INSTRUCTIONS:
        assert f"### `{spec.mnemonic}` (opcode `{spec.opcode:#04x}`)" in doc


def test_text_forms_and_field_rows() -> None:
    assert text_form(BY_MNEMONIC["add"]) == "add rD, rA, rB, n=N, w=W"
    assert text_form(BY_MNEMONIC["halt"]) == "halt"
    assert text_form(BY_MNEMONIC["load"]) == "load rD, [rB+SRC], n=N"
    section = render_instr(BY_MNEMONIC["add"])
    assert "| `n` | uimm | [71:56] | [1, 65535] | vector length in words |" in section
    assert "Execution class: `alu`; cost unit: `alu_add`." in section
