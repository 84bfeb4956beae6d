"""Code generation: mapped graph -> isa.Program."""

from .emit import Emitter, generate

__all__ = ["Emitter", "generate"]
