"""The assembler: xbarc assembly text -> `Program` records, with every error pointing at the offending token.

Stages: Lark parse (``asm.lark``) -> typed statement records carrying positions (`_ToRecords`) -> sections per
``.core`` -> per-core label resolution and operand checks against the instruction table and the hardware.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from lark import Lark, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from .encoding import core_header_error
from .errors import AsmError, Location
from .hardware import DEFAULT, HardwareConfig
from .operands import OperandError
from .program import CoreCode, Instr, Operand, Program
from .table import BY_MNEMONIC, NO_BASE, Field, InstrSpec

PARSER = Lark(Path(__file__).with_name("asm.lark").read_text(), parser="lalr", propagate_positions=True,
              start=["program", "instruction", "operand"], maybe_placeholders=False)


# ---- statement records ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pos:
    """A token's 1-based line, first column and column just past its end."""

    line: int
    col: int
    end_col: int


@dataclass(frozen=True)
class Opnd:
    """One operand as written: kind (reg, kw, mask, label, number, mem), value, keyword name and position."""

    kind: str
    value: int | str | tuple[int, int] | None
    pos: Pos
    name: str = ""


@dataclass(frozen=True)
class SectionStmt:
    """``.core TILE CORE``: positions of the directive, the tile and the core number."""

    directive: str
    tile: int
    core: int
    pos: Pos
    tile_pos: Pos
    core_pos: Pos


@dataclass(frozen=True)
class LabelStmt:
    """``NAME:``."""

    name: str
    pos: Pos


@dataclass(frozen=True)
class InstrStmt:
    """A mnemonic (at ``pos``) and its operands."""

    mnemonic: str
    operands: tuple[Opnd, ...]
    pos: Pos


Stmt = Union[SectionStmt, LabelStmt, InstrStmt]


def _tpos(tok: Any) -> Pos:
    return Pos(tok.line, tok.column, tok.end_column)


def _mpos(meta: Any) -> Pos:
    return Pos(meta.line, meta.column, meta.end_column)


@v_args(meta=True)
class _ToRecords(Transformer[Any, Any]):
    """Lark tree -> statement records; each keeps the position of its first token."""

    def program(self, meta: Any, children: list[Any]) -> list[Stmt]:
        return children

    def section(self, meta: Any, c: list[Any]) -> SectionStmt:
        return SectionStmt(str(c[0]), int(c[1]), int(c[2]), _tpos(c[0]), _tpos(c[1]), _tpos(c[2]))

    def label_def(self, meta: Any, c: list[Any]) -> LabelStmt:
        return LabelStmt(str(c[0]), _tpos(c[0]))

    def instruction(self, meta: Any, c: list[Any]) -> InstrStmt:
        return InstrStmt(str(c[0]), tuple(c[1:]), _tpos(c[0]))

    def reg(self, meta: Any, c: list[Any]) -> Opnd:
        return Opnd("reg", int(c[0][1:]), _mpos(meta))

    def kw(self, meta: Any, c: list[Any]) -> Opnd:
        return Opnd("kw", int(c[1]), _mpos(meta), str(c[0]))

    def mask(self, meta: Any, c: list[Any]) -> Opnd:
        digits = str(c[0])[2:]
        ok = digits and set(digits) <= {"0", "1"}
        return Opnd("mask", int(digits, 2) if ok else None, _mpos(meta))

    def label_ref(self, meta: Any, c: list[Any]) -> Opnd:
        return Opnd("label", str(c[0]), _mpos(meta))

    def number(self, meta: Any, c: list[Any]) -> Opnd:
        return Opnd("number", int(c[0]), _mpos(meta))

    def mem_based(self, meta: Any, c: list[Any]) -> Opnd:
        return Opnd("mem", (int(c[0][1:]), int(c[1])), _mpos(meta))

    def mem_reg(self, meta: Any, c: list[Any]) -> Opnd:
        return Opnd("mem", (int(c[0][1:]), 0), _mpos(meta))

    def mem_abs(self, meta: Any, c: list[Any]) -> Opnd:
        return Opnd("mem", (NO_BASE, int(c[0])), _mpos(meta))


