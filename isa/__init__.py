"""xbarc's ISA: the contract between compiler and runtime (instruction table, encodings, hardware, numerics)."""

from .errors import AsmError, ConfigError, DeadlockError, Location, ModelError, RuntimeFault, XbarcError
from .hardware import DEFAULT, PRESETS, PUMA, CostTable, HardwareConfig, load_hardware
from .operands import KINDS, MemRef, Operand, OperandKind
from .program import RECORDS, CoreCode, Instr, MemInit, MvmuImage, Program, TensorLoc
from . import ops
from .records import define_instruction, remove_instruction
from .assembler import assemble, assemble_instr
from .encoding import decode_instr, decode_program, encode_instr, encode_program
from .files import load_program, save_program
from .printer import attach_source, format_instr, format_program
from .table import BY_MNEMONIC, BY_OPCODE, INSTRUCTIONS, NO_BASE, Field, InstrSpec

__all__ = [
    "AsmError", "ConfigError", "DeadlockError", "Location", "ModelError", "RuntimeFault", "XbarcError",
    "DEFAULT", "PRESETS", "PUMA", "CostTable", "HardwareConfig", "load_hardware",
    "CoreCode", "Instr", "MemInit", "MvmuImage", "Program", "TensorLoc", "RECORDS", "ops",
    "KINDS", "MemRef", "Operand", "OperandKind", "define_instruction", "remove_instruction",
    "BY_MNEMONIC", "BY_OPCODE", "INSTRUCTIONS", "NO_BASE", "Field", "InstrSpec",
    "assemble", "assemble_instr", "format_instr", "format_program", "attach_source",
    "encode_instr", "decode_instr", "encode_program", "decode_program", "save_program", "load_program",
    "render_isa_doc",
]


def __getattr__(name: str) -> object:
    """Lazy `render_isa_doc` (importing `isa.docgen` eagerly would upset ``python -m isa.docgen``)."""
    if name == "render_isa_doc":
        from .docgen import render_isa_doc
        return render_isa_doc
    raise AttributeError(f"module 'isa' has no attribute {name!r}")
