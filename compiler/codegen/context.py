"""What every op-family emitter shares: the graph and its formats, the mapping, the storage and communication plan
computed once before emission, the program being built and the instruction streams per core."""

from __future__ import annotations

from dataclasses import dataclass, field

from isa import Instr, MemRef, Program
from isa.hardware import HardwareConfig

from ..ir import Graph
from ..mapping import Mapping
from ..quant import LayerPrecision, QuantizedLayer
from ..quant.formats import Format
from .plan import CommPlan, Core
from .storage import Storage

Mem = MemRef


@dataclass
class CoreStreams:
    """The instruction stream of one core in four parts, concatenated in this order at the end: ``prologue``
    (graph-input transfers), ``head`` (receives of remote tensors), ``code`` (its op), ``tail`` (receives of
    graph outputs). Branch targets inside a part are relative to the part's start."""

    prologue: list[Instr] = field(default_factory=list)
    head: list[Instr] = field(default_factory=list)
    code: list[Instr] = field(default_factory=list)
    tail: list[Instr] = field(default_factory=list)

    @property
    def parts(self) -> tuple[list[Instr], ...]:
        """The parts in stream order."""
        return self.prologue, self.head, self.code, self.tail


@dataclass
class Context:
    """Inputs and shared state of code generation (see module docstring)."""

    g: Graph
    prec: dict[str, LayerPrecision]
    fmt: dict[str, Format]
    mapping: Mapping
    hw: HardwareConfig
    st: Storage
    plan: CommPlan
    program: Program
    streams: dict[Core, CoreStreams] = field(default_factory=dict)
    quantized: dict[str, QuantizedLayer] = field(default_factory=dict)  # crossbar layers' integer weights

    def stream(self, core: Core) -> CoreStreams:
        """The streams of ``core``, created empty on first use."""
        if core not in self.streams:
            self.streams[core] = CoreStreams()
        return self.streams[core]

    def code(self, core: Core) -> list[Instr]:
        """The main part of ``core``'s stream (its op's code)."""
        return self.stream(core).code
