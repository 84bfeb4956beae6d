"""The instruction table: the single source of truth for xbarc's PUMA-like ISA.

Assembler, printer, encoder, decoder, the runtime's dispatch, its cost accounting and ``docs/isa.md`` all read
this table. An instruction is a 128-bit word: the opcode in bits [127:120], then the operand fields packed from
bit 119 downwards in the order listed. A load-time check rejects duplicate opcodes and field lists that do not fit.

Operand kinds (text form in brackets; each is one class in `isa.operands`):

- ``reg``   a core register index (``r12``), unsigned.
- ``uimm``  an unsigned immediate, written ``name=value`` (``n=128``).
- ``simm``  a signed (two's complement) immediate, written ``name=value`` (``shift=-3``).
- ``mask``  an MVMU bit mask, written ``0b...`` (``0b0101`` selects MVMUs 0 and 2).
- ``label`` an instruction address inside the same core, written as a label name (``L7``) defined by ``L7:``.
- ``mem``   a tile-memory address, ``[rB+off]`` (register B's value plus an unsigned offset) or ``[off]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .operands import KINDS, MEM_BASE_BITS, MEM_OFF_BITS, NO_BASE, PORT_DOC, OperandKind

WORD_BITS = 128
OPCODE_BITS = 8

KIND_BITS = {k: v.width for k, v in KINDS.items() if v.width}
__all__ = ["WORD_BITS", "OPCODE_BITS", "NO_BASE", "KIND_BITS", "MEM_BASE_BITS", "MEM_OFF_BITS", "Field", "InstrSpec",
           "INSTRUCTIONS", "BY_MNEMONIC", "BY_OPCODE", "check_table", "field_slices"]


@dataclass(frozen=True)
class Field:
    """One operand field: its name, kind, width in bits and the inclusive range of legal values."""

    name: str
    kind: str
    bits: int
    lo: int
    hi: int
    doc: str = ""

    def fits(self, value: int) -> bool:
        """Whether ``value`` is a legal value of this field (for ``mem`` fields: the offset part)."""
        return self.lo <= value <= self.hi

    @property
    def operand(self) -> OperandKind[Any]:
        """The kind object that parses, prints, encodes, decodes and checks this field's values."""
        return KINDS[self.kind]


def reg(name: str, doc: str = "") -> Field:
    """A register operand."""
    return Field(name, "reg", KIND_BITS["reg"], 0, (1 << KIND_BITS["reg"]) - 1, doc)


def uimm(name: str, bits: int, lo: int = 0, hi: int | None = None, doc: str = "") -> Field:
    """An unsigned immediate of ``bits`` bits, legal in [lo, hi]."""
    return Field(name, "uimm", bits, lo, (1 << bits) - 1 if hi is None else hi, doc)


def simm(name: str, bits: int, doc: str = "") -> Field:
    """A signed immediate of ``bits`` bits."""
    return Field(name, "simm", bits, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, doc)


def mask(name: str, doc: str = "") -> Field:
    """An MVMU bit mask; must select at least one MVMU."""
    return Field(name, "mask", KIND_BITS["mask"], 1, (1 << KIND_BITS["mask"]) - 1, doc)


def label(name: str, doc: str = "") -> Field:
    """A branch target (instruction index in the same core)."""
    return Field(name, "label", KIND_BITS["label"], 0, (1 << KIND_BITS["label"]) - 1, doc)


def mem(name: str, doc: str = "") -> Field:
    """A tile-memory address operand: base register (or none) plus unsigned offset."""
    return Field(name, "mem", MEM_BASE_BITS + MEM_OFF_BITS, 0, (1 << MEM_OFF_BITS) - 1, doc)


N = uimm("n", 16, 1, doc="vector length in words")
W = uimm("w", 7, 1, 64, doc="result width in bits: the result saturates to [-2^(w-1), 2^(w-1)-1]")
F = uimm("f", 6, 0, 62, doc="fraction bits of the operands' fixed-point format")


@dataclass(frozen=True)
class InstrSpec:
    """One instruction: mnemonic, opcode, operand fields, execution class, cost unit and a one-line meaning."""

    mnemonic: str
    opcode: int
    fields: tuple[Field, ...]
    cls: str
    unit: str
    doc: str

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.mnemonic} has no field {name!r}")

    @property
    def operand_bits(self) -> int:
        """Bits used by the operand fields."""
        return sum(f.bits for f in self.fields)


def _i(mn: str, op: int, fields: list[Field], cls: str, unit: str, doc: str) -> InstrSpec:
    return InstrSpec(mn, op, tuple(fields), cls, unit, doc)


