"""Recurrent layers (`ir.Op` kind ``recurrent``): the stacked [x_t ; h_{t-1}] weight blocks placed like any
crossbar layer's (one or more cores and tiles; column block c holds the gate columns of units U_c, rule
RECURRENT), and on every core holding blocks a loop over the time steps whose pointer registers walk the input
sequence, the state sequence S and the output sequence, so the program's size does not depend on T.

Per step i (time t = i, or T-1-i for ``reverse``) each core loads x_t and h_{t-1} = S[i] (every tile holding
blocks keeps a copy of S; S[0] is the initial state) into its MVMUs' inputs and fires them; a block away from its
column block's owner hands its partial sum over (`crossbar._hand_over`); the owner adds the partial sums and the
bias, runs the gates of its units on the vector unit (h and c in its registers), stores h_t requantized to the
MVM input format into S[i+1] and sends it to the other tiles, where the layer's first core on that tile receives
it at the end of its own step. A GRU with ``linear_before_reset=0`` drives its crossbars twice per
step: after the first drive the owners compute z and r and share rqnt(r * h_{t-1}) through RS (T H words after
S) as they share h_t, every core loads it into its MVMUs' h rows and fires them again, and the owners finish the
candidate from the second drive's R_h columns. The output (every h_t, or the last h or c) is stored like any
op's; a sequence read by a stacked layer on another tile in the same time order is sent every step, one word per
unit, and received inside that layer's loop (`stepped`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from isa import NO_BASE, Instr, MemInit, MemRef, MvmuImage, ops
from isa.errors import ModelError

from ..ir import Op
from ..mapping import Block
from ..quant import LayerPrecision
from ..quant.functional import QuantizedLayer
from ..quant.recurrent import UNITS_PER_BLOCK, drives, recurrent_constants, unit_blocks
from .context import Context
from .crossbar import _hand_over, runs, sum_partials
from .epilogue import finish
from .loops import LOOP_REGS, LoopRegs, pixel_loop
from .plan import SHARED_READERS, Core, Stream, cores_of
from .storage import hwc


@dataclass
class RecurrentPlan:
    """Per tile holding blocks of the layer: the state sequence S ((T + 1) x H words) and the constants (6H
    words: initial h and c, one, peepholes); per (column block, destination tile) the channel its owner sends
    h_t on; per tile the core receiving the other tiles' slices."""

    state: dict[int, int] = field(default_factory=dict)
    consts: dict[int, int] = field(default_factory=dict)
    channels: dict[tuple[int, int], int] = field(default_factory=dict)
    receiver: dict[int, Core] = field(default_factory=dict)


def plan_recurrent(op: Op, lm: object, take: object, alloc: object) -> RecurrentPlan:
    """Allocate S and the constants on every tile of the layer (``alloc(tile, words, what)``) and a channel per
    (column block, other tile) (``take(src, dst)``)."""
    blocks: list[Block] = lm.blocks  # type: ignore[attr-defined]
    hid, steps = int(op.attrs["hidden"]), int(op.attrs["steps"])
    rp = RecurrentPlan()
    for b in blocks:
        if b.tile not in rp.state:
            words = (steps + 1 + (steps if drives(op) == 2 else 0)) * hid  # S, then RS (a second drive's inputs)
            rp.state[b.tile] = alloc(b.tile, words, f"state sequence of '{op.name}'")  # type: ignore
            rp.consts[b.tile] = alloc(b.tile, 6 * hid, f"constants of '{op.name}'")  # type: ignore
            rp.receiver[b.tile] = b.where
    for c in sorted({b.c for b in blocks}):
        owner = lm.owner(c)  # type: ignore[attr-defined]
        for t in sorted(rp.state):
            if t != owner[0]:
                rp.channels[(c, t)] = take(owner[0], t)  # type: ignore[operator]
    return rp


