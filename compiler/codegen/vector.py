"""Vector-ALU ops on the core of their own: pooling, global average, element-wise add and standalone affine ops
(x * scale + shift, rule AFFINE), in channel chunks that fit the operand regions of the data registers."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np

from isa import NO_BASE, MemInit, MemRef, ops

from ..ir import Graph, Op
from ..ops import kind_of
from ..ops.affine import quantize_affine
from ..ops.eltwise import mul_frac
from ..quant.functional import DIV_FRAC, divisor_coef
from ..quant.windows import window_counts
from .context import Context
from .epilogue import activation, finish
from .bands import BORDER, band_rows, unit_pixels
from .loops import LoopRegs, Pointer, pixel_loop, row_loop
from .plan import SHARED_READERS, Core
from .rowops import eltwise_receive_regs, gap_registers, global_average, vector_chunk
from .storage import hwc


Family = Callable[["Context", Core, Op, int, int, int, int, int, int, Pointer], None]


def emit_vector(ctx: Context, op: Op, family: Family) -> None:
    """All instructions of one vector op, channel chunk by channel chunk, each by ``family``."""
    core = ctx.mapping.vector[op.name]
    tile, yout = core[0], op.outputs[0]
    oh, ow, c = hwc(ctx.g.values[yout].shape)
    chunk = vector_chunk(ctx.g, op, ctx.hw)
    a, b = ctx.hw.data_base, ctx.hw.data_base + chunk
    out_ptr = (ctx.st.buffer(yout).bases[tile] + ctx.st.origin(yout), *ctx.st.pixel_step(yout))
    for c0 in range(0, c, chunk):
        family(ctx, core, op, a, b, min(chunk, c - c0), c0, oh, ow, out_ptr)


def in_ptr(ctx: Context, tile: int, value: str, top: int = 0, left: int = 0, sh: int = 1, sw: int = 1) -> Pointer:
    """The pixel-loop pointer (address of the window origin, row step, column step) reading ``value`` on
    ``tile``."""
    row, pix = ctx.st.pixel_step(value)
    return ctx.st.buffer(value).bases[tile] + ctx.st.origin(value, top, left), sh * row, sw * pix


def _pool(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
          out_ptr: Pointer) -> None:
    """Max or average pooling; an average whose divisor differs between windows (border windows without
    ``count_include_pad``, ceil-mode overhang) sweeps one pixel loop per block of output pixels sharing a
    divisor (rule POOL: ``cnt_h[oh] * cnt_w[ow]``), each with its own coefficient."""
    out, node, x = ctx.code(core), op.name, op.inputs[0]
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
    dh, dw = op.attrs.get("dilations", (1, 1))
    row, pix = ctx.st.pixel_step(x)
    src = in_ptr(ctx, core[0], x, op.attrs["pads"][0], op.attrs["pads"][1], sh, sw)
    fi = ctx.fmt[x][1]
    is_max = op.attrs["mode"] == "max"
    read = ops.peek if ctx.st.buffer(x).band else ops.load  # a line buffer is read without consuming

    def body(m: list[MemRef], coef: int, kernel_rows: tuple[int, ...] | None = None) -> None:
        first = True
        for i in range(kh):
            down = kernel_rows[i] if kernel_rows is not None else i * dh * row
            if down == BORDER:  # a kernel row in a line buffer's border (max pool: the smallest value) adds nothing
                continue
            for j in range(kw):
                out.append(read(d=a if first else b, src=m[0].shifted(down + j * dw * pix + c0), n=n, node=node))
                if not first:
                    out.append(ops.max(d=a, a=a, b=b, n=n, node=node) if is_max else
                               ops.add(d=a, a=a, b=b, n=n, w=64, node=node))
                first = False
        if not is_max:
            out.append(ops.muli(d=a, a=a, imm=coef, n=n, f=DIV_FRAC, w=64, node=node))
        activation(out, op, a, n, fi, b, node)
        finish(ctx, core, node, op.outputs[0], a, n, fi, c0, m[1], ctx.fmt[x][0] if is_max else 64)

    h, w, _ = hwc(ctx.g.values[x].shape)
    if is_max and (oh, ow) == (1, 1) and (kh, kw) == (h, w) and not any(op.attrs["pads"]) and h * w > 1:
        _global_max(ctx, core, op, a, b, n, c0, out_ptr)
        return
    if is_max and (ctx.st.buffer(x).band or ctx.st.buffer(op.outputs[0]).band):  # `plan.line_buffers`
        rows, period, receives = band_rows(ctx, core, op)
        row_loop(out, LoopRegs.of(ctx.hw), rows, unit_pixels(ctx, op), [src[2], out_ptr[2]],
                 lambda m, r: body(m, 0, rows[r].key),
                 period, node=node, receive=receives, token=a)
        return
    if is_max:
        pixel_loop(out, LoopRegs.of(ctx.hw), oh, ow, [src, out_ptr], lambda m: body(m, 0), node=node)
        return
    ch, cw = ([int(v) for v in c] for c in window_counts(op, (h, w), (oh, ow)))
    for r0, r1, q0, q1 in pool_blocks(op, (h, w), (oh, ow)):
        coef = divisor_coef(ch[r0] * cw[q0])
        ptrs = [(p[0] + r0 * p[1] + q0 * p[2], p[1], p[2]) for p in (src, out_ptr)]
        pixel_loop(out, LoopRegs.of(ctx.hw), r1 - r0, q1 - q0, ptrs, functools.partial(body, coef=coef),
                   node=node)


def pool_blocks(op: Op, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The blocks of output pixels ``(r0, r1, q0, q1)`` an average pool computes, in the order it computes (and
    stores and sends) them: one per run of rows and columns sharing a divisor (the whole output for a max pool or
    a divisor that is the same everywhere). Receivers of the pool's pixels on other tiles take them in this order
    (`transfers.emit_receive`)."""
    if op.attrs["mode"] == "max":
        return [(0, out_hw[0], 0, out_hw[1])]
    ch, cw = ([int(v) for v in c] for c in window_counts(op, in_hw, out_hw))
    return [(r0, r1, q0, q1) for r0, r1 in _runs(ch) for q0, q1 in _runs(cw)]