_D, _A, _B = reg("d", "destination register"), reg("a", "first source register"), reg("b", "second source register")
_IMM = simm("imm", 32, "immediate operand")

INSTRUCTIONS: tuple[InstrSpec, ...] = (
    # ---- crossbar ------------------------------------------------------------------------------------------
    _i("mvm", 0x01, [mask("mask", "MVMUs to fire (bit k = MVMU k)"),
                     uimm("ibits", 6, 1, 32, "input digits streamed through the 1-bit DAC"),
                     uimm("adc", 5, 1, 16, "ADC resolution in bits (signed range, clipping)"),
                     simm("shift", 8, "round-half-up right shift of the exact shift-and-add sum (negative: left)"),
                     uimm("obits", 7, 1, 64, "output register width: the shifted sum saturates to it"),
                     uimm("enc", 2, 0, 1, "input digit encoding: 0 two's complement, 1 canonic signed digits "
                                          "(the DAC drives -V/0/+V)"),
                     simm("skip", 8, "dynamic quantization: conversions of significance (input digit + "
                                     "cell_bits x slice) at or under skip are not made (-1: none)")],
       "mvm", "mvm", "each selected MVMU multiplies its input registers by its programmed matrix into its output "
                     "registers (docs/semantics.md, rule MVM)"),
    _i("prog", 0x02, [mask("mask", "MVMUs to program (bit k = MVMU k)")],
       "prog", "prog", "writes each selected MVMU's image from the off-chip weight buffer into its crossbars' cells "
                       "(the image of this core's MVMU in the program's image.npz); before its first prog in code "
                       "order a selected MVMU holds no weights (docs/cost-model.md, Reprogramming rounds)"),
    # ---- vector ALU, register-register ------------------------------------------------------------------------
    _i("add", 0x10, [_D, _A, _B, N, W], "alu", "alu_add", "d[i] = sat_w(a[i] + b[i])"),
    _i("sub", 0x11, [_D, _A, _B, N, W], "alu", "alu_add", "d[i] = sat_w(a[i] - b[i])"),
    _i("mul", 0x12, [_D, _A, _B, N, F, W], "alu", "alu_mul", "d[i] = sat_w(rshift(a[i] * b[i], f))"),
    _i("min", 0x13, [_D, _A, _B, N], "alu", "alu_add", "d[i] = min(a[i], b[i])"),
    _i("max", 0x14, [_D, _A, _B, N], "alu", "alu_add", "d[i] = max(a[i], b[i])"),
    # ---- vector ALU, register-immediate -----------------------------------------------------------------------
    _i("addi", 0x18, [_D, _A, _IMM, N, W], "alu", "alu_add", "d[i] = sat_w(a[i] + imm)"),
    _i("muli", 0x19, [_D, _A, _IMM, N, F, W], "alu", "alu_mul", "d[i] = sat_w(rshift(a[i] * imm, f))"),
    _i("mini", 0x1A, [_D, _A, _IMM, N], "alu", "alu_add", "d[i] = min(a[i], imm)"),
    _i("maxi", 0x1B, [_D, _A, _IMM, N], "alu", "alu_add", "d[i] = max(a[i], imm)"),
    _i("shli", 0x1C, [_D, _A, uimm("sh", 6, 0, 63, "shift amount"), N, W], "alu", "alu_add",
       "d[i] = sat_w(a[i] << sh)"),
    _i("shri", 0x1D, [_D, _A, uimm("sh", 6, 0, 63, "shift amount"), N], "alu", "alu_add",
       "d[i] = rshift(a[i], sh) (arithmetic, round half up)"),
    # ---- vector ALU, unary ------------------------------------------------------------------------------------
    _i("relu", 0x20, [_D, _A, N], "alu", "alu_add", "d[i] = max(a[i], 0)"),
    _i("sig", 0x21, [_D, _A, N, F], "alu", "alu_act", "d[i] = round(sigmoid(a[i] / 2^f) * 2^f)"),
    _i("tanh", 0x22, [_D, _A, N, F], "alu", "alu_act", "d[i] = round(tanh(a[i] / 2^f) * 2^f)"),
    _i("rqnt", 0x23, [_D, _A, N, simm("shift", 8, "right shift (negative: left)"), W], "alu", "alu_add",
       "d[i] = sat_w(rshift(a[i], shift)): requantize with round half up and saturation"),
    # ---- moves and scalar integer ops (address arithmetic) ----------------------------------------------------------
    _i("set", 0x30, [_D, _IMM], "move", "reg", "d = imm (every batch lane)"),
    _i("copy", 0x31, [_D, _A, N], "move", "reg", "d[i] = a[i]"),
    _i("iadd", 0x38, [_D, _A, _B], "scalar", "scalar", "d = a + b (64-bit integer, no saturation)"),
    _i("iaddi", 0x39, [_D, _A, _IMM], "scalar", "scalar", "d = a + imm (64-bit integer, no saturation)"),
    _i("isub", 0x3A, [_D, _A, _B], "scalar", "scalar", "d = a - b (64-bit integer, no saturation)"),
    _i("imul", 0x3B, [_D, _A, _B], "scalar", "scalar", "d = a * b (64-bit integer, no saturation)"),
    # ---- tile memory ------------------------------------------------------------------------------------------
    _i("load", 0x40, [_D, mem("src", "tile-memory address"), N], "mem", "mem_load",
       "d[i] = M[src + i]; waits until every word is valid; each word's reader count drops by one (0: invalid)"),
    _i("store", 0x41, [mem("dst", "tile-memory address"), _A, N,
                       uimm("count", 8, doc="reader count; 0 keeps the words valid for any number of reads")],
       "mem", "mem_store", "M[dst + i] = a[i]; waits until every word is invalid; sets valid and the reader count"),
    _i("peek", 0x44, [_D, mem("src", "tile-memory address"), N], "mem", "mem_load",
       "d[i] = M[src + i]; waits until every word is valid; reader counts unchanged (a line-buffer read: the "
       "reader frees the words when it is done with them)"),
    _i("free", 0x45, [mem("addr", "tile-memory address"), N], "mem", "mem_free",
       "waits until every word is valid; each word's positive reader count drops by one (0: invalid), without "
       "reading it (a line-buffer reader releasing a row)"),
    # ---- network ----------------------------------------------------------------------------------------------
    _i("send", 0x48, [mem("src", "tile-memory address"), N, uimm("tile", 12, doc=f"destination tile ({PORT_DOC})"),
                      uimm("ch", 16, doc="channel: one stream of messages between two tiles")],
       "net", "net_send", "reads n valid words of this tile's memory (as load) and sends them to (tile, ch); "
                          "tile = the chip's tile count names the host port (docs/cost-model.md)"),
    _i("recv", 0x49, [mem("dst", "tile-memory address"), N, uimm("tile", 12, doc=f"source tile ({PORT_DOC})"),
                      uimm("ch", 16, doc="channel: one stream of messages between two tiles"),
                      uimm("count", 8, doc="reader count; 0 keeps the words valid for any number of reads")],
       "net", "net_recv", "waits for a message from (tile, ch) and writes it to this tile's memory (as store); "
                          "tile = the chip's tile count names the host port (docs/cost-model.md)"),
    # ---- control ----------------------------------------------------------------------------------------------
    _i("jmp", 0x50, [label("target")], "control", "control", "pc = target"),
    _i("beq", 0x51, [_A, _B, label("target")], "control", "control", "if a == b: pc = target"),
    _i("bne", 0x52, [_A, _B, label("target")], "control", "control", "if a != b: pc = target"),
    _i("blt", 0x53, [_A, _B, label("target")], "control", "control", "if a < b: pc = target"),
    _i("halt", 0x5F, [], "control", "control", "stop this core"),
)

