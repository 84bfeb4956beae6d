"""The assembly printer: one owner of the canonical text layout (indent, labels, provenance comment column).

`format_program` output assembles back to the same records, and ``assemble(format_program(p))`` printed again
gives the same text. Branch targets are named ``L<pc>``; the label line precedes the target instruction.
"""

from __future__ import annotations

from .program import Instr, Operand, Program
from .table import Field

HEADER = "; xbarc assembly"
INDENT = "    "
COMMENT_COL = 57  # 1-based column of the ';' of a provenance comment


def format_operand(f: Field, value: Operand, labels: dict[int, str] | None = None) -> str:
    """The text of one operand (its kind prints it)."""
    return f.operand.format(f, value, labels)


def format_instr(instr: Instr, labels: dict[int, str] | None = None) -> str:
    """One instruction's canonical text (no indent, no comment); ``labels`` names branch targets by pc."""
    ops = ", ".join(format_operand(f, v, labels) for f, v in zip(instr.spec.fields, instr.args))
    return f"{instr.op} {ops}" if ops else instr.op


def with_comment(text: str, comment: str) -> str:
    """``text`` followed by ``; comment`` at the comment column (at least two spaces after the text)."""
    pad = max(COMMENT_COL - 1 - len(text), 2)
    return f"{text}{' ' * pad}; {comment}"


def branch_targets(instr: Instr) -> list[int]:
    """The branch targets (label operands) of ``instr``."""
    return [int(getattr(instr, f.name)) for f in instr.spec.fields if f.kind == "label"]


def _branch_targets(instrs: list[Instr]) -> list[int]:
    return sorted({t for i in instrs for t in branch_targets(i)})


def render(program: Program, provenance: bool = True) -> tuple[list[str], list[list[int]]]:
    """The text lines of ``program`` and, per core, the 1-based line of each instruction."""
    lines = [HEADER]
    pc_lines: list[list[int]] = []
    for c in program.cores:
        lines += ["", f".core {c.tile} {c.core}"]
        targets = set(_branch_targets(c.instrs))
        labels = {t: f"L{t}" for t in targets}
        at: list[int] = []
        for pc, instr in enumerate(c.instrs):
            if pc in targets:
                lines.append(f"L{pc}:")
            text = INDENT + format_instr(instr, labels)
            lines.append(with_comment(text, "@" + instr.node) if provenance and instr.node else text)
            at.append(len(lines))
        if len(c.instrs) in targets:
            lines.append(f"L{len(c.instrs)}:")
        pc_lines.append(at)
    return lines, pc_lines


def format_program(program: Program, provenance: bool = True) -> str:
    """The canonical assembly text of ``program``'s code (``provenance``: ``; @node`` comments)."""
    lines, _ = render(program, provenance)
    return "\n".join(lines) + "\n"


def attach_source(program: Program) -> Program:
    """Print ``program`` and record the text in ``program.source`` and each core's ``lines``; returns it."""
    lines, pc_lines = render(program, provenance=True)
    program.source = lines
    for c, at in zip(program.cores, pc_lines):
        c.lines = at
    return program
