"""The shape the design asks for, checked on the source: operands are read and written by name, not position."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Positional operand access: ``o[2]``, ``ops[0]``, ``instr.args[1]``, a table-order tuple handed to `Instr.of`.
POSITIONAL = re.compile(r"\b(o|ops|operands)\[\d+\]|\.args\[|\bInstr(\.of)?\(\s*\"")


def _sources(*globs: str) -> list[Path]:
    return sorted(p for g in globs for p in ROOT.glob(g))


def test_no_positional_operand_access_in_handlers_codegen_and_costs() -> None:
    files = _sources("runtime/*.py", "compiler/codegen/*.py", "compiler/search/cost.py", "isa/costs.py")
    assert len(files) > 5
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1) if POSITIONAL.search(line)]
    assert not hits, "\n".join(hits)