def constant_words(op: Op, p: LayerPrecision) -> np.ndarray:
    """The words of the op's constants on its tiles: initial h, initial c, one (H each), then the peepholes i, o,
    f (H each; zeros without peepholes)."""
    k = recurrent_constants(op, p)
    hid = op.attrs["hidden"]
    peep = k.peephole.reshape(-1) if k.peephole is not None else np.zeros(3 * hid, dtype=np.int64)
    return np.concatenate([k.init_h, k.init_c, np.full(hid, k.one), peep]).astype(np.int64)


@dataclass(frozen=True)
class _Units:
    """One column block's units: column block c, units [u0, u0 + n), the owner core and its registers: bias
    (columns), then h, c, one, peepholes (3n) and four temporaries of n words (a partial-sum buffer below)."""

    c: int
    u0: int
    n: int
    owner: Core
    base: int
    cols: int

    @property
    def bias(self) -> int:
        return self.base

    @property
    def h(self) -> int:
        return self.base + self.cols

    @property
    def cell(self) -> int:
        return self.h + self.n

    @property
    def one(self) -> int:
        return self.cell + self.n

    @property
    def peep(self) -> int:
        return self.one + self.n

    @property
    def t1(self) -> int:
        return self.peep + 3 * self.n

    @property
    def t2(self) -> int:
        return self.t1 + self.n

    @property
    def t3(self) -> int:
        return self.t2 + self.n

    @property
    def t4(self) -> int:
        return self.t3 + self.n

    @property
    def end(self) -> int:
        return self.t4 + self.n


def emit_recurrent(ctx: Context, op: Op, q: QuantizedLayer) -> None:
    """The MVMU images and the time loop of every core of one recurrent layer."""
    lm, p, node = ctx.mapping.layers[op.name], ctx.prec[op.name], op.name
    if lm.replicas != 1:
        raise ModelError(f"recurrent layer '{node}': weight replication is not supported")
    for i, b in enumerate(lm.blocks):
        w = q.weight[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]]
        ctx.program.mvmus.append(MvmuImage(b.tile, b.core, b.mvmu, np.ascontiguousarray(w), p.w_bits, node,
                                           p.w_enc, lm.layout(i)))
    units = _unit_blocks(ctx, op, q)
    rp: RecurrentPlan = ctx.plan.recurrent[node]
    words = constant_words(op, p)
    hid = op.attrs["hidden"]
    s0 = nx_rqnt(words[:hid], p)
    for t in rp.state:
        ctx.program.data.append(MemInit(t, rp.consts[t], words, SHARED_READERS))
        ctx.program.data.append(MemInit(t, rp.state[t], s0, SHARED_READERS))  # S[0] = h0 in the input format
    for core in dict.fromkeys(b.where for b in lm.blocks):
        _core(ctx, op, q, core, units, rp)


def nx_rqnt(h: np.ndarray, p: LayerPrecision) -> np.ndarray:
    """h in Q(acc_bits, acc_frac) -> the MVM input format (the ``rqnt`` the owners apply every step)."""
    from isa import numerics as nx

    return nx.requantize(h, p.acc_frac - p.in_frac, p.in_bits).astype(np.int64)


def _unit_blocks(ctx: Context, op: Op, q: QuantizedLayer) -> list[_Units]:
    lm, hid, hw = ctx.mapping.layers[op.name], op.attrs["hidden"], ctx.hw
    gates = q.weight.shape[1] // hid
    spans = unit_blocks(op)
    if lm.col_blocks != len(spans) or any(lm.group(c)[0].cols[1] - lm.group(c)[0].cols[0] != n * gates
                                          for c, (_, n) in enumerate(spans)):
        raise ModelError(f"recurrent layer '{op.name}': its column blocks hold the gates of "
                         f"{UNITS_PER_BLOCK[op.attrs['cell']]} units each, {gates * UNITS_PER_BLOCK[op.attrs['cell']]}"
                         f" columns: the crossbars must be that wide (xbar_cols = {hw.xbar_cols})")
    out: list[_Units] = []
    regs: dict[Core, int] = {}
    for c, (u0, n) in enumerate(spans):
        owner = lm.owner(c)
        base = regs.get(owner, hw.data_base + hw.xbar_cols)  # below: one partial-sum buffer
        u = _Units(c, u0, n, owner, base, n * gates)
        regs[owner] = u.end
        if u.end > hw.data_base + hw.data_regs - LOOP_REGS:
            raise ModelError(f"recurrent layer '{op.name}': core {owner} owns more column blocks than its "
                             f"{hw.data_regs} data registers hold")
        out.append(u)
    return out


