"""Operand kinds: each kind of instruction field is one object that parses, prints, encodes, decodes and checks
its values. The assembler, printer, encoder, decoder, docs generator and the runtime's load-time checks all ask
the field's kind (``field.operand``) instead of switching on ``field.kind`` themselves.

Values: every kind holds an ``int`` except ``mem``, which holds a `MemRef` (base register or `NO_BASE`, offset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar, Union, cast

#: In a tile field's doc: the field may name the host port, tile number `HardwareConfig.port_tile` (`isa.inport`).
PORT_DOC = "the tile count names the host port"

if TYPE_CHECKING:
    from .hardware import HardwareConfig
    from .table import Field

NO_BASE = 0xFFFF  # the base-register value of a `[off]` memory operand
MEM_BASE_BITS = 16
MEM_OFF_BITS = 24


class MemRef(NamedTuple):
    """A tile-memory address operand: the value of register ``base`` (`NO_BASE`: none) plus ``off``."""

    base: int
    off: int

    def shifted(self, words: int) -> "MemRef":
        """The address ``words`` further on (same base register)."""
        return MemRef(self.base, self.off + words)


Operand = Union[int, MemRef, tuple[int, int]]  # a plain (base, off) tuple is accepted wherever a MemRef is


class Written(Protocol):
    """An operand as the parser saw it (`isa.assembler.Opnd`): kind of token, value and keyword name."""

    @property
    def kind(self) -> str:
        """Token kind: reg, kw, mask, label, number or mem."""

    @property
    def value(self) -> int | str | tuple[int, int] | None:
        """The value as written."""

    @property
    def name(self) -> str:
        """The keyword of a ``name=value`` operand."""


T = TypeVar("T")


class OperandError(Exception):
    """An operand that does not read as its field's kind; the assembler adds the location."""


class OperandKind(Generic[T]):
    """One kind of operand field (subclasses below); methods take the field, since widths and names vary."""

    name = ""
    width = 0  # bits of every field of this kind (0: chosen per field)
    example = ""
    meaning = ""
    py_type = "int"  # the Python type of a value, as written in the generated records (`isa.ops`)

    def parse(self, f: Field, o: Written, labels: dict[str, int], text: str) -> T:
        """The value of parsed operand ``o`` (source text ``text``); `OperandError` if it is not this kind."""
        raise NotImplementedError

    def format(self, f: Field, value: T, labels: dict[int, str] | None = None) -> str:
        """The canonical text of ``value``."""
        raise NotImplementedError

    @property
    def width_doc(self) -> str:
        """The width column of the docs' kind table."""
        return str(self.width) if self.width else "per field"

    def coerce(self, value: Any) -> T:
        """``value`` as this kind's Python type (a (base, off) pair becomes a `MemRef`)."""
        return cast(T, value)

    def template(self, f: Field) -> str:
        """The text form in the ISA reference, e.g. ``n=N``."""
        return f"{f.name}={f.name.upper()}"

    def legal(self, f: Field) -> str:
        """The legal values, in words, for the ISA reference."""
        return f"[{f.lo}, {f.hi}]"

    def encode(self, f: Field, value: T) -> int:
        """The field's bits (``value`` already checked)."""
        raise NotImplementedError

    def decode(self, f: Field, raw: int) -> T:
        """The value of the field's bits."""
        raise NotImplementedError

    def error(self, f: Field, value: T) -> str | None:
        """Why ``value`` is not legal by the table alone, or None."""
        raise NotImplementedError

    def hw_error(self, f: Field, value: T, hw: HardwareConfig) -> str | None:
        """Why ``value`` cannot work on ``hw`` (beyond the machine), or None."""
        return None

    def code_error(self, f: Field, value: T, code_len: int) -> str | None:
        """Why ``value`` cannot appear in a core of ``code_len`` instructions (a branch beyond it), or None."""
        return None

    def fault(self, f: Field, value: T, n: int, hw: HardwareConfig, code_len: int) -> str | None:
        """Why the runtime cannot execute ``value`` (vectors of ``n`` words, a core of ``code_len``
        instructions), or None: the load-time check of `runtime`."""
        return None


class IntKind(OperandKind[int]):
    """A kind whose values are plain integers, stored in the word as their low ``f.bits`` bits."""

    def encode(self, f: Field, value: int) -> int:
        return value & ((1 << f.bits) - 1)

    def decode(self, f: Field, raw: int) -> int:
        return raw

    def error(self, f: Field, value: int) -> str | None:
        return None if f.fits(value) else f"{f.name}={value} out of range [{f.lo}, {f.hi}]"


