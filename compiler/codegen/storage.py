"""Tile-memory storage of tensors: padded HWC buffers, concat aliasing, copies per tile, border fill.

Every tensor is viewed as (H, W, C): a (C, H, W) activation as is, a flat (F,) vector as (1, 1, F). A *root*
tensor owns a buffer; the inputs of a channel concat are views into their concat's buffer at a channel offset
(of a pixel concat, ``pixels``: at a row and column offset). Element (h, w, c) of a tensor lives at
``base + ((h + roff + pt) * Wp + (w + woff + pl)) * ctot + coff + c`` on every tile
holding a copy, where the border (pt, pl, pb, pr) is as wide as the widest window that reads the tensor and is
filled with the reading kind's ``window_fill`` (0, or the smallest value of the format for max pooling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from isa.errors import ModelError

from ..ir import Graph, Op
from ..ops import kind_of
from ..quant.formats import Format


def hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) view of a per-sample shape."""
    if len(shape) == 3:
        return shape[1], shape[2], shape[0]
    size = 1
    for d in shape:
        size *= d
    return 1, 1, size


@dataclass
class Buffer:
    """Geometry of a root tensor's buffer (the same on every tile holding a copy) and its base per tile."""

    h: int
    w: int
    c: int
    pads: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    fill: int | None = None
    bases: dict[int, int] = field(default_factory=dict)
    band: int = 0  # > 0: a line buffer of this many real rows (`row_base`; plan.py), or of pixel groups
    group: int = 0  # > 0: a line buffer of ``band`` slots of this many pixels (`unit_base`; `rowops.pixel_group`)
    slots: dict[int, int] = field(default_factory=dict)  # a line buffer's slots on the tiles where it has not ``band``

    @property
    def wp(self) -> int:
        """Padded width."""
        return self.w + self.pads[1] + self.pads[3]

    @property
    def hp(self) -> int:
        """Padded height."""
        return self.h + self.pads[0] + self.pads[2]

    @property
    def words(self) -> int:
        """Words of one copy (a line buffer's with ``band`` slots)."""
        return self.words_on(None)

    def band_on(self, tile: int | None) -> int:
        """The slots of a line buffer's copy on ``tile`` (each copy holds what the readers on its tile need,
        `plan.line_buffers`); 0 for a whole tensor."""
        return self.slots.get(tile, self.band) if self.band and tile is not None else self.band

    def words_on(self, tile: int | None) -> int:
        """Words of the copy on ``tile``."""
        band = self.band_on(tile)
        if self.group:
            return band * self.group * self.c
        return (band or self.hp) * self.wp * self.c

    @property
    def units(self) -> int:
        """The units its producer writes and its readers sweep, one after the other: its pixel groups when it is
        held in groups (`group`), else its rows."""
        return self.h * (self.w // self.group) if self.group else self.h

    def unit_base(self, u: int, tile: int | None = None) -> int:
        """Offset of pixel group ``u`` (row-major over the image) in the copy on ``tile`` of a line buffer held in
        groups: slot u mod its band."""
        assert self.group and 0 <= u < self.units, f"group {u} of a buffer of {self.units} groups"
        return u % self.band_on(tile) * self.group * self.c

    def row_base(self, h: int, tile: int | None = None) -> int:
        """Offset of row ``h`` (its left border included) in the copy on ``tile``: row h + pt of the padded buffer,
        or in a line buffer slot h mod its band of a real row (0 <= h < H). A line buffer has no top or bottom border rows: its
        readers read nothing there (`bands.BORDER`: a conv zeroes those inputs, a max pool leaves them out)."""
        row = self.wp * self.c
        if not self.band:
            return (h + self.pads[0]) * row
        assert 0 <= h < self.h, f"row {h} of a line buffer of {self.h} rows"
        return h % self.band_on(tile) * row


@dataclass(frozen=True)
class View:
    """A tensor's place in its root buffer: channel offset, row and column offsets."""

    root: str
    coff: int
    roff: int = 0
    woff: int = 0


class Storage:
    """Buffers of every tensor of a graph (see module docstring)."""

    def __init__(self, g: Graph, fmt: dict[str, Format]) -> None:
        self.g, self.fmt = g, fmt
        self.views: dict[str, View] = {}
        self.buffers: dict[str, Buffer] = {}
        for op in reversed(g.ops):
            if kind_of(op).device == "view":
                self._alias(op)
        for name in g.values:
            self.views.setdefault(name, View(name, 0))
        for view in list(self.views.values()):
            if view.root not in self.buffers:
                self.buffers[view.root] = Buffer(*hwc(g.values[view.root].shape))
        for op in g.ops:
            fill = kind_of(op).window_fill(op, fmt)
            if fill is not None:
                self._widen(op, fill)

    def _alias(self, op: Op) -> None:
        out = self.views.get(op.outputs[0], View(op.outputs[0], 0))
        self.views[op.outputs[0]] = out
        if op.attrs.get("pixels"):
            from ..ops.concat import pixel_offsets

            if out.roff or out.woff:
                raise ModelError(f"concat '{op.name}': a pixel concat inside another pixel concat is not supported")

            ins = [self.g.values[i].shape for i in op.inputs]
            width = self.g.values[op.outputs[0]].shape[2]
            for i, at in zip(op.inputs, pixel_offsets(ins, self.g.values[op.outputs[0]].shape) or []):
                self._view(op, i, View(out.root, out.coff, out.roff + at // width, out.woff + at % width))
            return
        off = out.coff
        for i in op.inputs:
            self._view(op, i, View(out.root, off, out.roff, out.woff))
            off += hwc(self.g.values[i].shape)[2]

    def _view(self, op: Op, i: str, view: View) -> None:
        if i in self.views or self.g.producer(i) is None:
            raise ModelError(f"concat '{op.name}': input '{i}' is a graph input or feeds two concats")
        if self.fmt[i] != self.fmt[op.outputs[0]]:
            raise ModelError(f"concat '{op.name}': input '{i}' format {self.fmt[i]} differs from the output's")
        self.views[i] = view

    def _widen(self, op: Op, fill: int) -> None:
        """Grow the reading tensor's border to cover ``op``'s padding and ceil-mode overhang; set the fill."""
        buf = self.buffer(op.inputs[0])
        h, w, _ = hwc(self.g.values[op.inputs[0]].shape)
        oh, ow, _ = hwc(self.g.values[op.outputs[0]].shape)
        (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
        dh, dw = op.attrs.get("dilations", (1, 1))
        pt, pl, pb, pr = op.attrs["pads"]
        pb = max(pb, (oh - 1) * sh + (kh - 1) * dh + 1 - h - pt)
        pr = max(pr, (ow - 1) * sw + (kw - 1) * dw + 1 - w - pl)
        need = [pt, pl, pb, pr]
        if not any(need):
            return
        if buf.fill is not None and buf.fill != fill:
            raise ModelError(f"tensor '{op.inputs[0]}' is read with zero padding and with max-pool padding")
        buf.fill = fill
        buf.pads = [max(a, b) for a, b in zip(buf.pads, need)]

    def buffer(self, value: str) -> Buffer:
        """The buffer holding ``value``."""
        return self.buffers[self.views[value].root]

    def root(self, value: str) -> str:
        """The root tensor whose buffer holds ``value``."""
        return self.views[value].root

    def origin(self, value: str, top: int = 0, left: int = 0) -> int:
        """Offset (from the buffer base) of element (-top, -left, 0) of ``value``: a window origin."""
        buf, v = self.buffer(value), self.views[value]
        return ((buf.pads[0] + v.roff - top) * buf.wp + (buf.pads[1] + v.woff - left)) * buf.c + v.coff

    def pixel_step(self, value: str) -> tuple[int, int]:
        """(words per pixel row, words per pixel) of ``value``'s buffer."""
        buf = self.buffer(value)
        return buf.wp * buf.c, buf.c
