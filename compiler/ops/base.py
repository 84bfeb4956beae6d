"""The `OpKind` base class and the registry of op kinds (contract: the package docstring)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from isa.errors import ModelError

if TYPE_CHECKING:
    from isa.hardware import HardwareConfig

    from ..codegen.context import Context
    from ..ir import Graph, Op
    from ..quant.precision import LayerPrecision

Shape = tuple[int, ...]
Format = tuple[int, int]
PixelBlock = tuple[int, int, int, int]

KIND_MODULES = ("dense", "conv", "pool", "gap", "eltwise", "act", "affine", "concat", "pad", "reshape", "lrn", "move",
                "recurrent")
"""The modules of this package that define kinds, imported (in this order) on the first registry lookup."""

_REGISTRY: dict[str, OpKind] = {}
_LOADED = [False]


@dataclass(frozen=True)
class IntContext:
    """What integer semantics may read: the crossbar layers' precisions, every tensor's stored format, the
    hardware."""

    prec: dict[str, LayerPrecision]
    fmt: dict[str, Format]
    hw: HardwareConfig


class OpKind:
    """One kind of IR op (see the package docstring for every hook's contract). Defaults: one input, a vector
    op, output shape equal to the input shape, no integer semantics (an error naming the op)."""

    name: ClassVar[str] = ""
    arity: ClassVar[tuple[int, int]] = (1, 1)
    crossbar: ClassVar[bool] = False
    device: ClassVar[str] = "vector"
    fuses_act: ClassVar[bool] = False
    vector_regions: ClassVar[int] = 2

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        """A problem with ``op`` (input shapes ``ins``, output shape ``out``), or None."""
        return same_shape(ins, out)

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        """Float semantics (before the fused activation) on internal-layout inputs."""
        raise NotImplementedError(f"op kind '{self.name}' has no float semantics")

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        """Integer semantics (before the fused activation) -> (integers, their fraction bits)."""
        raise ModelError(f"op '{op.name}' ({op.kind}) cannot run on the device")

    def preserves_fmt(self, op: Op) -> bool:
        """Whether ``op``'s inputs may be stored in its output's format (rule 2 of `quant.formats`)."""
        return False

    def window_fill(self, op: Op, fmt: dict[str, Format]) -> int | None:
        """For an op reading input 0 through windows (kernel, strides, pads, dilations attrs): the value its
        buffer's border holds; None for an op that reads no windows."""
        return None

    def pixel_blocks(self, g: Graph, op: Op) -> list[PixelBlock]:
        """Blocks (r0, r1, q0, q1) of output pixels in the order ``op`` writes them: all of (H, W) at once."""
        from ..codegen.storage import hwc

        h, w, _ = hwc(g.values[op.outputs[0]].shape)
        return [(0, h, 0, w)]

    def const_words(self, g: Graph, op: Op, fmt: dict[str, Format]) -> int:
        """Words of constants ``op`` keeps in its tile's memory (`CommPlan.consts`)."""
        return 0

    def device_error(self, g: Graph, op: Op) -> str:
        """Why ``op`` (of a kind with ``device == "none"``) cannot run on the device."""
        return (f"op '{op.name}' ({op.kind}) cannot run on the device: canonicalization should have removed it; "
                f"device kinds: {', '.join(k.name for k in kinds() if k.device != 'none')}")

    def emit(self, ctx: Context, op: Op) -> None:
        """Emit ``op``'s instructions."""
        raise ModelError(f"op '{op.name}' ({op.kind}) has no code generation")

    def __repr__(self) -> str:
        return f"<op kind {self.name}>"


K = TypeVar("K", bound=type[OpKind])


def register(cls: K) -> K:
    """Class decorator: register one instance of an `OpKind` subclass under its ``name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"op kind {cls.__name__}: name {cls.name!r} is empty or already registered")
    _REGISTRY[cls.name] = cls()
    return cls


def _load() -> None:
    if not _LOADED[0]:
        _LOADED[0] = True
        for mod in KIND_MODULES:
            importlib.import_module(f"{__package__}.{mod}")


def kinds() -> list[OpKind]:
    """Every registered kind, in registration order."""
    _load()
    return list(_REGISTRY.values())


def kind_of(op: Op | str) -> OpKind:
    """The kind of ``op`` (an `Op` or a kind name); ModelError naming the op for an unknown kind."""
    _load()
    name = op if isinstance(op, str) else op.kind
    try:
        return _REGISTRY[name]
    except KeyError:
        where = f"op '{op.name}' " if not isinstance(op, str) else ""
        raise ModelError(f"{where}has unknown kind '{name}'; known: {', '.join(sorted(_REGISTRY))}") from None


def same_shape(ins: list[Shape], out: Shape) -> str | None:
    """The shared check of shape-preserving ops."""
    return f"shapes change {ins} -> {out}" if any(s != out for s in ins) else None


def size_of(shape: Shape) -> int:
    """Elements of a per-sample shape."""
    return int(np.prod(shape)) if shape else 1


def window_out(op: Op, shape: Shape) -> tuple[int, int]:
    """Output (OH, OW) of the windows of ``op`` (attrs kernel, strides, pads, dilations, ceil_mode) over a
    (C, H, W) input."""
    from ..ir.graph import conv_out_size

    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
    pt, pl, pb, pr = op.attrs["pads"]
    dh, dw = op.attrs.get("dilations", (1, 1))
    ceil = bool(op.attrs.get("ceil_mode", False))
    return (conv_out_size(shape[1], kh, sh, pt, pb, dh, ceil), conv_out_size(shape[2], kw, sw, pl, pr, dw, ceil))


def out_hw(g: Graph, op: Op) -> tuple[int, int]:
    """Spatial output size (OH, OW) of a windowed op."""
    shape = g.values[op.outputs[0]].shape
    return shape[1], shape[2]
