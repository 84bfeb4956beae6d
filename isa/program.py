"""The `Program` container: per-core instruction streams, crossbar images, tile-memory data and I/O manifest.

A `Program` is what the compiler produces and the runtime executes. Instruction streams travel as assembly text
(``program.s``) or binary (``program.bin``); the crossbar contents and initial tile-memory data travel in
``image.npz``; the I/O manifest, hardware description and debug info in ``manifest.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from .errors import AsmError
from .hardware import HardwareConfig
from .operands import MemRef, Operand
from .table import BY_MNEMONIC, InstrSpec

__all__ = ["Instr", "RECORDS", "record", "MemRef", "Operand", "CoreCode", "MvmuImage", "MemInit", "TensorLoc",
           "Program"]

_I = TypeVar("_I", bound="Instr")
RECORDS: dict[str, type["Instr"]] = {}  # mnemonic -> its record class (`isa.ops`, or `isa.define_instruction`)


@dataclass(frozen=True, kw_only=True)
class Instr:
    """One instruction: the base of the typed record per mnemonic that `isa.ops` generates from the table.

    A record has one attribute per table field (``ops.Add(d=1, a=2, b=3, n=8, w=16).b == 3``), constructed by
    keyword only; ``node`` is provenance (not encoded in binary). Code that is generic over the table (encoder,
    decoder, assembler, printer) uses ``args`` (the operands in table order) and `Instr.of`.
    """

    node: str | None = None
    op: ClassVar[str] = ""

    @property
    def spec(self) -> InstrSpec:
        """The table entry of this instruction."""
        return BY_MNEMONIC[self.op]

    @property
    def args(self) -> tuple[Operand, ...]:
        """The operands in table order."""
        return tuple(getattr(self, f.name) for f in self.spec.fields)

    def arg(self, name: str) -> Operand:
        """The operand called ``name``."""
        if name not in {f.name for f in self.spec.fields}:
            raise KeyError(f"{self.op} has no operand {name!r}")
        value: Operand = getattr(self, name)
        return value

    def same_code(self, other: "Instr") -> bool:
        """Equal ignoring provenance."""
        return self.op == other.op and self.args == other.args

    def with_node(self: _I, node: str | None) -> _I:
        """This instruction with provenance ``node``."""
        return replace(self, node=node)

    @staticmethod
    def of(op: str, args: tuple[Any, ...], node: str | None = None) -> "Instr":
        """The record of mnemonic ``op`` with operands ``args`` in table order; AsmError on a count mismatch."""
        cls = RECORDS.get(op)
        if cls is None:
            raise AsmError(f"unknown instruction {op!r}")
        table = BY_MNEMONIC[op].fields
        if len(args) != len(table):
            raise AsmError(f"{op}: {len(args)} operands, the table lists {len(table)}")
        return cls(node=node, **{f.name: f.operand.coerce(v) for f, v in zip(table, args)})


def record(cls: type[_I]) -> type[_I]:
    """Register a generated record class as the record of its mnemonic (its fields must be the table's)."""
    spec = BY_MNEMONIC[cls.op]
    names = [f.name for f in fields(cls) if f.name != "node"]
    if names != [f.name for f in spec.fields]:
        raise AssertionError(f"record {cls.__name__} fields {names} != table fields of {spec.mnemonic}; "
                             f"regenerate isa/ops.py (python -m isa.recordgen)")
    RECORDS[cls.op] = cls
    return cls


@dataclass
class CoreCode:
    """The instruction stream of one core; ``lines[pc]`` is the assembly line of instruction ``pc`` when known."""

    tile: int
    core: int
    instrs: list[Instr] = field(default_factory=list)
    lines: list[int] | None = None


@dataclass
class MvmuImage:
    """The signed integer matrix programmed into one MVMU (rows x cols, at most the crossbar size).

    ``weights[r, c]`` multiplies input register r into output register c. Magnitudes are sliced into
    ``cell_bits``-bit cells, a (+) and a (-) bit line per (slice, column) (docs/semantics.md, rule WEIGHTS),
    plainly or with ``encoding`` "sce" (rule SCE). Without a ``layout`` (naive mapping) every (slice, sign) has
    a physical crossbar of its own and every (slice, column) is converted. With a ``layout`` (spatial and
    temporal mapping; `isa.layout`), each bit line has a place (array, row-group step, physical column) or none
    when it is all zero: unplaced pairs are neither read nor converted, columns are permuted over the physical
    bit lines, and lines of different significance may share a bit line in different steps. The layout changes
    cost, never results.
    """

    tile: int
    core: int
    mvmu: int
    weights: np.ndarray
    weight_bits: int
    node: str = ""
    encoding: str = "twos"
    layout: np.ndarray | None = None


@dataclass
class MemInit:
    """Words written into a tile's memory before the program starts (valid, with ``count`` readers; 0: any)."""

    tile: int
    addr: int
    values: np.ndarray
    count: int = 0


@dataclass
class TensorLoc:
    """Where one graph input or output lives in tile memory, and its fixed-point format.

    ``length`` words from ``addr`` of ``tile`` hold one batch element: a (C, H, W) tensor is stored channel-minor
    (HWC order) with ``pads`` (top, left, bottom, right) border pixels of value ``fill`` around it; other shapes
    are stored flat. Values are Q(bits, frac) integers. Inputs are written with reader count ``count`` (0: any).

    An input with ``port`` feeds is not written into memory: the host streams it through the input port
    (`isa.inport`), row by row, to every (tile, channel, row offset, words) feed; ``tile`` and ``addr`` are then
    its first receiving tile and buffer there (the receivers' code says where each row goes). An output with
    ``port`` feeds ``(tile, channel, first channel, channels)`` is sent to the host pixel by pixel as it is
    produced (`isa.inport.port_output`), not read from memory.
    """

    name: str
    tile: int
    addr: int
    length: int
    bits: int
    frac: int
    shape: tuple[int, ...]
    count: int = 0
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    fill: int = 0
    port: tuple[tuple[int, int, int, int], ...] = ()

    def pack(self, x: np.ndarray) -> np.ndarray:
        """A batch in ONNX layout (B, *shape) -> the stored words (B, length), border included."""
        x = np.asarray(x).reshape((len(x),) + tuple(self.shape))
        if len(self.shape) != 3:
            return x.reshape(len(x), -1)
        pt, pl, pb, pr = self.pads
        hwc = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=self.fill)
        return hwc.reshape(len(x), -1)

    def unpack(self, words: np.ndarray) -> np.ndarray:
        """Stored words (B, length) -> the batch in ONNX layout (B, *shape)."""
        words = np.asarray(words)
        if len(self.shape) != 3:
            return words.reshape((len(words),) + tuple(self.shape))
        c, h, w = self.shape
        pt, pl, pb, pr = self.pads
        hwc = words.reshape(len(words), h + pt + pb, w + pl + pr, c)[:, pt:pt + h, pl:pl + w]
        return hwc.transpose(0, 3, 1, 2)


@dataclass
class Program:
    """Everything the runtime needs to execute a compiled model."""

    hw: HardwareConfig
    cores: list[CoreCode] = field(default_factory=list)
    mvmus: list[MvmuImage] = field(default_factory=list)
    data: list[MemInit] = field(default_factory=list)
    inputs: list[TensorLoc] = field(default_factory=list)
    outputs: list[TensorLoc] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    source: list[str] | None = None  # assembly text lines, when the program came from (or was printed to) text
    filename: str = "<program>"

    def core(self, tile: int, core: int) -> CoreCode:
        """The code of (tile, core), created empty if absent."""
        for c in self.cores:
            if c.tile == tile and c.core == core:
                return c
        c = CoreCode(tile, core)
        self.cores.append(c)
        return c

    @property
    def static_instructions(self) -> int:
        """Instructions over all cores."""
        return sum(len(c.instrs) for c in self.cores)
