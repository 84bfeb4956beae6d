"""Crossbar layers (dense; conv as windows over its input): MVMU images, and per core a pixel loop that loads the
window rows into the MVMU inputs, fires the MVMUs, and either stores its partial sums for the owner core or, as
owner, accumulates the column block, adds the bias, and finishes (activation, requantize, store, send)."""

from __future__ import annotations

import numpy as np

from isa import NO_BASE, MemInit, MemRef, MvmuImage, ops

from ..ir import Op
from ..mapping import Block
from ..ops import crossbar_kind
from ..quant import LayerPrecision
from ..quant.functional import QuantizedLayer
from .context import Context
from .epilogue import activation, finish
from .bands import BORDER, band_rows, unit_pixels, window_offsets_of
from .loops import LoopRegs, pixel_loop, row_loop
from .plan import PARTIAL_READERS, SHARED_READERS, BlockIndex, Core, Partial, chain_cores
from .storage import hwc


def geometry(ctx: Context, op: Op) -> dict[str, tuple[int, ...]]:
    """Window geometry (the kind's ``geometry``); a dense layer is a window covering its whole input."""
    return crossbar_kind(op).geometry(ctx.g, op)


def window_offsets(ctx: Context, op: Op) -> np.ndarray:
    """Buffer offset of every weight row (window order) from the window origin."""
    geo = geometry(ctx, op)
    (kh, kw), (dh, dw) = geo["kernel"], geo["dilations"]
    row, pix = ctx.st.pixel_step(op.inputs[0])
    c = hwc(ctx.g.values[op.inputs[0]].shape)[2]
    i, j, k = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    offs: np.ndarray = (i * dh * row + j * dw * pix + k).reshape(-1)
    return offs


