"""xbarc's ISA: the contract between compiler and runtime (instruction table, encodings, hardware, numerics)."""

from .errors import AsmError, ConfigError, DeadlockError, Location, ModelError, RuntimeFault, XbarcError
from .hardware import DEFAULT, PRESETS, PUMA, CostTable, HardwareConfig, load_hardware
from .program import CoreCode, Instr, MemInit, MvmuImage, Program, TensorLoc
from .table import BY_MNEMONIC, BY_OPCODE, INSTRUCTIONS, NO_BASE, Field, InstrSpec

__all__ = [
    "AsmError", "ConfigError", "DeadlockError", "Location", "ModelError", "RuntimeFault", "XbarcError",
    "DEFAULT", "PRESETS", "PUMA", "CostTable", "HardwareConfig", "load_hardware",
    "CoreCode", "Instr", "MemInit", "MvmuImage", "Program", "TensorLoc",
    "BY_MNEMONIC", "BY_OPCODE", "INSTRUCTIONS", "NO_BASE", "Field", "InstrSpec",
]
