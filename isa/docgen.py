"""Generates ``docs/isa.md`` from the instruction table: ``python -m isa.docgen`` (tests fail when it is stale)."""

from __future__ import annotations

import sys
from pathlib import Path

from . import layout as layout_module
from .assembler import assemble
from .encoding import MAGIC, VERSION
from .printer import COMMENT_COL, format_program
from .operands import KINDS
from .table import (INSTRUCTIONS, MEM_BASE_BITS, MEM_OFF_BITS, NO_BASE, OPCODE_BITS, WORD_BITS, Field,
                    InstrSpec, field_slices)

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "isa.md"

_EXAMPLE = """
.core 0 1
loop:
    mvm 0b11, ibits=16, adc=10, shift=12, obits=32, enc=0, skip=-1  ; @/fc1/Gemm
    add r2048, r1024, r1152, n=128, w=32            ; @/fc1/Gemm
    load r0, [r5+256], n=64
    store [300], r2048, n=64, count=1
    iaddi r5, r5, imm=64
    blt r5, r6, loop
    halt
"""

_KINDS = [(k.name, k.width_doc, k.example, k.meaning) for k in KINDS.values()]

_CONTAINER = f"""\
| Bytes | Content |
|---|---|
| 4 | magic `{MAGIC.decode()}` |
| 2 | format version (u16, little-endian) = {VERSION} |
| 2 | number of core sections (u16) |
| per core: 2 | tile (u16) |
| per core: 2 | core (u16) |
| per core: 4 | instruction count (u32) |
| per core: 16 x count | instructions, each a 128-bit little-endian word |
"""


def text_form(spec: InstrSpec) -> str:
    """The text template of ``spec``, e.g. ``add rD, rA, rB, n=N, w=W``."""
    return " ".join([spec.mnemonic, ", ".join(_operand_form(f) for f in spec.fields)]).rstrip()


def _operand_form(f: Field) -> str:
    return f.operand.template(f)


def _legal(f: Field) -> str:
    return f.operand.legal(f)


def _bits(f: Field, lsb: int) -> str:
    span = f"[{lsb + f.bits - 1}:{lsb}]"
    if f.kind != "mem":
        return span
    return f"{span}: base [{lsb + f.bits - 1}:{lsb + MEM_OFF_BITS}], offset [{lsb + MEM_OFF_BITS - 1}:{lsb}]"


def render_instr(spec: InstrSpec) -> str:
    """The reference section of one instruction."""
    out = [f"### `{spec.mnemonic}` (opcode `{spec.opcode:#04x}`)", "", spec.doc, "",
           f"Text form: `{text_form(spec)}`", "",
           f"Execution class: `{spec.cls}`; cost unit: `{spec.unit}`.", ""]
    if not spec.fields:
        return "\n".join(out + ["No operands.", ""])
    out += ["| Field | Kind | Bits | Legal values | Meaning |", "|---|---|---|---|---|"]
    out += [f"| `{f.name}` | {f.kind} | {_bits(f, lsb)} | {_legal(f)} | {f.doc} |" for f, lsb in field_slices(spec)]
    return "\n".join(out + [""])


def _layout_doc() -> str:
    """The `isa.layout` module docstring, reflowed as Markdown (the one description of the format)."""
    return layout_module.__doc__.split("\n", 2)[2].strip() + "\n"


def _intro() -> str:
    example = format_program(assemble(_EXAMPLE, "<example>")).rstrip("\n")
    kinds = "\n".join(f"| `{k}` | {b} | {t} | {m} |" for k, b, t, m in _KINDS)
    return f"""# xbarc ISA reference

Generated from `isa/table.py` by `python -m isa.docgen`; do not edit by hand.

## Instruction word

Every instruction is a {WORD_BITS}-bit word. The opcode occupies bits [{WORD_BITS - 1}:{WORD_BITS - OPCODE_BITS}];
the operand fields follow from bit {WORD_BITS - OPCODE_BITS - 1} downwards in the order the table lists them.
Unused low bits are zero (a decoder rejects words where they are not). Signed immediates are stored in two's
complement within their field; a memory operand stores the base register ({MEM_BASE_BITS} bits, `{NO_BASE:#x}` for
none) above the offset ({MEM_OFF_BITS} bits).

## Operand kinds

| Kind | Bits | Text | Meaning |
|---|---|---|---|
{kinds}

## Text syntax

- `;` starts a comment that runs to the end of the line.
- `.core TILE CORE` starts the code of one core; every instruction and label belongs to the latest section.
  A section may appear once per (tile, core).
- `NAME:` defines a label: the index (pc) of the next instruction of the section (or the end of the section).
  Labels are local to their section. The printer names every branch target `L<pc>`.
- An instruction is its mnemonic followed by its operands, separated by `, `, in field order. Immediates are
  written `name=value` with the field's name; registers `rN`; masks in binary `0b...`; memory operands
  `[rB+off]` or `[off]`.
- A comment starting with `@` (`; @/fc1/Gemm`) is provenance: it names the ONNX node the instruction comes from.
  The printer puts it at column {COMMENT_COL}. Binary words carry no provenance (`manifest.json` keeps it).

Example (canonical form, as the printer emits it):

```
{example}
```

## Binary container (`program.bin`)

{_CONTAINER}
## MVMU configuration (`image.npz`)

An MVMU is programmed before the program starts, not by instructions: `mvmu_T_C_M` holds its signed integer
matrix (rows x columns, weights[r, c] multiplies input register r into output register c) and, for a packed MVMU,
`layout_T_C_M` its bit-line layout. The layout is what row-group masks and per-step shifts on `mvm` would
express: it fixes which rows each step drives and by which significance each conversion is shifted, so one `mvm`
executes every step of a temporally scheduled MVMU.

{_layout_doc()}
## Instructions

| Mnemonic | Opcode | Class | Cost unit | Meaning |
|---|---|---|---|---|
""" + "\n".join(f"| `{s.mnemonic}` | `{s.opcode:#04x}` | {s.cls} | {s.unit} | {s.doc} |" for s in INSTRUCTIONS)


def render_isa_doc() -> str:
    """The full text of ``docs/isa.md`` (deterministic)."""
    return "\n\n".join([_intro()] + [render_instr(s).rstrip("\n") for s in INSTRUCTIONS]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write ``docs/isa.md`` (or the path given as the only argument)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DOC_PATH
    path.write_text(render_isa_doc())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