def pixel_order(g: Graph, value: str) -> list[tuple[int, int, int, int]]:
    """The blocks in which the producer of ``value`` writes its pixels (its kind's ``pixel_blocks``, e.g.
    `pool_blocks`); one block, the whole (H, W), for a graph input."""
    op = g.producer(value)
    if op is None:
        h, w, _ = hwc(g.values[value].shape)
        return [(0, h, 0, w)]
    return kind_of(op).pixel_blocks(g, op)


def _global_max(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, out_ptr: Pointer) -> None:
    """A max pool whose one window is the whole input (GlobalMaxPool) as a pixel loop, like `_gap`, so the
    program size does not depend on H x W: the first pixel, then the max with every pixel."""
    out, node, x = ctx.code(core), op.name, op.inputs[0]
    regs = LoopRegs.of(ctx.hw)
    h, w, _ = hwc(ctx.g.values[x].shape)
    src = in_ptr(ctx, core[0], x)
    out.append(ops.load(d=a, src=MemRef(NO_BASE, src[0] + c0), n=n, node=node))

    def accumulate(m: list[MemRef]) -> None:
        out.append(ops.load(d=b, src=m[0].shifted(c0), n=n, node=node))
        out.append(ops.max(d=a, a=a, b=b, n=n, node=node))

    pixel_loop(out, regs, h, w, [src], accumulate, node=node)
    fi = ctx.fmt[x][1]
    activation(out, op, a, n, fi, b, node)
    pixel_loop(out, regs, 1, 1, [out_ptr], lambda m: finish(ctx, core, node, op.outputs[0], a, n, fi, c0, m[0],
                                                            ctx.fmt[x][0]), node=node)


