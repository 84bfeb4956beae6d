"""Binary encoding of instructions (128-bit words) and programs (the ``program.bin`` container).

Word layout: opcode in bits [127:120], then the operand fields from bit 119 downwards in table order
(`table.field_slices`); unused low bits are zero. ``simm`` fields hold two's complement within their width; a
``mem`` field holds the base register (16 bits, NO_BASE for none) above the offset (24 bits).

Container: magic ``XBRC``, u16 version, u16 core count, then per core u16 tile, u16 core, u32 instruction count
and the instructions as 16-byte little-endian words. Provenance (`Instr.node`) is not encoded.
"""

from __future__ import annotations

import struct
from typing import Any

from .errors import AsmError
from .hardware import DEFAULT, HardwareConfig
from .program import CoreCode, Instr, Operand, Program
from .table import BY_OPCODE, OPCODE_BITS, WORD_BITS, Field, field_slices

MAGIC = b"XBRC"
VERSION = 1
WORD_BYTES = WORD_BITS // 8
_HEADER = struct.Struct("<4sHH")
_CORE_HEADER = struct.Struct("<HHI")


# ---- operand legality (shared with the assembler) ------------------------------------------------------------
def operand_error(f: Field, value: Operand) -> str | None:
    """Why ``value`` is not a legal value of field ``f`` by the table alone, or None if it is."""
    return f.operand.error(f, value)


def hw_error(f: Field, value: Operand, hw: HardwareConfig) -> str | None:
    """Why ``value`` cannot work on ``hw`` (register, MVMU, tile or address beyond the machine), or None."""
    return f.operand.hw_error(f, value, hw)


def core_header_error(tile: int, core: int, hw: HardwareConfig) -> str | None:
    """Why (tile, core) does not exist on ``hw``, or None."""
    if not 0 <= tile < hw.tiles:
        return f"tile {tile} out of range: the chip has {hw.tiles} tiles"
    if not 0 <= core < hw.cores_per_tile:
        return f"core {core} out of range: a tile has {hw.cores_per_tile} cores"
    return None


# ---- one instruction -------------------------------------------------------------------------------------------
def encode_instr(instr: Instr) -> int:
    """The 128-bit word of ``instr``; AsmError naming instruction and field if an operand does not fit."""
    spec = instr.spec
    word = spec.opcode << (WORD_BITS - OPCODE_BITS)
    for (f, lsb), value in zip(field_slices(spec), instr.args):
        problem = f.operand.error(f, value)
        if problem:
            raise AsmError(f"cannot encode {instr.op}: field {f.name}: {problem}")
        word |= f.operand.encode(f, value) << lsb
    return word


def decode_instr(word: int) -> Instr:
    """The instruction of a 128-bit word; AsmError on unknown opcodes, illegal fields or non-zero unused bits."""
    if not 0 <= word < (1 << WORD_BITS):
        raise AsmError(f"word {word:#x} does not fit {WORD_BITS} bits")
    opcode = word >> (WORD_BITS - OPCODE_BITS)
    spec = BY_OPCODE.get(opcode)
    if spec is None:
        raise AsmError(f"unknown opcode {opcode:#04x}")
    unused = WORD_BITS - OPCODE_BITS - spec.operand_bits
    if word & ((1 << unused) - 1):
        raise AsmError(f"{spec.mnemonic}: unused bits [{unused - 1}:0] are not zero")
    args = tuple(f.operand.decode(f, (word >> lsb) & ((1 << f.bits) - 1)) for f, lsb in field_slices(spec))
    for f, value in zip(spec.fields, args):
        problem = f.operand.error(f, value)
        if problem:
            raise AsmError(f"{spec.mnemonic}: field {f.name}: {problem}")
    return Instr.of(spec.mnemonic, args)


# ---- programs --------------------------------------------------------------------------------------------------
def encode_program(program: Program) -> bytes:
    """The ``program.bin`` bytes of ``program``'s instruction streams."""
    parts = [_HEADER.pack(MAGIC, VERSION, len(program.cores))]
    for c in program.cores:
        parts.append(_CORE_HEADER.pack(c.tile, c.core, len(c.instrs)))
        parts.extend(encode_instr(i).to_bytes(WORD_BYTES, "little") for i in c.instrs)
    return b"".join(parts)


def decode_program(data: bytes, hw: HardwareConfig = DEFAULT, filename: str = "<binary>") -> Program:
    """The `Program` (code only) of ``program.bin`` bytes; AsmError naming file, core and pc on malformed input."""
    reader = _Reader(data, filename)
    magic, version, ncores = reader.unpack(_HEADER, "header")
    if magic != MAGIC:
        raise AsmError(f"{filename}: not an xbarc binary (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise AsmError(f"{filename}: unsupported binary version {version} (this xbarc reads version {VERSION})")
    program = Program(hw=hw, filename=filename)
    for k in range(ncores):
        program.cores.append(_decode_core(reader, k, hw))
    if reader.pos != len(data):
        raise AsmError(f"{filename}: {len(data) - reader.pos} trailing bytes after the last core")
    return program


def _decode_core(reader: "_Reader", k: int, hw: HardwareConfig) -> CoreCode:
    tile, core, count = reader.unpack(_CORE_HEADER, f"header of core section {k}")
    where = f"{reader.filename}: core {tile}.{core}"
    problem = core_header_error(tile, core, hw)
    if problem:
        raise AsmError(f"{where}: {problem}")
    code = CoreCode(tile, core)
    for pc in range(count):
        word = int.from_bytes(reader.take(WORD_BYTES, f"instruction {pc} of core {tile}.{core}"), "little")
        try:
            code.instrs.append(_checked(decode_instr(word), count, hw))
        except AsmError as e:
            raise AsmError(f"{where} pc {pc}: {e.message}") from None
    return code


def _checked(instr: Instr, count: int, hw: HardwareConfig) -> Instr:
    """``instr`` if it can run on ``hw`` and its branch targets lie in [0, count]; else AsmError."""
    for f, value in zip(instr.spec.fields, instr.args):
        problem = f.operand.hw_error(f, value, hw) or f.operand.code_error(f, value, count)
        if problem:
            raise AsmError(f"{instr.op}: field {f.name}: {problem}")
    return instr


class _Reader:
    """Sequential reads from a byte string with 'truncated' errors that say what was being read."""

    def __init__(self, data: bytes, filename: str) -> None:
        self.data, self.filename, self.pos = data, filename, 0

    def take(self, n: int, what: str) -> bytes:
        """The next ``n`` bytes."""
        if self.pos + n > len(self.data):
            raise AsmError(f"{self.filename}: truncated at byte {len(self.data)} while reading the {what}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, st: struct.Struct, what: str) -> tuple[Any, ...]:
        """The next struct ``st``."""
        return st.unpack(self.take(st.size, what))