BY_MNEMONIC: dict[str, InstrSpec] = {s.mnemonic: s for s in INSTRUCTIONS}
BY_OPCODE: dict[int, InstrSpec] = {s.opcode: s for s in INSTRUCTIONS}


def check_table(table: tuple[InstrSpec, ...] = INSTRUCTIONS) -> None:
    """Reject duplicate mnemonics or opcodes, opcodes out of range and operand lists that overflow the word."""
    seen_mn: set[str] = set()
    seen_op: set[int] = set()
    for s in table:
        if s.mnemonic in seen_mn:
            raise AssertionError(f"duplicate mnemonic {s.mnemonic}")
        if s.opcode in seen_op or not 0 < s.opcode < (1 << OPCODE_BITS):
            raise AssertionError(f"{s.mnemonic}: opcode {s.opcode:#x} duplicate or out of range")
        if s.operand_bits > WORD_BITS - OPCODE_BITS:
            raise AssertionError(f"{s.mnemonic}: {s.operand_bits} operand bits do not fit")
        names = [f.name for f in s.fields]
        if len(set(names)) != len(names):
            raise AssertionError(f"{s.mnemonic}: duplicate field names {names}")
        seen_mn.add(s.mnemonic)
        seen_op.add(s.opcode)


def field_slices(spec: InstrSpec) -> Iterator[tuple[Field, int]]:
    """Each field with the bit position of its least significant bit."""
    top = WORD_BITS - OPCODE_BITS
    for f in spec.fields:
        top -= f.bits
        yield f, top


check_table()