def _runs(counts: Sequence[int]) -> list[tuple[int, int]]:
    """[lo, hi) ranges of consecutive equal entries of ``counts``."""
    runs: list[tuple[int, int]] = []
    for i, c in enumerate(counts):
        if runs and counts[runs[-1][0]] == c:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _gap(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
         out_ptr: Pointer) -> None:
    out, node, x = ctx.code(core), op.name, op.inputs[0]
    regs = LoopRegs.of(ctx.hw)
    h, w, _ = hwc(ctx.g.values[x].shape)
    out.append(ops.sub(d=a, a=a, b=a, n=n, w=64, node=node))

    def accumulate(m: list[MemRef]) -> None:
        out.append(ops.load(d=b, src=m[0].shifted(c0), n=n, node=node))
        out.append(ops.add(d=a, a=a, b=b, n=n, w=64, node=node))

    pixel_loop(out, regs, h, w, [in_ptr(ctx, core[0], x)], accumulate, node=node)
    out.append(ops.muli(d=a, a=a, imm=divisor_coef(h * w), n=n, f=DIV_FRAC, w=64, node=node))
    fi = ctx.fmt[x][1]
    activation(out, op, a, n, fi, b, node)
    pixel_loop(out, regs, 1, 1, [out_ptr], lambda m: finish(ctx, core, node, op.outputs[0], a, n, fi, c0, m[0]),
               node=node)


def _gap_rows(ctx: Context, op: Op) -> None:
    """A global average over a line buffer (`rowops.row_windows`): one sweep of its input rows
    (`loops.row_loop`) adding every channel chunk of a pixel into its own accumulators (`rowops.gap_registers`),
    then, chunk by chunk, the divisor, the activation and the store, as `_gap` does."""
    core, node, x, yout = ctx.mapping.vector[op.name], op.name, op.inputs[0], op.outputs[0]
    out, regs = ctx.code(core), LoopRegs.of(ctx.hw)
    h, w, c = hwc(ctx.g.values[x].shape)
    chunk = vector_chunk(ctx.g, op, ctx.hw)
    regions = gap_registers(ctx.g, op, ctx.hw)
    assert regions is not None, f"'{node}' is not a row op"
    tmp, acc = regions
    chunks = [(c0, min(chunk, c - c0)) for c0 in range(0, c, chunk)]
    out += [ops.sub(d=acc + c0, a=acc + c0, b=acc + c0, n=n, w=64, node=node) for c0, n in chunks]

    def body(m: list[MemRef], r: int) -> None:
        for c0, n in chunks:
            out.append(ops.peek(d=tmp, src=m[0].shifted(c0), n=n, node=node))
            out.append(ops.add(d=acc + c0, a=acc + c0, b=tmp, n=n, w=64, node=node))

    rows, period, receives = band_rows(ctx, core, op)
    row_loop(out, regs, rows, unit_pixels(ctx, op), [ctx.st.pixel_step(x)[1]], body, period, node=node,
             receive=receives, token=tmp)
    out_ptr = (ctx.st.buffer(yout).bases[core[0]] + ctx.st.origin(yout), *ctx.st.pixel_step(yout))
    fi = ctx.fmt[x][1]
    for c0, n in chunks:
        out.append(ops.muli(d=acc + c0, a=acc + c0, imm=divisor_coef(h * w), n=n, f=DIV_FRAC, w=64, node=node))
        activation(out, op, acc + c0, n, fi, tmp, node)
        pixel_loop(out, regs, 1, 1, [out_ptr], functools.partial(_store_chunk, ctx, core, op, acc + c0, n, fi, c0),
                   node=node)


def _store_chunk(ctx: Context, core: Core, op: Op, reg: int, n: int, frac: int, c0: int, m: list[MemRef]) -> None:
    """`finish` channels [c0, c0+n) of ``op``'s output from ``reg`` at the pixel ``m[0]``."""
    finish(ctx, core, op.name, op.outputs[0], reg, n, frac, c0, m[0])


