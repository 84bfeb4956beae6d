"""Recurrent layers (`ir.Op` kind ``recurrent``): one core holds the stacked [x_t ; h_{t-1}] weight blocks (one
column block, row blocks on its MVMUs) and runs a loop over time steps whose pointer registers walk the input
sequence (and the output sequence), so the program's size does not depend on the sequence length. Per step: load
x_t and requantize h_{t-1} into the MVMU inputs, fire the MVMUs, accumulate the row blocks and the bias, then the
gates on the vector unit (rule RECURRENT), h and c kept in registers across steps; the last state or every h_t is
stored (and sent) like any op's output."""

from __future__ import annotations

import numpy as np

from isa import NO_BASE, Instr, MemInit, MemRef, MvmuImage, ops
from isa.errors import ModelError

from ..ir import Op
from ..quant import LayerPrecision
from ..quant.functional import QuantizedLayer
from ..quant.recurrent import recurrent_constants
from .context import Context
from .epilogue import finish
from .loops import LoopRegs, pixel_loop
from .plan import SHARED_READERS, Core
from .storage import hwc


def recurrent_core(ctx: Context, op: Op) -> Core:
    """The one core running ``op``; ModelError if its blocks need more than one core or column block."""
    lm = ctx.mapping.layers[op.name]
    cores = {b.where for b in lm.blocks}
    if len(cores) != 1 or lm.col_blocks != 1 or lm.replicas != 1:
        raise ModelError(f"recurrent layer '{op.name}': its {op.params['weight'].shape} weights need "
                         f"{len(cores)} cores and {lm.col_blocks} column blocks; a recurrent layer must fit the "
                         f"MVMUs of one core with all its gate columns in one crossbar (4H <= xbar_cols)")
    return next(iter(cores))


def constant_words(op: Op, p: LayerPrecision) -> np.ndarray:
    """The words of the op's constants on its tile: initial h, initial c, one (H each), then the peepholes (3H)."""
    k = recurrent_constants(op, p)
    hid = op.attrs["hidden"]
    parts = [k.init_h, k.init_c, np.full(hid, k.one)] + ([k.peephole.reshape(-1)] if k.peephole is not None else [])
    return np.concatenate(parts).astype(np.int64)


def emit_recurrent(ctx: Context, op: Op, q: QuantizedLayer) -> None:
    """The MVMU images and the time loop of one recurrent layer."""
    lm, p, node = ctx.mapping.layers[op.name], ctx.prec[op.name], op.name
    core = recurrent_core(ctx, op)
    for i, b in enumerate(lm.blocks):
        w = q.weight[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]]
        ctx.program.mvmus.append(MvmuImage(b.tile, b.core, b.mvmu, np.ascontiguousarray(w), p.w_bits, node,
                                           p.w_enc, lm.layout(i)))
    hw, out, a = ctx.hw, ctx.code(core), op.attrs
    hid, cols = a["hidden"], q.weight.shape[1]
    words = constant_words(op, p)
    consts = ctx.plan.consts[node]
    ctx.program.data.append(MemInit(core[0], consts, words, SHARED_READERS))
    r = _Regs(hw.data_base, cols, hid)
    if q.bias is not None:
        addr = ctx.plan.bias[(node, core, 0)]
        ctx.program.data.append(MemInit(core[0], addr, q.bias.astype(np.int64), SHARED_READERS))
        out.append(ops.load(d=r.bias, src=MemRef(NO_BASE, addr), n=cols, node=node))
    out.append(ops.load(d=r.h, src=MemRef(NO_BASE, consts), n=len(words), node=node))  # h, c, one, peepholes
    xin, yout = op.inputs[0], op.outputs[0]
    steps, chans = a["steps"], hwc(ctx.g.values[xin].shape)[1]
    first, step = (steps - 1, -1) if a["reverse"] else (0, 1)
    x0 = ctx.st.buffer(xin).bases[core[0]] + ctx.st.origin(xin)
    ptrs = [(x0 + first, 0, step)]
    seq = a["out"] == "seq"
    if seq:
        if ctx.plan.sends.get((yout, core, 0)):
            raise ModelError(f"recurrent layer '{node}': its output sequence is read on another tile; only its "
                             f"last state can be sent (place its readers on its tile)")
        ptrs.append((ctx.st.buffer(yout).bases[core[0]] + ctx.st.origin(yout) + first, 0, step))
    x_pix, y_pix = ctx.st.pixel_step(xin)[1], ctx.st.pixel_step(yout)[1]
    blocks = list(lm.blocks)

    def body(m: list[MemRef]) -> None:
        for b in blocks:
            for row in range(b.rows[0], min(b.rows[1], chans)):  # x_t: one word per channel
                out.append(ops.load(d=hw.mvmu_in(b.mvmu) + row - b.rows[0], src=m[0].shifted(row * x_pix), n=1,
                                    node=node))
            lo, hi = max(b.rows[0], chans), b.rows[1]
            if hi > lo:  # h_{t-1} requantized into the MVM input format
                out.append(ops.rqnt(d=hw.mvmu_in(b.mvmu) + lo - b.rows[0], a=r.h + lo - chans, n=hi - lo,
                                    shift=p.acc_frac - p.in_frac, w=p.in_bits, node=node))
        out.append(ops.mvm(mask=sum(1 << b.mvmu for b in blocks), ibits=p.in_bits, adc=p.adc_bits,
                           shift=p.mvm_shift, obits=p.acc_bits, enc=int(p.in_enc == "csd"), skip=p.skip, node=node))
        acc = hw.mvmu_out(blocks[0].mvmu)
        for b in blocks[1:]:
            out.append(ops.add(d=acc, a=acc, b=hw.mvmu_out(b.mvmu), n=cols, w=p.acc_bits, node=node))
        if q.bias is not None:
            out.append(ops.add(d=acc, a=acc, b=r.bias, n=cols, w=p.acc_bits, node=node))
        _gates(out, op, p, r, acc, node)
        if seq:
            _store_strided(ctx, out, r, r.h, m[1], y_pix, p, yout, node)

    pixel_loop(out, LoopRegs.of(hw), 1, steps, ptrs, body, node=node)
    if seq:
        return
    state = r.h if a["out"] == "h" else r.c
    at = MemRef(NO_BASE, ctx.st.buffer(yout).bases[core[0]] + ctx.st.origin(yout))
    if y_pix == 1:
        finish(ctx, core, node, yout, state, hid, p.acc_frac, 0, at, p.acc_bits)
    elif ctx.plan.sends.get((yout, core, 0)):
        raise ModelError(f"recurrent layer '{node}': its last state is part of a concat read on another tile "
                         f"(not supported: place its readers on its tile)")
    else:  # one direction's state inside the directions' concat: its words are interleaved
        _store_strided(ctx, out, r, state, at, y_pix, p, yout, node)