# ---- error context -----------------------------------------------------------------------------------------------
class _Source:
    """The text being assembled: file name and lines, for locations and operand text."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        # lines as the grammar counts them: split at "\n" only (a "\r" or U+2028 inside a line stays in it)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]

    def error(self, message: str, pos: Pos) -> AsmError:
        """An AsmError at ``pos``."""
        text = self.lines[pos.line - 1] if 0 < pos.line <= len(self.lines) else ""
        return AsmError(message, Location(self.filename, pos.line, pos.col, text))

    def text(self, pos: Pos) -> str:
        """The source text spanning ``pos``."""
        return self.lines[pos.line - 1][pos.col - 1:pos.end_col - 1]

    def provenance(self, line: int) -> str | None:
        """The node named by a ``; @node`` comment on ``line``, if any."""
        _, semi, comment = self.lines[line - 1].partition(";")
        comment = comment.strip()
        return (comment[1:].strip() or None) if semi and comment.startswith("@") else None


# ---- syntax errors in the user's words -------------------------------------------------------------------------
_WORDS = {"INT": "a number", "SIGNED_INT": "a number", "REG": "a register", "NAME": "a name", "RSQB": "']'",
          "PLUS": "'+'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "_NL": "end of line", "$END": "end of input",
          "MASK": "a mask", "LSQB": "'['", "DIRECTIVE": "a directive"}


def _expected(names: set[str]) -> str:
    if "LSQB" in names or {"REG", "NAME"} <= names:
        return "an operand"
    if "DIRECTIVE" in names:
        return "an instruction, a label or a .core section"
    if "COMMA" in names:
        return "',' or end of line"
    return " or ".join(sorted({_WORDS.get(n, n) for n in names}))


def _got(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedCharacters):
        return repr(e.char)
    tok = e.token  # type: ignore[attr-defined]
    if tok.type in ("_NL", "$END"):
        return _WORDS[tok.type]
    text = str(tok)
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


def _syntax_error(e: UnexpectedInput, src: _Source) -> AsmError:
    names = set(e.allowed) if isinstance(e, UnexpectedCharacters) else set(e.expected)  # type: ignore[attr-defined]
    line = e.line if e.line and e.line > 0 else max(len(src.lines), 1)
    col = e.column if e.column and e.column > 0 else len(src.lines[line - 1]) + 1 if src.lines else 1
    return src.error(f"expected {_expected(names)}, got {_got(e)}", Pos(line, col, col + 1))


def parse(text: str, start: str = "program", filename: str = "<asm>") -> Any:
    """The statement records of ``text`` parsed from ``start`` (program, instruction or operand)."""
    src = _Source(filename, text)
    if start == "program" and not text.endswith("\n"):
        text += "\n"
    try:
        return _ToRecords().transform(PARSER.parse(text, start=start))
    except (UnexpectedToken, UnexpectedCharacters) as e:
        raise _syntax_error(e, src) from None
    except VisitError as e:  # a token the grammar accepts but Python cannot convert (a number of 5,000 digits)
        meta = getattr(e.obj, "meta", None)
        line, col = (getattr(meta, "line", 0), getattr(meta, "column", 0)) if meta is not None else (0, 0)
        raise src.error(f"malformed operand ({e.orig_exc})", Pos(line or 1, col or 1, (col or 1) + 1)) from None


# ---- assembly ----------------------------------------------------------------------------------------------------
def assemble(text: str, filename: str = "<asm>", hw: HardwareConfig = DEFAULT) -> Program:
    """The `Program` (code only) of assembly ``text``; fills source lines, per-instruction lines and provenance."""
    src = _Source(filename, text)
    program = Program(hw=hw, source=src.lines, filename=filename)
    for header, body in _sections(parse(text, "program", filename), src, hw):
        program.cores.append(_core(header, body, src, hw))
    return program


def _sections(stmts: list[Stmt], src: _Source, hw: HardwareConfig) -> list[tuple[SectionStmt, list[Stmt]]]:
    sections: list[tuple[SectionStmt, list[Stmt]]] = []
    first: dict[tuple[int, int], int] = {}
    for st in stmts:
        if isinstance(st, SectionStmt):
            _check_section(st, first, src, hw)
            sections.append((st, []))
        elif not sections:
            what = "instruction" if isinstance(st, InstrStmt) else "label"
            raise src.error(f"{what} before any .core section", st.pos)
        else:
            sections[-1][1].append(st)
    return sections


def _check_section(st: SectionStmt, first: dict[tuple[int, int], int], src: _Source, hw: HardwareConfig) -> None:
    if st.directive != ".core":
        raise src.error(f"unknown directive '{st.directive}'{_suggest(st.directive, ['.core'])}", st.pos)
    problem = core_header_error(st.tile, st.core, hw)
    if problem:
        raise src.error(problem, st.core_pos if problem.startswith("core") else st.tile_pos)
    key = (st.tile, st.core)
    if key in first:
        raise src.error(f"duplicate section .core {st.tile} {st.core} (first at line {first[key]})", st.pos)
    first[key] = st.pos.line


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word.lower(), list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _core(header: SectionStmt, body: list[Stmt], src: _Source, hw: HardwareConfig) -> CoreCode:
    labels = _labels(body, src)
    lines: list[int] = []
    code = CoreCode(header.tile, header.core, lines=lines)
    for st in body:
        if isinstance(st, InstrStmt):
            code.instrs.append(_instr(st, labels, src, hw))
            lines.append(st.pos.line)
    return code


def _labels(body: list[Stmt], src: _Source) -> dict[str, int]:
    """Label name -> pc of the next instruction; duplicate labels are an error."""
    labels: dict[str, int] = {}
    where: dict[str, int] = {}
    pc = 0
    for st in body:
        if isinstance(st, LabelStmt):
            if st.name in labels:
                raise src.error(f"duplicate label '{st.name}' (first defined at line {where[st.name]})", st.pos)
            labels[st.name], where[st.name] = pc, st.pos.line
        elif isinstance(st, InstrStmt):
            pc += 1
    return labels


def _instr(st: InstrStmt, labels: dict[str, int], src: _Source, hw: HardwareConfig) -> Instr:
    spec = BY_MNEMONIC.get(st.mnemonic)
    if spec is None:
        raise src.error(f"unknown mnemonic '{st.mnemonic}'{_suggest(st.mnemonic, BY_MNEMONIC)}", st.pos)
    _check_count(spec, st, src)
    args = tuple(_operand(f, o, labels, src, hw) for f, o in zip(spec.fields, st.operands))
    return Instr.of(spec.mnemonic, args, src.provenance(st.pos.line))


def _check_count(spec: InstrSpec, st: InstrStmt, src: _Source) -> None:
    want, got = len(spec.fields), len(st.operands)
    if want == got:
        return
    if want == 0:
        takes = "no operands"
    else:
        takes = f"{want} operand{'s' if want > 1 else ''} ({', '.join(f.name for f in spec.fields)})"
    pos = st.operands[want].pos if got > want else st.pos
    raise src.error(f"{spec.mnemonic} takes {takes}, got {got}", pos)


def _operand(f: Field, o: Opnd, labels: dict[str, int], src: _Source, hw: HardwareConfig) -> Operand:
    kind = f.operand
    try:
        value: Operand = kind.parse(f, o, labels, src.text(o.pos))
    except OperandError as e:
        raise src.error(str(e), o.pos) from None
    problem = kind.error(f, value) or kind.hw_error(f, value, hw)
    if problem:
        raise src.error(problem, o.pos)
    return value


def assemble_instr(text: str, labels: dict[str, int] | None = None, hw: HardwareConfig = DEFAULT) -> Instr:
    """One instruction from its text (``labels`` resolves branch targets); provenance comments are read."""
    src = _Source("<asm>", text)
    return _instr(parse(text, "instruction"), labels or {}, src, hw)
