"""Row ops: the ops whose code sweeps their output rows once, in order, and which rows of each input one output row
reads (`Window`). Only their tensors can be line buffers (`plan.line_buffers`, docs/design-notes.md,
"Activations larger than a tile"): a row op frees each input row after the last output row that reads it.

Row ops: a crossbar conv computed by one replica; a max pool in one channel chunk that is not a global max; an
element-wise op whose inputs are distinct and have the output's (C, H, W) shape (no broadcast; its channel
chunks are taken pixel by pixel), on a core with two spare registers for the row receives
(`eltwise_receive_regs`); a global average (`global_average`), whose rows are its input's (`sweep_rows`), when its accumulators fit
the registers (`gap_registers`). A row op that reads or writes a line buffer held in pixel groups
(`pixel_group`) sweeps each row group by group (`sweep_group`, `sweep_units`, `Window.unit_rows`)."""

from __future__ import annotations

from dataclasses import dataclass

from isa.hardware import HardwareConfig

from ..ir import Graph, Op
from ..mapping import Mapping
from ..ops import kind_of
from .loops import LOOP_REGS
from .storage import Storage, hwc


@dataclass(frozen=True)
class Window:
    """How output rows read one input: ``kh`` kernel rows ``dh`` apart, ``sh`` rows per output row, the window of
    output row 0 starting ``pt`` rows above the image (and ``pl`` pixels left of it)."""

    kh: int = 1
    sh: int = 1
    dh: int = 1
    pt: int = 0
    pl: int = 0
    kw: int = 1
    sw: int = 1

    @property
    def pointwise(self) -> bool:
        """One pixel per output pixel, the same (h, w): a 1x1 stride-1 conv, an element-wise op, a global
        average. Only pointwise readers let a line buffer be held in pixel groups (`pixel_group`)."""
        return (self.kh, self.kw, self.sh, self.sw, self.pt, self.pl) == (1, 1, 1, 1, 0, 0)

    def unit_rows(self, u: int, units: int, oh: int, h: int, grouped: bool) -> tuple[int, int, int]:
        """`rows` of sweep unit ``u`` of an op sweeping ``units`` units per output row (`rowops.sweep_group`):
        over an input held in pixel groups (``grouped``, ``h`` its groups) the group u itself; over rows, its
        output row's window (the rows it frees only after the row's last unit)."""
        if grouped:
            return u, u + 1, u + 1
        oy, k = divmod(u, units)
        top, reach, upto = self.rows(oy, oh, h)
        if k < units - 1:
            upto = self.rows(oy - 1, oh, h)[2] if oy else 0
        return top, reach, upto

    def rows(self, oy: int, oh: int, h: int) -> tuple[int, int, int]:
        """(top, reach, upto) of output row ``oy`` of ``oh`` over an input of ``h`` rows: its window's top row
        (negative in the border), the input rows [0, reach) its window needs, and the rows [0, upto) no later
        output row reads (all of them after the last row). Rows in [reach, upto) (a stride taller than the
        window: the odd rows of a 1x1/2 conv) are freed unread after the row, each once it is there."""
        top = oy * self.sh - self.pt
        upto = h if oy == oh - 1 else min(max(top + self.sh, 0), h)
        reach = min(max(top + (self.kh - 1) * self.dh + 1, 0), h)
        return top, reach, upto

    @property
    def height(self) -> int:
        """Rows one window spans."""
        return (self.kh - 1) * self.dh + 1

    @property
    def span(self) -> int:
        """Rows a band holds for this reader to overlap with its producer: its window and one stride."""
        return self.height + self.sh


def band_height(rows: int) -> int:
    """The smallest band height of at least ``rows``: a power of two or three times one, so that the period of a
    row op's rows (the lcm of its bands, `loops.row_loop`) stays at most three times its largest band."""
    p = 1 << max(rows - 1, 0).bit_length()
    return 3 * p // 4 if p >= 4 and 3 * p // 4 >= rows else p