def _int(o: Written) -> int:
    if not isinstance(o.value, int):
        raise OperandError(f"expected a number, got {o.value!r}")
    return o.value


def _reg_extent(name: str, r: int, n: int, hw: HardwareConfig) -> str | None:
    if r < 0 or r + n > hw.core_regs:
        return f"register operand {name}: words [{r}, {r + n}) outside the register file [0, {hw.core_regs})"
    return None


def _reg_hw(r: int, hw: HardwareConfig) -> str | None:
    if r >= hw.core_regs:
        return f"register r{r} out of range: a core has {hw.core_regs} registers (r0..r{hw.core_regs - 1})"
    return None


class Reg(IntKind):
    """A core register index, ``r12``."""

    name, width, example = "reg", 16, "`r12`"
    meaning = "a core register index (flat register file, see `HardwareConfig`)"

    def parse(self, f: Field, o: Written, labels: dict[str, int], text: str) -> int:
        if o.kind != "reg":
            raise OperandError(f"expected a register like r12, got '{text}'")
        return _int(o)

    def format(self, f: Field, value: int, labels: dict[int, str] | None = None) -> str:
        return f"r{value}"

    def template(self, f: Field) -> str:
        return f"r{f.name.upper()}"

    def legal(self, f: Field) -> str:
        return f"r{f.lo}..r{f.hi} (below the hardware's `core_regs`)"

    def error(self, f: Field, value: int) -> str | None:
        return None if f.fits(value) else f"register r{value} out of range [{f.lo}, {f.hi}]"

    def hw_error(self, f: Field, value: int, hw: HardwareConfig) -> str | None:
        return _reg_hw(value, hw)

    def fault(self, f: Field, value: int, n: int, hw: HardwareConfig, code_len: int) -> str | None:
        return _reg_extent(f.name, value, n, hw)


class Imm(IntKind):
    """An immediate written with its field's name, ``n=128``; ``signed`` holds two's complement in the word."""

    def __init__(self, signed: bool) -> None:
        self.signed = signed
        self.name = "simm" if signed else "uimm"
        self.example = "`shift=-3`" if signed else "`n=128`"
        self.meaning = ("signed immediate (two's complement in the word), written with its name" if signed
                        else "unsigned immediate, written with the field's name")

    def parse(self, f: Field, o: Written, labels: dict[str, int], text: str) -> int:
        if o.kind == "kw" and o.name == f.name:
            return _int(o)
        got = f"{o.name}=..." if o.kind == "kw" else f"'{text}'"
        raise OperandError(f"expected {f.name}=..., got {got}")

    def format(self, f: Field, value: int, labels: dict[int, str] | None = None) -> str:
        return f"{f.name}={value}"

    def decode(self, f: Field, raw: int) -> int:
        return raw - (1 << f.bits) if self.signed and raw >> (f.bits - 1) else raw

    def hw_error(self, f: Field, value: int, hw: HardwareConfig) -> str | None:
        port = PORT_DOC in f.doc and value == hw.port_tile  # a send or recv naming the host port (`isa.inport`)
        if f.name == "tile" and value >= hw.tiles and not port:
            return f"tile={value} out of range: the chip has {hw.tiles} tiles"
        return None


class Mask(IntKind):
    """An MVMU bit mask, ``0b0101``; must select at least one MVMU."""

    name, width, example = "mask", 16, "`0b101`"
    meaning = "MVMU bit mask (bit k selects MVMU k); at least one bit set"

    def parse(self, f: Field, o: Written, labels: dict[str, int], text: str) -> int:
        if o.kind != "mask":
            raise OperandError(f"expected an MVMU mask like 0b101, got '{text}'")
        if o.value is None:
            raise OperandError(f"bad mask '{text}': expected binary digits after 0b")
        return _int(o)

    def format(self, f: Field, value: int, labels: dict[int, str] | None = None) -> str:
        return f"{value:#b}"

    def template(self, f: Field) -> str:
        return "0bMASK"

    def legal(self, f: Field) -> str:
        return "non-zero, bits below `mvmus_per_core`"

    def error(self, f: Field, value: int) -> str | None:
        if f.fits(value):
            return None
        return "mask 0b0 selects no MVMU" if value == 0 else f"mask {value:#b} does not fit {f.bits} bits"

    def hw_error(self, f: Field, value: int, hw: HardwareConfig) -> str | None:
        if value >> hw.mvmus_per_core:
            return f"mask {value:#b} selects an MVMU beyond the {hw.mvmus_per_core} of a core"
        return None