def runs(offs: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal contiguous runs of ``offs`` as (first offset, length, position in offs)."""
    if len(offs) == 0:
        return []
    breaks = np.flatnonzero(np.diff(offs) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(offs)]])
    return [(int(offs[s]), int(e - s), int(s)) for s, e in zip(starts, ends)]


def window_runs(offs: np.ndarray) -> list[tuple[int, int, int]]:
    """`runs` of a line-buffered window's offsets, with each run of `bands.BORDER` words (kernel rows above or
    below the image) as one run whose offset is `bands.BORDER`."""
    border = offs == BORDER
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(border)) + 1, [len(offs)]])
    out: list[tuple[int, int, int]] = []
    for s, e in zip(cuts[:-1], cuts[1:]):
        if s == e:
            continue
        out += [(BORDER, int(e - s), int(s))] if border[s] else [(o, n, int(s) + k) for o, n, k in runs(offs[s:e])]
    return out


def emit_crossbar(ctx: Context, op: Op, q: QuantizedLayer) -> None:
    """The MVMU images and every core of one crossbar layer (``q``: its integer weights and bias)."""
    lm, p = ctx.mapping.layers[op.name], ctx.prec[op.name]
    for i, b in enumerate(lm.blocks):
        w = q.weight[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]]
        w = w.astype(np.int8 if p.w_bits <= 8 else np.int16 if p.w_bits <= 16 else np.int64)  # as image.npz holds it
        ctx.program.mvmus.append(MvmuImage(b.tile, b.core, b.mvmu, np.ascontiguousarray(w), p.w_bits, op.name,
                                           p.w_enc, lm.layout(i)))
    offs = window_offsets(ctx, op)
    for rep in range(lm.replicas):
        index = BlockIndex([b for b in lm.blocks if b.rep == rep])
        for core in index.by_core:
            _core(ctx, core, op, index, q.bias, p, offs)


def _core(ctx: Context, core: Core, op: Op, index: BlockIndex, bias: np.ndarray | None, p: LayerPrecision,
          offs: np.ndarray) -> None:
    hw, node, tile, out = ctx.hw, op.name, core[0], ctx.code(core)
    blocks, mine = index.blocks, index.by_core[core]
    mine_by_col: dict[int, list[Block]] = {}
    for b in mine:
        mine_by_col.setdefault(b.c, []).append(b)
    bias_regs, data = {}, hw.data_base
    for c in index.owned[core]:
        lo, hi = index.by_col[c][0].cols
        if bias is not None:
            addr = ctx.plan.bias[(node, core, c)]
            ctx.program.data.append(MemInit(tile, addr, bias[lo:hi].astype(np.int64), SHARED_READERS))
            out.append(ops.load(d=data, src=MemRef(NO_BASE, addr), n=hi - lo, node=node))
            bias_regs[c] = data
            data += hi - lo
    geo = geometry(ctx, op)
    xin, yout = op.inputs[0], op.outputs[0]
    oh, ow, _ = hwc(ctx.g.values[yout].shape)
    in_row, in_pix = ctx.st.pixel_step(xin)
    out_row, out_pix = ctx.st.pixel_step(yout)
    start_in = ctx.st.buffer(xin).bases[tile] + ctx.st.origin(xin, geo["pads"][0], geo["pads"][1])
    start_out = ctx.st.buffer(yout).bases.get(tile, 0) + ctx.st.origin(yout)  # only owners store
    h0, h1 = blocks[0].out_rows or (0, oh)  # this replica's band of output rows
    start_in += h0 * geo["strides"][0] * in_row
    start_out += h0 * out_row
    ptrs = [(start_in, geo["strides"][0] * in_row, geo["strides"][1] * in_pix), (start_out, out_row, out_pix)]
    banded = op.kind == "conv" and bool(ctx.st.buffer(xin).band or ctx.st.buffer(yout).band)
    read = ops.peek if ctx.st.buffer(xin).band else ops.load
    row_offs: dict[int, np.ndarray] = {}

    def body(m: list[MemRef], r: int = 0) -> None:
        window = row_offs[r] if banded else offs
        for b in mine:
            for off, n, k in ([] if b.idle else (window_runs if banded else runs)(window[b.rows[0]:b.rows[1]])):
                d = hw.mvmu_in(b.mvmu) + k  # idle: reads nothing; a kernel row in a line buffer's border: zeros
                out.append(ops.sub(d=d, a=d, b=d, n=n, w=64, node=node) if off == BORDER else
                           read(d=d, src=m[0].shifted(off), n=n, node=node))
        out.append(ops.mvm(mask=sum(1 << b.mvmu for b in mine), ibits=p.in_bits, adc=p.adc_bits, shift=p.mvm_shift,
                           obits=p.acc_bits, enc=int(p.in_enc == "csd"), skip=p.skip, node=node))
        for c, held in mine_by_col.items():
            group = index.by_col[c]
            if (node, group[0].rep, c, core) in ctx.plan.links:
                _relay(ctx, core, op, group, held, bias_regs.get(c), p, m[1], data)
            elif group[0].where == core:
                _accumulate(ctx, core, op, group, bias_regs.get(c), p, m[1], data)
            else:
                _hand_over(ctx, core, node, group, held)

    if banded:
        rows, period, receives = band_rows(ctx, core, op)
        row_offs.update(window_offsets_of(ctx, op, rows))
        row_loop(out, LoopRegs.of(hw), rows, unit_pixels(ctx, op), [ptrs[0][2], out_pix], body, period, node=node,
                 receive=receives,
                 token=data)  # the partial-sum buffer: loaded before every use
        return
    pixel_loop(out, LoopRegs.of(hw), h1 - h0, ow, ptrs, body, spatial=crossbar_kind(op).windowed, node=node)


def _relay(ctx: Context, core: Core, op: Op, group: list[Block], held: list[Block], bias_reg: int | None,
           p: LayerPrecision, at: MemRef, tmp: int) -> None:
    """A core of a chained column block (`plan.chain_cores`): add the running sum of the rows before its own
    (none on the owner, the first core) and its blocks' sums, in row order, and pass the sum on; the owner then
    takes the whole sum back from the last core and finishes. The adds are those of `sum_partials`, in the same
    order, so the result is the same integers."""
    out, node, hw = ctx.code(core), op.name, ctx.hw
    n, acc = group[0].cols[1] - group[0].cols[0], hw.mvmu_out(held[0].mvmu)
    key = (node, group[0].rep, group[0].c)
    cores = chain_cores(group)
    k = cores.index(core)
    if k:
        _take(ctx, core, node, ctx.plan.links[key + (cores[k - 1],)], cores[k - 1][0], n, tmp)
        out.append(ops.add(d=acc, a=tmp, b=acc, n=n, w=p.acc_bits, node=node))
    for b in held[1:]:
        out.append(ops.add(d=acc, a=acc, b=hw.mvmu_out(b.mvmu), n=n, w=p.acc_bits, node=node))
    link, nxt = ctx.plan.links[key + (core,)], cores[(k + 1) % len(cores)]
    out.append(ops.store(dst=MemRef(NO_BASE, link.scratch), a=acc, n=n, count=PARTIAL_READERS, node=node))
    if link.remote is not None:
        out.append(ops.send(src=MemRef(NO_BASE, link.scratch), n=n, tile=nxt[0], ch=link.remote[1], node=node))
    if k:
        return
    _take(ctx, core, node, ctx.plan.links[key + (cores[-1],)], cores[-1][0], n, acc)
    if bias_reg is not None:
        out.append(ops.add(d=acc, a=acc, b=bias_reg, n=n, w=p.acc_bits, node=node))
    activation(out, op, acc, n, p.acc_frac, tmp, node)
    finish(ctx, core, node, op.outputs[0], acc, n, p.acc_frac, group[0].cols[0], at, p.acc_bits)


def _take(ctx: Context, core: Core, node: str, link: Partial, src_tile: int, n: int, reg: int) -> None:
    """Load the running sum another core passed by ``link`` into ``reg`` (receiving it first from another tile)."""
    out = ctx.code(core)
    src = MemRef(NO_BASE, link.scratch)
    if link.remote is not None:
        src = MemRef(NO_BASE, link.remote[0])
        out.append(ops.recv(dst=src, n=n, tile=src_tile, ch=link.remote[1], count=PARTIAL_READERS, node=node))
    out.append(ops.load(d=reg, src=src, n=n, node=node))


def _hand_over(ctx: Context, core: Core, node: str, group: list[Block], held: list[Block] | None = None) -> None:
    """A core that holds blocks ``held`` (default: found in ``group``) of a column block (``group``) it does not
    own: store each partial sum for the owner (and send it when the owner is on another tile)."""
    out = ctx.code(core)
    for b in held if held is not None else [b for b in group if b.where == core]:
        n, part = b.cols[1] - b.cols[0], ctx.plan.partials[b]
        scratch = MemRef(NO_BASE, part.scratch)
        out.append(ops.store(dst=scratch, a=ctx.hw.mvmu_out(b.mvmu), n=n, count=PARTIAL_READERS, node=node))
        if part.remote is not None:
            out.append(ops.send(src=scratch, n=n, tile=group[0].tile, ch=part.remote[1], node=node))


def _accumulate(ctx: Context, core: Core, op: Op, group: list[Block], bias_reg: int | None, p: LayerPrecision,
                at: MemRef, tmp: int) -> None:
    """The owner of a column block: add the partial sums of its other row blocks and the bias, then finish."""
    out, node = ctx.code(core), op.name
    lo, hi = group[0].cols
    n, acc = hi - lo, ctx.hw.mvmu_out(group[0].mvmu)
    sum_partials(ctx, core, node, group, p, tmp)
    if bias_reg is not None:
        out.append(ops.add(d=acc, a=acc, b=bias_reg, n=n, w=p.acc_bits, node=node))
    activation(out, op, acc, n, p.acc_frac, tmp, node)
    finish(ctx, core, node, op.outputs[0], acc, n, p.acc_frac, lo, at, p.acc_bits)


def sum_partials(ctx: Context, core: Core, node: str, group: list[Block], p: LayerPrecision, tmp: int) -> None:
    """Add the partial sums of a column block's other row blocks (local MVMUs, scratch words, messages from
    other tiles), in row order, into its owner's first MVMU output (``tmp``: a buffer of the block's width)."""
    out = ctx.code(core)
    lo, hi = group[0].cols
    n, acc = hi - lo, ctx.hw.mvmu_out(group[0].mvmu)
    for b in group[1:]:
        if b.where == core:
            out.append(ops.add(d=acc, a=acc, b=ctx.hw.mvmu_out(b.mvmu), n=n, w=p.acc_bits, node=node))
            continue
        part = ctx.plan.partials[b]
        src = MemRef(NO_BASE, part.scratch)
        if part.remote is not None:
            src = MemRef(NO_BASE, part.remote[0])
            out.append(ops.recv(dst=src, n=n, tile=b.tile, ch=part.remote[1], count=PARTIAL_READERS, node=node))
        out.append(ops.load(d=tmp, src=src, n=n, node=node))
        out.append(ops.add(d=acc, a=acc, b=tmp, n=n, w=p.acc_bits, node=node))