def _store_strided(ctx: Context, out: list[Instr], r: "_Regs", reg: int, at: MemRef, pix: int, p: LayerPrecision,
                   value: str, node: str) -> None:
    """Requantize H words at ``reg`` to ``value``'s format and store word j at ``at`` + j * pix."""
    bits, frac = ctx.fmt[value]
    hid = r.t2 - r.t1
    out.append(ops.rqnt(d=r.t1, a=reg, n=hid, shift=p.acc_frac - frac, w=bits, node=node))
    out.extend(ops.store(dst=at.shifted(j * pix), a=r.t1 + j, n=1, count=SHARED_READERS, node=node)
               for j in range(hid))


class _Regs:
    """Data registers of a recurrent core: bias (columns), then h, c, one, peepholes (3H) in the order of
    `constant_words`, then two temporaries of H words."""

    def __init__(self, base: int, cols: int, hid: int) -> None:
        self.bias = base
        self.h = base + cols
        self.c = self.h + hid
        self.one = self.c + hid
        self.peep = self.one + hid
        self.t1 = self.peep + 3 * hid
        self.t2 = self.t1 + hid


def _gates(out: list[Instr], op: Op, p: LayerPrecision, r: _Regs, acc: int, node: str) -> None:
    """Rule RECURRENT's step 2 and 3 on the accumulated pre-activations at ``acc``."""
    a, hid, ba, fa = op.attrs, op.attrs["hidden"], p.acc_bits, p.acc_frac
    k = recurrent_constants(op, p)
    f_act, *rest = a["acts"]

    def act(fn: str, reg: int) -> None:
        if fn == "relu":
            out.append(ops.relu(d=reg, a=reg, n=hid, node=node))
        else:
            out.append((ops.sig if fn == "sigmoid" else ops.tanh)(d=reg, a=reg, n=hid, f=fa, node=node))

    def bound(reg: int) -> None:
        if k.clip is not None:
            out.extend([ops.maxi(d=reg, a=reg, imm=-k.clip, n=hid, node=node),
                        ops.mini(d=reg, a=reg, imm=k.clip, n=hid, node=node)])

    def mul(d: int, x: int, y: int) -> None:
        out.append(ops.mul(d=d, a=x, b=y, n=hid, f=fa, w=ba, node=node))

    def add(d: int, x: int, y: int) -> None:
        out.append(ops.add(d=d, a=x, b=y, n=hid, w=ba, node=node))

    def peep(reg: int, which: int) -> None:
        if k.peephole is not None:
            mul(r.t1, r.peep + which * hid, r.c)
            add(reg, reg, r.t1)
        bound(reg)

    g = [acc + i * hid for i in range(4)]
    if a["cell"] == "lstm":
        ri, ro, rf, rg = g
        peep(ri, 0)
        act(f_act, ri)
        if a["input_forget"]:
            out.append(ops.sub(d=rf, a=r.one, b=ri, n=hid, w=ba, node=node))
        else:
            peep(rf, 2)
            act(f_act, rf)
        bound(rg)
        act(rest[0], rg)
        mul(r.t1, rf, r.c)
        mul(r.t2, ri, rg)
        add(r.c, r.t1, r.t2)
        peep(ro, 1)
        act(f_act, ro)
        out.append(ops.copy(d=r.t1, a=r.c, n=hid, node=node))
        act(rest[1], r.t1)
        mul(r.h, ro, r.t1)
    elif a["cell"] == "gru":
        rz, rr, rnx, rnh = g
        for reg in (rz, rr):
            bound(reg)
            act(f_act, reg)
        mul(r.t1, rr, rnh)
        add(r.t1, rnx, r.t1)
        bound(r.t1)
        act(rest[0], r.t1)
        out.append(ops.sub(d=r.t2, a=r.h, b=r.t1, n=hid, w=ba, node=node))
        mul(r.t2, rz, r.t2)
        add(r.h, r.t1, r.t2)
    else:
        bound(acc)
        act(f_act, acc)
        out.append(ops.copy(d=r.h, a=acc, n=hid, node=node))
