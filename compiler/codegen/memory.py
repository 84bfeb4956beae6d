"""What each tile's memory holds: the plan's allocations merged per item (a tensor's copy or line buffer, row
tokens, partial sums, biases, constants) with their words and shapes (`breakdown`), the ops placed on each tile
(`mapping.fit.tile_ops`), and the plan of a mapped graph made for its memory alone (`plan_memory`), which the memory-aware
placement (`compiler.mapping.fit`) and the benchmarks read. The overflow error names the overflowing tile's
holdings (`describe`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from isa.errors import ModelError
from isa.hardware import HardwareConfig

from ..ir import Graph
from ..mapping import Mapping
from ..quant import LayerPrecision
from ..quant.formats import Format
from .storage import Buffer, Storage

if TYPE_CHECKING:
    from .plan import TileMemory

#: Holdings an overflow message lists one by one (the rest are summed).
LISTED = 8


def buffer_shape(buf: Buffer, tile: int | None = None) -> str:
    """The shape of the copy of ``buf`` on ``tile``: a band of R of the tensor's H rows (rows x padded width x
    channels), a ring of R of its pixel groups (groups x pixels x channels), or the whole padded tensor."""
    if buf.band and buf.group:
        return f"ring of {buf.band_on(tile)} of {buf.units} groups x {buf.group} x {buf.c}"
    if buf.band:
        return f"band of {buf.band_on(tile)} of {buf.h} rows x {buf.wp} x {buf.c}"
    return f"whole {buf.hp} x {buf.wp} x {buf.c}"


def breakdown(mem: TileMemory, tile: int) -> list[tuple[str, int, int, str]]:
    """What ``tile`` holds, one entry per item, largest first (ties in allocation order): (what, words,
    allocations, shape) -- e.g. ("tensor 'x'", 14848, 1, "band of 4 of 112 rows x 58 x 64"), ("partial sums
    of 'fc1'", 24960, 195, "")."""
    merged: dict[str, list[int]] = {}
    for what, words in mem.held.get(tile, []):
        entry = merged.setdefault(what, [0, 0])
        entry[0] += words
        entry[1] += 1
    items = [(what, n, k, mem.details.get((tile, what), "")) for what, (n, k) in merged.items()]
    order = {what: i for i, what in enumerate(merged)}
    return sorted(items, key=lambda h: (-h[1], order[h[0]]))


def describe(mem: TileMemory, tile: int, listed: int = LISTED) -> str:
    """`breakdown` of ``tile`` as one line: each item with its words (and shape or allocation count), the
    smallest summed when there are more than ``listed``."""
    items = breakdown(mem, tile)

    def one(what: str, n: int, k: int, shape: str) -> str:
        extra = shape if shape else (f"{k} x {n // k:,}" if k > 1 and n % k == 0 else "")
        return f"{what} {n:,} words" + (f" ({extra})" if extra else "")

    text = ", ".join(one(*h) for h in items[:listed])
    rest = items[listed:]
    if rest:
        text += f" and {len(rest)} more ({sum(h[1] for h in rest):,} words)"
    return text


def plan_memory(g: Graph, prec: dict[str, LayerPrecision], mapping: Mapping, hw: HardwareConfig,
                fmt: dict[str, Format]) -> TileMemory:
    """The tile memory of ``mapping``'s communication plan on ``hw`` (line buffers and the port where whole
    tensors overflow, as `generate` plans it), without emitting code; an overflow is left in the result
    (``first_overflow``) instead of raised, with the storage planned (``storage``: which tensors are line
    buffers). Other plan errors are raised."""
    from ..quant.blockcache import quantized
    from .plan import TileMemory, plan_communication

    biased = {op.name for op in g.crossbar_ops() if quantized(op, prec[op.name]).bias is not None}
    mem = TileMemory(hw)
    mem.storage = Storage(g, fmt)
    try:
        plan_communication(g, mapping, mem.storage, hw, biased, mem)
    except ModelError:
        if mem.first_overflow is None:
            raise
    return mem