def _core(ctx: Context, op: Op, q: QuantizedLayer, core: Core, units: list[_Units], rp: RecurrentPlan) -> None:
    lm, p, node, hw, out = ctx.mapping.layers[op.name], ctx.prec[op.name], op.name, ctx.hw, ctx.code(core)
    a, hid, tile = op.attrs, op.attrs["hidden"], core[0]
    mine = [b for b in lm.blocks if b.where == core]
    owned = [u for u in units if u.owner == core]
    consts = rp.consts[tile]
    for u in owned:
        if q.bias is not None:
            addr = ctx.plan.bias[(node, core, u.c)]
            ctx.program.data.append(MemInit(tile, addr, q.bias[lm.group(u.c)[0].cols[0]:][:u.cols].astype(np.int64),
                                            SHARED_READERS))
            out.append(ops.load(d=u.bias, src=MemRef(NO_BASE, addr), n=u.cols, node=node))
        for k, reg in enumerate((u.h, u.cell, u.one, u.peep, u.peep + u.n, u.peep + 2 * u.n)):
            out.append(ops.load(d=reg, src=MemRef(NO_BASE, consts + k * hid + u.u0), n=u.n, node=node))
    xin, yout = op.inputs[0], op.outputs[0]
    steps, chans = a["steps"], hwc(ctx.g.values[xin].shape)[1]
    first, step = (steps - 1, -1) if a["reverse"] else (0, 1)
    ptrs = [(ctx.st.buffer(xin).bases[tile] + ctx.st.origin(xin) + first, 0, step), (rp.state[tile], 0, hid)]
    seq = a["out"] == "seq"
    x_pix, y_pix = ctx.st.pixel_step(xin)[1], ctx.st.pixel_step(yout)[1]
    strided = ctx.g.values[yout].shape[1:] != (1, 1)  # words y_pix apart: a sequence or a direction's state
    if strided and core == units[0].owner and len({u.owner[0] for u in units}) > 1:
        raise ModelError(f"recurrent layer '{node}': its output {'sequence' if seq else 'state'} would be written "
                         f"from several tiles (its column blocks' owners); supported: its last state alone, or "
                         f"owners on one tile")
    if seq and owned:
        ptrs.append((ctx.st.buffer(yout).bases[tile] + ctx.st.origin(yout) + first, 0, step))
    receiving = [u for u in units if rp.receiver[tile] == core and u.owner[0] != tile]
    inbound = [st for st in ctx.plan.streams if st.value == xin and st.tile == tile and stepped(ctx, st) is op
               and ctx.plan.receiver(ctx.st, xin, tile) == core]
    outbound = [st for st in ctx.plan.sends.get((yout, core, 0), []) if seq and stepped(ctx, st) is not None]
    again = drives(op) == 2
    rs = (steps + 1) * hid  # a second drive's r * h_{t-1} (RS[i]) sits this far after S[i]

    def fire(m: list[MemRef], h_at: int) -> None:
        """Load the MVMUs' inputs (x_t on the first drive; the h rows from S[i], or RS[i] at ``h_at``) and fire."""
        for b in mine:
            if b.idle:
                continue
            offs = np.arange(b.rows[0], min(b.rows[1], chans)) * x_pix  # x_t: channels x_pix words apart
            for off, n, k in runs(offs) if not h_at else []:
                out.append(ops.load(d=hw.mvmu_in(b.mvmu) + k, src=m[0].shifted(off), n=n, node=node))
            lo, hi = max(b.rows[0], chans), b.rows[1]
            if hi > lo:  # already in the MVM input format
                out.append(ops.load(d=hw.mvmu_in(b.mvmu) + lo - b.rows[0], src=m[1].shifted(h_at + lo - chans),
                                    n=hi - lo, node=node))
        out.append(ops.mvm(mask=sum(1 << b.mvmu for b in mine), ibits=p.in_bits, adc=p.adc_bits,
                           shift=p.mvm_shift, obits=p.acc_bits, enc=int(p.in_enc == "csd"), skip=p.skip, node=node))

    def share(m: list[MemRef], u: _Units, at: int) -> None:
        """Store the owner's slice of a sequence (S[i+1] or RS[i], ``at`` past S[i]) from t1 and send it."""
        dst = m[1].shifted(at + u.u0)
        out.append(ops.store(dst=dst, a=u.t1, n=u.n, count=SHARED_READERS, node=node))
        out.extend(ops.send(src=dst, n=u.n, tile=t, ch=rp.channels[(u.c, t)], node=node)
                   for t in sorted(rp.state) if t != tile)

    def collect(m: list[MemRef], at: int) -> None:
        for u in receiving:  # the other tiles' slices of S[i+1] or RS[i]
            out.append(ops.recv(dst=m[1].shifted(at + u.u0), n=u.n, tile=u.owner[0], ch=rp.channels[(u.c, tile)],
                                count=SHARED_READERS, node=node))

    def owners(drive: int, m: list[MemRef]) -> None:
        """Hand partial sums over, or (an owner) sum them and run this drive's part of the gates."""
        for c in dict.fromkeys(b.c for b in mine):
            group = lm.group(c)
            if group[0].where != core:
                _hand_over(ctx, core, node, group)
                continue
            u = units[c]
            acc = hw.mvmu_out(group[0].mvmu)
            sum_partials(ctx, core, node, group, p, hw.data_base)
            alu = _Alu(out, op, p, u.n, node)
            if drive == 0 and q.bias is not None:
                out.append(ops.add(d=acc, a=acc, b=u.bias, n=u.cols, w=p.acc_bits, node=node))
            if drive == 0 and again:
                _gru_reset(alu, u, acc)
                out.append(ops.rqnt(d=u.t1, a=u.t1, n=u.n, shift=p.acc_frac - p.in_frac, w=p.in_bits, node=node))
                share(m, u, rs)
                continue
            if again:
                alu.add(u.t1, u.t4, acc + 3 * u.n)  # a_nx + R_h (r * h_{t-1})
                _candidate(alu, u, u.t3)
            else:
                _gates(alu, u, acc)
            out.append(ops.rqnt(d=u.t1, a=u.h, n=u.n, shift=p.acc_frac - p.in_frac, w=p.in_bits, node=node))
            share(m, u, hid)
            if seq:
                _store_strided(ctx, out, u, u.h, m[2].shifted(u.u0 * y_pix), y_pix, p, yout, node)

    def body(m: list[MemRef]) -> None:
        for st in inbound:  # x_t from the previous layer on another tile, one word per channel
            out.extend(ops.recv(dst=m[0].shifted(j * x_pix), n=1, tile=st.src[0], ch=st.ch, count=SHARED_READERS,
                                node=node) for j in range(chans))
        fire(m, 0)
        owners(0, m)
        if again:
            collect(m, rs)
            fire(m, rs)
            owners(1, m)
        collect(m, hid)
        for st in outbound:  # h_t to the next layer on another tile (each send waits for its word's owner)
            out.extend(ops.send(src=m[2].shifted(j * y_pix), n=1, tile=st.tile, ch=st.ch, node=node)
                       for j in range(hid))

    pixel_loop(out, LoopRegs.of(hw), 1, steps, ptrs, body, node=node)
    if seq:
        _send_strided(ctx, core, yout, node, frozenset(outbound))
        return
    for u in owned:
        state = u.h if a["out"] == "h" else u.cell
        at = MemRef(NO_BASE, ctx.st.buffer(yout).bases[tile] + ctx.st.origin(yout))
        if not strided:
            finish(ctx, core, node, yout, state, u.n, p.acc_frac, u.u0, at, p.acc_bits)
        else:  # one direction's state inside the directions' concat: its words are interleaved
            _store_strided(ctx, out, u, state, at.shifted(u.u0 * y_pix), y_pix, p, yout, node)
    if strided:
        _send_strided(ctx, core, yout, node)