def _eltwise(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
             out_ptr: Pointer) -> None:
    """Add, sub (inputs aligned to the larger fraction) or mul (``mul`` with the shift of rule ELTWISE) of one
    or two inputs; a second input broadcast over rows or columns ((C, 1, 1), (C, H, 1), (C, 1, W)) is read with
    pointer step 0 along them."""
    shape = ctx.g.values[op.outputs[0]].shape
    srcs = [_broadcast_ptr(in_ptr(ctx, core[0], i), ctx.g.values[i].shape, shape) for i in op.inputs]
    pixel_loop(ctx.code(core), LoopRegs.of(ctx.hw), oh, ow, srcs + [out_ptr],
               lambda m: _eltwise_pixel(ctx, core, op, a, b, n, c0, m), spatial=len(shape) == 3, node=op.name)


def _eltwise_pixel(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, m: list[MemRef]) -> None:
    """Channels [c0, c0+n) of one pixel of an element-wise op (`_eltwise`); the inputs at ``m[:-1]``, the output
    at ``m[-1]``; a line-buffered input is read with ``peek``."""
    out, node = ctx.code(core), op.name
    kind = op.attrs.get("op", "add")
    if kind == "mul":
        fm, mshift = mul_frac(ctx.fmt[op.inputs[0]][1], ctx.fmt[op.inputs[1]][1], ctx.fmt[op.outputs[0]][1])
    else:
        fm = max(ctx.fmt[i][1] for i in op.inputs)
    for k, i in enumerate(op.inputs):
        reg = a if k == 0 else b
        read = ops.peek if ctx.st.buffer(i).band else ops.load  # a line buffer is read without consuming
        out.append(read(d=reg, src=m[k].shifted(c0), n=n, node=node))
        if kind != "mul" and ctx.fmt[i][1] != fm:
            out.append(ops.rqnt(d=reg, a=reg, n=n, shift=ctx.fmt[i][1] - fm, w=64, node=node))
        if k and kind == "mul":
            out.append(ops.mul(d=a, a=a, b=b, n=n, f=mshift, w=64, node=node))
        elif k:
            out.append((ops.sub if kind == "sub" else ops.add)(d=a, a=a, b=b, n=n, w=64, node=node))
    activation(out, op, a, n, fm, b, node)
    finish(ctx, core, node, op.outputs[0], a, n, fm, c0, m[-1])


def _eltwise_rows(ctx: Context, op: Op) -> None:
    """An element-wise row op reading or writing line buffers (`rowops.row_windows`): one sweep of its output
    rows (`loops.row_loop`), every channel chunk of a pixel before the next pixel, so that each row is read
    and freed once."""
    core = ctx.mapping.vector[op.name]
    _, ow, c = hwc(ctx.g.values[op.outputs[0]].shape)
    chunk = vector_chunk(ctx.g, op, ctx.hw)
    a, b = ctx.hw.data_base, ctx.hw.data_base + chunk

    def body(m: list[MemRef], r: int) -> None:
        for c0 in range(0, c, chunk):
            _eltwise_pixel(ctx, core, op, a, b, min(chunk, c - c0), c0, m)

    rows, period, receives = band_rows(ctx, core, op)
    steps = [ctx.st.pixel_step(v)[1] for v in [*op.inputs, op.outputs[0]]]
    row_loop(ctx.code(core), LoopRegs.of(ctx.hw), rows, unit_pixels(ctx, op), steps, body, period, node=op.name,
             receive=receives,
             rx=eltwise_receive_regs(ctx.g, op, ctx.hw), token=a)