class Label(IntKind):
    """A branch target in the same core, written as a label name (``L7``) defined by ``L7:``."""

    name, width, example = "label", 24, "`L7`"
    meaning = "branch target: an instruction index in the same core"

    def parse(self, f: Field, o: Written, labels: dict[str, int], text: str) -> int:
        if o.kind != "label":
            raise OperandError(f"expected a label, got '{text}'")
        if o.value not in labels:
            raise OperandError(f"undefined label '{o.value}' (in this .core section)")
        return labels[str(o.value)]

    def format(self, f: Field, value: int, labels: dict[int, str] | None = None) -> str:
        return (labels or {}).get(value, f"L{value}")

    def template(self, f: Field) -> str:
        return f.name.upper()

    def code_error(self, f: Field, value: int, code_len: int) -> str | None:
        if value > code_len:
            return f"branch target {value} beyond the end of the core's code ({code_len} instructions)"
        return None

    def fault(self, f: Field, value: int, n: int, hw: HardwareConfig, code_len: int) -> str | None:
        if not 0 <= value <= code_len:
            return f"branch target {value} outside the code [0, {code_len})"
        return None


class Mem(OperandKind[MemRef]):
    """A tile-memory address, ``[rB+off]`` (register B's value plus an unsigned offset) or ``[off]``."""

    name, width, example = "mem", MEM_BASE_BITS + MEM_OFF_BITS, "`[r5+16]`, `[16]`"
    meaning = f"tile-memory address: base register (or none: {NO_BASE:#x}) plus unsigned offset"
    py_type = "MemRef"

    def parse(self, f: Field, o: Written, labels: dict[str, int], text: str) -> MemRef:
        if o.kind != "mem":
            raise OperandError(f"expected a memory address like [r5+16] or [16], got '{text}'")
        if not isinstance(o.value, tuple):
            raise OperandError(f"expected a memory address, got '{text}'")
        return MemRef(*o.value)

    def format(self, f: Field, value: MemRef, labels: dict[int, str] | None = None) -> str:
        base, off = value
        return f"[{off}]" if base == NO_BASE else f"[r{base}+{off}]"

    def template(self, f: Field) -> str:
        return f"[rB+{f.name.upper()}]"

    def legal(self, f: Field) -> str:
        return f"base: a register or none; offset [{f.lo}, {f.hi}] (below `tile_mem_words`)"

    @property
    def width_doc(self) -> str:
        return f"{MEM_BASE_BITS}+{MEM_OFF_BITS}"

    def coerce(self, value: Any) -> MemRef:
        base, off = value
        return MemRef(int(base), int(off))

    def encode(self, f: Field, value: MemRef) -> int:
        base, off = value
        return (base << MEM_OFF_BITS) | off

    def decode(self, f: Field, raw: int) -> MemRef:
        return MemRef(raw >> MEM_OFF_BITS, raw & ((1 << MEM_OFF_BITS) - 1))

    def error(self, f: Field, value: MemRef) -> str | None:
        base, off = value
        if base != NO_BASE and not 0 <= base < NO_BASE:
            return f"base register r{base} out of range [0, {NO_BASE - 1}]"
        return None if f.fits(off) else f"offset {off} out of range [{f.lo}, {f.hi}]"

    def hw_error(self, f: Field, value: MemRef, hw: HardwareConfig) -> str | None:
        base, off = value
        if base != NO_BASE and _reg_hw(base, hw):
            return _reg_hw(base, hw)
        if off >= hw.tile_mem_words:
            return f"offset {off} beyond the tile memory ({hw.tile_mem_words} words)"
        return None

    def fault(self, f: Field, value: MemRef, n: int, hw: HardwareConfig, code_len: int) -> str | None:
        base, _ = value
        return None if base == NO_BASE else _reg_extent(f"{f.name} base", base, 1, hw)


KINDS: dict[str, OperandKind[Any]] = {k.name: k for k in (Reg(), Imm(False), Imm(True), Mask(), Label(), Mem())}