def stepped(ctx: Context, s: Stream) -> Op | None:
    """The recurrent layer that receives stream ``s`` of a sequence ``Y`` step by step inside its time loop (so
    it runs step t while the producer runs step t+1), or None: ``s`` carries the ``Y`` of a recurrent layer (its
    own buffer, no concat view) to a tile whose receiving core runs a recurrent layer reading it as X in the
    same time order. Its producer then sends h_t every step, one word per unit, instead of after its loop."""
    prod, st = ctx.g.producer(s.value), ctx.st
    if prod is None or prod.kind != "recurrent" or prod.attrs["out"] != "seq" or st.root(s.value) != s.value:
        return None
    rcv = ctx.plan.receiver(st, s.value, s.tile)
    for op in ctx.g.consumers(s.value):
        if (op.kind == "recurrent" and op.inputs[0] == s.value and op.attrs["reverse"] == prod.attrs["reverse"]
                and rcv in cores_of(ctx.mapping, op)):
            return op
    return None


def _send_strided(ctx: Context, core: Core, value: str, node: str, skip: frozenset[Stream] = frozenset()) -> None:
    """After the loop, the first owner sends a word-by-word stored output to the tiles reading it, pixel by
    pixel as their receive loops take it (each send waits until every owner on the tile has stored its words);
    not the streams in ``skip``, sent inside the loop (`stepped`)."""
    out, st = ctx.code(core), ctx.st
    h, w, _ = hwc(ctx.g.values[value].shape)
    row, pix = st.pixel_step(value)
    base = st.buffer(value).bases[core[0]] + st.origin(value)
    for s in ctx.plan.sends.get((value, core, 0), []):
        if s in skip:
            continue
        def send(m: list[MemRef], s: Stream = s) -> None:
            out.append(ops.send(src=m[0], n=s.c1 - s.c0, tile=s.tile, ch=s.ch, node=node))

        pixel_loop(out, LoopRegs.of(ctx.hw), h, w, [(base + s.c0, row, pix)], send, node=node)