def _broadcast_ptr(p: Pointer, shape: tuple[int, ...], out: tuple[int, ...]) -> Pointer:
    """Pointer ``p`` of an operand of ``shape`` read for each pixel of ``out``: no step along a broadcast axis."""
    if len(shape) != 3 or shape == out:
        return p if shape == out else (p[0], 0, 0)
    return p[0], p[1] if shape[1] == out[1] else 0, p[2] if shape[2] == out[2] else 0


def _affine(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
            out_ptr: Pointer) -> None:
    """x * scale + shift (rule AFFINE): ``mul`` by the Q(32, fs) scale with the rounding shift fx + fs - fm,
    ``add`` of the Q(32, fm) shift, the fused activation in fm, then `finish`. The constants sit in tile memory
    (`CommPlan.consts`: the scales, then the shifts); one per channel, they are loaded into registers once per
    channel chunk; one per element (varying over pixels), a third pointer walks them with the pixels."""
    out, node, x = ctx.code(core), op.name, op.inputs[0]
    q = quantize_affine(ctx.g, op, ctx.fmt)
    base, words = ctx.plan.consts[op.name], q.scale.size
    if c0 == 0:
        ctx.program.data.append(MemInit(core[0], base, np.concatenate([q.scale.reshape(-1), q.shift.reshape(-1)]
                                                                      ).astype(np.int64), SHARED_READERS))
    chunk = b - a
    sreg, treg = b + chunk, b + 2 * chunk
    ptrs = [in_ptr(ctx, core[0], x), out_ptr]
    if q.per_channel:
        out.append(ops.load(d=sreg, src=MemRef(NO_BASE, base + c0), n=n, node=node))
        out.append(ops.load(d=treg, src=MemRef(NO_BASE, base + words + c0), n=n, node=node))
    else:
        _, w, c = hwc(ctx.g.values[x].shape)
        ptrs.append((base, w * c, c))

    def body(m: list[MemRef]) -> None:
        out.append(ops.load(d=a, src=m[0].shifted(c0), n=n, node=node))
        if not q.per_channel:
            out.append(ops.load(d=sreg, src=m[2].shifted(c0), n=n, node=node))
            out.append(ops.load(d=treg, src=m[2].shifted(words + c0), n=n, node=node))
        out.append(ops.mul(d=a, a=a, b=sreg, n=n, f=q.mul_shift, w=64, node=node))
        out.append(ops.add(d=a, a=a, b=treg, n=n, w=64, node=node))
        activation(out, op, a, n, q.frac, b, node)
        finish(ctx, core, node, op.outputs[0], a, n, q.frac, c0, m[1])

    spatial = len(ctx.g.values[op.outputs[0]].shape) == 3
    pixel_loop(out, LoopRegs.of(ctx.hw), oh, ow, ptrs, body, spatial=spatial, node=node)


def emit_pool(ctx: Context, op: Op) -> None:
    """A max or average pool (`_pool`; `_gap_rows` for a global average reading a line buffer)."""
    if ctx.st.buffer(op.inputs[0]).band and global_average(ctx.g, op):  # `plan.line_buffers`
        _gap_rows(ctx, op)
        return
    emit_vector(ctx, op, _pool)


def emit_gap(ctx: Context, op: Op) -> None:
    """A global average (`_gap`; `_gap_rows` when it reads a line buffer)."""
    if ctx.st.buffer(op.inputs[0]).band:  # `plan.line_buffers`
        _gap_rows(ctx, op)
        return
    emit_vector(ctx, op, _gap)


def emit_eltwise(ctx: Context, op: Op) -> None:
    """An element-wise add, sub, mul or copy (`_eltwise`; `_eltwise_rows` when it reads or writes a line
    buffer)."""
    if any(ctx.st.buffer(v).band for v in [*op.inputs, op.outputs[0]]):  # `plan.line_buffers`
        _eltwise_rows(ctx, op)
        return
    emit_vector(ctx, op, _eltwise)


def emit_affine(ctx: Context, op: Op) -> None:
    """A standalone affine op (`_affine`)."""
    emit_vector(ctx, op, _affine)
