"""Pixel loops: a two-level loop over output pixels whose pointer registers advance by row and pixel strides,
so program size does not depend on the image size (`pixel_loop`), and, for line buffers, a loop over groups of
unrolled rows whose addresses repeat with the bands (`row_loop`). Loop counters and pointers live at the top of
the register file (`LoopRegs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from isa import NO_BASE, Instr, MemRef, ops
from isa.hardware import HardwareConfig

Pointer = tuple[int, int, int]  # (start address, row step, pixel step)


#: The top registers of a core that loops use: 4 counters and bounds, 3 (pointer, row start) pairs (`LoopRegs`).
LOOP_REGS = 10


def required_data_regs(hw: HardwareConfig) -> int:
    """Data registers a core needs: a crossbar core holds the bias of each column block it owns (at most one per
    MVMU) and one partial sum, under the loop registers; a vector core needs two words besides those."""
    return (hw.mvmus_per_core + 1) * hw.xbar_cols + LOOP_REGS


@dataclass(frozen=True)
class LoopRegs:
    """Row and column counters, their limits, and (pointer, row start) register pairs for up to three pointers."""

    h: int
    w: int
    hm: int
    wm: int
    ptrs: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, hw: HardwareConfig) -> "LoopRegs":
        """The convention: the last registers of the file."""
        top = hw.core_regs
        regs = cls(top - 1, top - 2, top - 3, top - 4, tuple((top - 5 - 2 * i, top - 6 - 2 * i) for i in range(3)))
        assert top - min(r for pair in regs.ptrs for r in pair) == LOOP_REGS
        return regs


def pixel_loop(out: list[Instr], regs: LoopRegs, oh: int, ow: int, ptrs: list[Pointer],
               body: Callable[[list[MemRef]], None], spatial: bool = True, node: str | None = None) -> None:
    """Append to ``out`` a loop running ``body`` for each of oh x ow pixels; the body appends to ``out`` too and
    receives the current pointers as memory operands. Without ``spatial`` (a single pixel), no loop."""
    if not spatial:
        body([MemRef(NO_BASE, start) for start, _, _ in ptrs])
        return
    pairs = regs.ptrs[:len(ptrs)]
    out += [ops.set(d=regs.h, imm=0, node=node), ops.set(d=regs.hm, imm=oh, node=node),
            ops.set(d=regs.wm, imm=ow, node=node)]
    out += [ops.set(d=row, imm=0, node=node) for (_, row), _ in zip(pairs, ptrs)]
    top = len(out)
    out += [ops.iaddi(d=ptr, a=row, imm=0, node=node) for ptr, row in pairs]
    out.append(ops.set(d=regs.w, imm=0, node=node))
    inner = len(out)
    body([MemRef(ptr, start) for (ptr, _), (start, _, _) in zip(pairs, ptrs)])
    out += [ops.iaddi(d=ptr, a=ptr, imm=step, node=node) for (ptr, _), (_, _, step) in zip(pairs, ptrs)]
    out += [ops.iaddi(d=regs.w, a=regs.w, imm=1, node=node), ops.blt(a=regs.w, b=regs.wm, target=inner, node=node)]
    out += [ops.iaddi(d=row, a=row, imm=rstep, node=node) for (_, row), (_, rstep, _) in zip(pairs, ptrs)]
    out += [ops.iaddi(d=regs.h, a=regs.h, imm=1, node=node), ops.blt(a=regs.h, b=regs.hm, target=top, node=node)]


@dataclass(frozen=True)
class Row:
    """What one output row (or pixel group of a row, `bands.band_rows`) of a line-buffered loop needs: each
    pointer's address at its first pixel, the key of
    its body (the offsets of its window's kernel rows from the window origin: rows with equal keys emit the same
    instructions), the (address, words) it frees afterwards, and the row tokens it waits for and signals
    (`plan.Token`)."""

    starts: tuple[int, ...]
    key: tuple[int, ...]
    frees: tuple[tuple[int, int], ...]
    receives: tuple[tuple[int, int, tuple[int, ...]], ...] = ()  # (which `Receive`, address, its tokens) per row
    waits: tuple[int, ...] = ()  # token words loaded before its pixels: the rows its windows reach first are written
    signals: tuple[int, ...] = ()  # token words stored after its pixels: its output row is written
    late: tuple[tuple[tuple[tuple[int, int, tuple[int, ...]], ...], tuple[int, ...], tuple[int, int]], ...] = ()
    # rows freed unread after its pixels (below its window, `rowops.Window.rows`), one after the other: each one's
    # receives, token loads and free


@dataclass(frozen=True)
class Receive:
    """How a line-buffered row arrives from other tiles: ``pixels`` pixels ``step`` words apart, each as one
    message per (channel offset, words, source tile, channel) of ``parts``, stored with reader count ``count``."""

    pixels: int
    step: int
    parts: tuple[tuple[int, int, int, int], ...]
    count: int


def row_loop(out: list[Instr], regs: LoopRegs, rows: list[Row], ow: int, steps: list[int],
             body: Callable[[list[MemRef], int], None], period: int, node: str | None = None,
             receive: Sequence[Receive] = (), rx: tuple[int, int] | None = None, token: int = 0) -> None:
    """Append a loop over output rows described one by one (``rows``; ``steps``: each pointer's step per pixel),
    for line buffers, whose addresses repeat with the band instead of advancing by a row stride: the longest run
    of rows that repeats every ``period`` rows (same keys and frees, every start shifted by one constant) becomes
    a loop over groups of ``period`` rows with the rows of a group unrolled; the rows before and after it are
    emitted one by one. ``body(m, r)`` emits row r's pixel body with the pointers ``m``; ``receive`` says how
    the rows of ``Row.receives`` arrive (a loop over their pixels before the row, on the registers ``rx``: a
    pointer and a pixel count; default the third pointer pair); token words are loaded into and stored from
    register ``token`` (its value is irrelevant)."""
    a, groups = _periodic_run(rows, period)
    out.append(ops.set(d=regs.wm, imm=ow, node=node))
    for r in range(a):
        _one_row(out, regs, rows[r], steps, body, r, None, node, receive, rx, token)
    if groups:
        pairs = regs.ptrs[:len(steps)]
        shift = [rows[a + period].starts[i] - rows[a].starts[i] for i in range(len(steps))] if groups > 1 else \
            [0] * len(steps)
        out += [ops.set(d=regs.h, imm=0, node=node), ops.set(d=regs.hm, imm=groups, node=node)]
        out += [ops.set(d=row, imm=start, node=node) for (_, row), start in zip(pairs, rows[a].starts)]
        top = len(out)
        for j in range(period):
            _one_row(out, regs, rows[a + j], steps, body, a + j, rows[a].starts, node, receive, rx, token)
        out += [ops.iaddi(d=row, a=row, imm=k, node=node) for (_, row), k in zip(pairs, shift)]
        out += [ops.iaddi(d=regs.h, a=regs.h, imm=1, node=node), ops.blt(a=regs.h, b=regs.hm, target=top, node=node)]
    for r in range(a + groups * period, len(rows)):
        _one_row(out, regs, rows[r], steps, body, r, None, node, receive, rx, token)


def _periodic_run(rows: list[Row], period: int) -> tuple[int, int]:
    """(first row, groups) of the longest run of at least two whole groups of ``period`` rows in which every row
    equals the row one period earlier up to one constant shift of the starts; (len(rows), 0) when there is none."""
    def shift(r: int) -> tuple[int, ...]:
        return tuple(b - c for b, c in zip(rows[r + period].starts, rows[r].starts))

    def same(r: int, k: tuple[int, ...]) -> bool:
        x, y = rows[r], rows[r + period]
        return (x.key, x.frees, x.receives, x.waits, x.signals, x.late) == (
            y.key, y.frees, y.receives, y.waits, y.signals, y.late) and shift(r) == k

    best = (len(rows), 0)
    for a in range(len(rows) - 2 * period + 1):
        k, end = shift(a), a
        while end + period < len(rows) and same(end, k):
            end += 1
        groups = min((end - a) // period + 1, (len(rows) - a) // period)
        if groups >= 2 and groups > best[1]:
            best = (a, groups)
    return best


def _one_row(out: list[Instr], regs: LoopRegs, row: Row, steps: list[int], body: Callable[[list[MemRef], int], None],
             r: int, group: tuple[int, ...] | None, node: str | None, receive: Sequence[Receive] = (),
             rx: tuple[int, int] | None = None, token: int = 0) -> None:
    """One output row: the rows it receives (each followed by the tokens telling the tile's other readers), the
    tokens it waits for, its pointers (from immediates, or from the group's row registers), the pixel loop, the
    frees, the tokens it signals."""
    pairs = regs.ptrs[:len(steps)]
    assert rx is not None or len(steps) < 3 or not (row.receives or any(a for a, _, _ in row.late)), \
        "receives need the third pointer pair"

    def received(arrivals: tuple[tuple[int, int, tuple[int, ...]], ...]) -> None:
        """The loops receiving ``arrivals``, each followed by the tokens telling the tile's other readers."""
        at, end = rx or regs.ptrs[2]  # the receive pointer and the pixel count it runs to
        for k, addr, tokens in arrivals:
            got = receive[k]
            out.extend([ops.set(d=at, imm=addr, node=node), ops.set(d=regs.w, imm=0, node=node),
                        ops.set(d=end, imm=got.pixels, node=node)])
            top = len(out)
            out.extend(ops.recv(dst=MemRef(at, c0), n=n, tile=tile, ch=ch, count=got.count, node=node)
                       for c0, n, tile, ch in got.parts)
            out.extend([ops.iaddi(d=at, a=at, imm=got.step, node=node),
                        ops.iaddi(d=regs.w, a=regs.w, imm=1, node=node),
                        ops.blt(a=regs.w, b=end, target=top, node=node)])
            out.extend(ops.store(dst=MemRef(NO_BASE, t), a=token, n=1, count=1, node=node) for t in tokens)

    received(row.receives)
    out += [ops.load(d=token, src=MemRef(NO_BASE, t), n=1, node=node) for t in row.waits]
    if group is None:
        out += [ops.set(d=ptr, imm=start, node=node) for (ptr, _), start in zip(pairs, row.starts)]
    else:
        out += [ops.iaddi(d=ptr, a=reg, imm=start - g, node=node)
                for (ptr, reg), start, g in zip(pairs, row.starts, group)]
    out.append(ops.set(d=regs.w, imm=0, node=node))
    inner = len(out)
    body([MemRef(ptr, 0) for ptr, _ in pairs], r)
    out += [ops.iaddi(d=ptr, a=ptr, imm=step, node=node) for (ptr, _), step in zip(pairs, steps)]
    out += [ops.iaddi(d=regs.w, a=regs.w, imm=1, node=node), ops.blt(a=regs.w, b=regs.wm, target=inner, node=node)]
    out += [ops.free(addr=MemRef(NO_BASE, addr), n=n, node=node) for addr, n in row.frees]
    for arrivals, waits, (addr, n) in row.late:
        received(arrivals)
        out += [ops.load(d=token, src=MemRef(NO_BASE, t), n=1, node=node) for t in waits]
        out.append(ops.free(addr=MemRef(NO_BASE, addr), n=n, node=node))
    out += [ops.store(dst=MemRef(NO_BASE, t), a=token, n=1, count=1, node=node) for t in row.signals]