def _store_strided(ctx: Context, out: list[Instr], u: _Units, reg: int, at: MemRef, pix: int, p: LayerPrecision,
                   value: str, node: str) -> None:
    """Requantize n words at ``reg`` to ``value``'s format and store word j at ``at`` + j * pix."""
    bits, frac = ctx.fmt[value]
    out.append(ops.rqnt(d=u.t1, a=reg, n=u.n, shift=p.acc_frac - frac, w=bits, node=node))
    if pix == 1:
        out.append(ops.store(dst=at, a=u.t1, n=u.n, count=SHARED_READERS, node=node))
        return
    out.extend(ops.store(dst=at.shifted(j * pix), a=u.t1 + j, n=1, count=SHARED_READERS, node=node)
               for j in range(u.n))


class _Alu:
    """The vector instructions of one column block's gates: n words in Q(acc_bits, acc_frac), saturating."""

    def __init__(self, out: list[Instr], op: Op, p: LayerPrecision, n: int, node: str) -> None:
        self.out, self.op, self.p, self.n, self.node = out, op, p, n, node
        self.k = recurrent_constants(op, p)

    def act(self, fn: str, reg: int) -> None:
        """The gate function ``fn`` (rule ACT) in place."""
        n, node = self.n, self.node
        if fn == "relu":
            self.out.append(ops.relu(d=reg, a=reg, n=n, node=node))
        else:
            self.out.append((ops.sig if fn == "sigmoid" else ops.tanh)(d=reg, a=reg, n=n, f=self.p.acc_frac,
                                                                       node=node))

    def bound(self, reg: int) -> None:
        """``clip``: bound an activation's input in place."""
        if self.k.clip is not None:
            self.out.extend([ops.maxi(d=reg, a=reg, imm=-self.k.clip, n=self.n, node=self.node),
                             ops.mini(d=reg, a=reg, imm=self.k.clip, n=self.n, node=self.node)])

    def gate(self, fn: str, reg: int) -> None:
        """A gate: bound, then its function."""
        self.bound(reg)
        self.act(fn, reg)

    def mul(self, d: int, x: int, y: int) -> None:
        """d = mul(x, y) (rule MUL)."""
        self.out.append(ops.mul(d=d, a=x, b=y, n=self.n, f=self.p.acc_frac, w=self.p.acc_bits, node=self.node))

    def add(self, d: int, x: int, y: int) -> None:
        """d = add(x, y)."""
        self.out.append(ops.add(d=d, a=x, b=y, n=self.n, w=self.p.acc_bits, node=self.node))

    def sub(self, d: int, x: int, y: int) -> None:
        """d = sub(x, y)."""
        self.out.append(ops.sub(d=d, a=x, b=y, n=self.n, w=self.p.acc_bits, node=self.node))

    def copy(self, d: int, x: int) -> None:
        """d = x."""
        self.out.append(ops.copy(d=d, a=x, n=self.n, node=self.node))