def vector_chunk(g: Graph, op: Op, hw: HardwareConfig) -> int:
    """Channels processed per instruction group by a vector op: two operand regions fit the data registers below
    the loop counters and pointers at the top of the register file (`loops.LOOP_REGS`); an affine op's four
    (input, temporary, scale, shift): the kind's ``vector_regions``."""
    regions = kind_of(op).vector_regions  # e.g. an affine also holds its scale and shift
    return min(hwc(g.values[op.outputs[0]].shape)[2], max(1, (hw.data_regs - LOOP_REGS) // regions))


def eltwise_receive_regs(g: Graph, op: Op, hw: HardwareConfig) -> tuple[int, int] | None:
    """The (pointer, pixel count) registers an element-wise row op receives rows with (its three pointers take
    every pointer pair of `loops.LoopRegs`): the first two MVMU input registers, idle on a vector core, else the
    two registers after its operand regions; None if there are none."""
    if hw.mvmus_per_core and hw.xbar_rows >= 2:
        return hw.mvmu_in(0), hw.mvmu_in(0) + 1
    first = hw.data_base + 2 * vector_chunk(g, op, hw)
    return (first, first + 1) if first + 2 <= hw.core_regs - LOOP_REGS else None


def gap_registers(g: Graph, op: Op, hw: HardwareConfig) -> tuple[int, int] | None:
    """(temporary, first accumulator) registers of a global average that sweeps a line buffer's rows once,
    accumulating every channel chunk of a pixel in its own registers (`vector._gap_rows`): a chunk's temporary
    at the data registers, then the C accumulators after it, or in the MVMU registers, idle on a vector core, or
    from register 0 over the MVMU registers into the data registers, the temporary after them (ResNet-50's 2,048
    channels on `puma-chip`'s 1,536 MVMU registers); None when none of these holds them."""
    c, chunk, top = hwc(g.values[op.inputs[0]].shape)[2], vector_chunk(g, op, hw), hw.core_regs - LOOP_REGS
    if hw.data_base + chunk + c <= top:
        return hw.data_base, hw.data_base + chunk
    if c <= hw.data_base:
        return hw.data_base, 0
    return (c, 0) if c + chunk <= top else None


def global_average(g: Graph, op: Op) -> bool:
    """A global average: a ``gap`` op, or an average pool whose one window is its whole unpadded input."""
    if op.kind == "gap":
        return True
    if op.kind != "pool" or op.attrs["mode"] != "avg" or any(op.attrs["pads"]):
        return False
    (h, w, _), (oh, ow, _) = hwc(g.values[op.inputs[0]].shape), hwc(g.values[op.outputs[0]].shape)
    return (oh, ow) == (1, 1) and tuple(op.attrs["kernel"]) == (h, w)


def sweep_rows(g: Graph, op: Op) -> int:
    """The rows a row op sweeps: its output rows; a global average's input rows (its one output comes after)."""
    return hwc(g.values[op.inputs[0] if global_average(g, op) else op.outputs[0]].shape)[0]


def row_windows(g: Graph, mapping: Mapping, op: Op) -> dict[int, Window] | None:
    """The windows of a row op (see module docstring) per input position it sweeps; None for any other op."""
    if global_average(g, op):
        spatial = len(g.values[op.inputs[0]].shape) == 3
        return {0: Window()} if spatial and gap_registers(g, op, mapping.hw) is not None else None
    if op.kind == "conv" and op.is_crossbar:
        return {0: _window(op)} if mapping.layers[op.name].replicas == 1 else None
    out = g.values[op.outputs[0]].shape
    if op.kind == "pool" and op.attrs["mode"] == "max":
        (h, w, c), (oh, ow, _) = hwc(g.values[op.inputs[0]].shape), hwc(out)
        is_global = (oh, ow) == (1, 1) and tuple(op.attrs["kernel"]) == (h, w) and not any(op.attrs["pads"])
        return {0: _window(op)} if not is_global and vector_chunk(g, op, mapping.hw) >= c else None
    if op.kind == "eltwise":
        if (len(out) != 3 or len(set(op.inputs)) != len(op.inputs)
                or any(g.values[i].shape != out for i in op.inputs)
                or eltwise_receive_regs(g, op, mapping.hw) is None):
            return None
        return {k: Window() for k in range(len(op.inputs))}
    return None


def _window(op: Op) -> Window:
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
    return Window(kh, sh, op.attrs.get("dilations", (1, 1))[0], op.attrs["pads"][0], op.attrs["pads"][1], kw, sw)


#: Most pixel groups per row of a line buffer held in groups. The groups of a row are unrolled in the sweeps
#: that touch it (`loops.row_loop`), so their number, not the width, sets the code size.
GROUP_UNITS = 8


def pixel_group(width: int) -> int:
    """The pixels per slot of a line buffer of ``width`` pixels held in pixel groups: the width over its largest
    divisor of at most `GROUP_UNITS` (56 -> 7, 28 -> 4, 7 -> 1); 0 when that is the whole row (rows are the slots
    then)."""
    units = max(d for d in range(1, min(GROUP_UNITS, width) + 1) if width % d == 0)
    return width // units if units > 1 else 0


def sweep_group(st: Storage, op: Op) -> int:
    """Pixels per sweep unit of a row op: the pixel group of the line buffers it reads or writes that are held in
    groups (one width, hence one group: their readers are pointwise); 0 when it sweeps whole rows."""
    return max([st.buffer(v).group for v in [*op.inputs, op.outputs[0]] if v in st.views], default=0)


def sweep_units(g: Graph, st: Storage, op: Op) -> int:
    """Units of a row op's sweep per row (`sweep_rows`): its row's pixel groups (`sweep_group`), else 1."""
    group = sweep_group(st, op)
    return hwc(g.values[op.inputs[0] if global_average(g, op) else op.outputs[0]].shape)[1] // group if group else 1