def _gates(alu: _Alu, u: _Units, acc: int) -> None:
    """Rule RECURRENT's steps 2 and 3 for one column block's n units, pre-activations at ``acc`` (gate-major),
    one drive per step."""
    a, n, k = alu.op.attrs, u.n, alu.k
    f_act, *rest = a["acts"]

    def peep(reg: int, which: int) -> None:
        if k.peephole is not None:
            alu.mul(u.t1, u.peep + which * n, u.cell)
            alu.add(reg, reg, u.t1)
        alu.bound(reg)

    g = [acc + i * n for i in range(4)]
    if a["cell"] == "lstm":
        ri, ro, rf, rg = g
        peep(ri, 0)
        alu.act(f_act, ri)
        if a["input_forget"]:
            alu.sub(rf, u.one, ri)
        else:
            peep(rf, 2)
            alu.act(f_act, rf)
        alu.gate(rest[0], rg)
        alu.mul(u.t1, rf, u.cell)
        alu.mul(u.t2, ri, rg)
        alu.add(u.cell, u.t1, u.t2)
        peep(ro, 1)
        alu.act(f_act, ro)
        alu.copy(u.t1, u.cell)
        alu.act(rest[1], u.t1)
        alu.mul(u.h, ro, u.t1)
    elif a["cell"] == "gru":
        rz, rr, rnx, rnh = g
        for reg in (rz, rr):
            alu.gate(f_act, reg)
        alu.mul(u.t1, rr, rnh)
        alu.add(u.t1, rnx, u.t1)
        _candidate(alu, u, rz)
    else:
        alu.gate(f_act, acc)
        alu.copy(u.h, acc)


def _gru_reset(alu: _Alu, u: _Units, acc: int) -> None:
    """A GRU's first drive (``linear_before_reset=0``): z and r; z and a_nx kept in t3 and t4 (the second drive
    overwrites the MVMU's output), t1 = mul(r, h_{t-1}), the second drive's h rows."""
    n = u.n
    for reg in (acc, acc + n):
        alu.gate(alu.op.attrs["acts"][0], reg)
    alu.copy(u.t3, acc)
    alu.copy(u.t4, acc + 2 * n)
    alu.mul(u.t1, acc + n, u.h)


def _candidate(alu: _Alu, u: _Units, z: int) -> None:
    """A GRU's candidate n = act(t1) and h = add(n, mul(z, sub(h, n)))."""
    alu.gate(alu.op.attrs["acts"][1], u.t1)
    alu.sub(u.t2, u.h, u.t1)
    alu.mul(u.t2, z, u.t2)
    alu.add(u.h, u.t1, u.t2)
