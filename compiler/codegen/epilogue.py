"""What every op's output goes through: its fused activation, requantization to the output tensor's format, the
store into the current pixel and the sends of the stored chunk to the other tiles that hold the tensor."""

from __future__ import annotations

from isa import Instr, MemRef, ops

from ..ir import Op
from ..quant.functional import LEAKY_FRAC, clip_bounds, leaky_coef
from .context import Context
from .plan import Core


def activation(out: list[Instr], op: Op, reg: int, n: int, frac: int, tmp: int, node: str) -> None:
    """The instructions of ``op``'s fused activation on n words at ``reg`` in Q(., frac) (rule ACT)."""
    fn = op.attrs.get("act", "none")
    if fn == "relu":
        out.append(ops.relu(d=reg, a=reg, n=n, node=node))
    elif fn in ("sigmoid", "tanh"):
        act = ops.sig if fn == "sigmoid" else ops.tanh
        out.append(act(d=reg, a=reg, n=n, f=frac, node=node))
    elif fn == "leaky_relu":
        out.append(ops.muli(d=tmp, a=reg, imm=leaky_coef(op.attrs["alpha"]), n=n, f=LEAKY_FRAC, w=64, node=node))
        out.append(ops.max(d=reg, a=reg, b=tmp, n=n, node=node))
    elif fn == "clip":
        lo, hi = clip_bounds(op.attrs, frac)
        out += [ops.maxi(d=reg, a=reg, imm=lo, n=n, node=node), ops.mini(d=reg, a=reg, imm=hi, n=n, node=node)]


def finish(ctx: Context, core: Core, node: str, value: str, reg: int, n: int, frac: int, c0: int, at: MemRef,
           src_bits: int = 64, send: bool = True) -> None:
    """Requantize n words at ``reg`` (Q(src_bits, frac)) to ``value``'s format, store them as channels
    [c0, c0+n) of the pixel at ``at``, and send them on (`CommPlan.sends`; with ``send`` False the caller sends
    them later, in the order receivers take them)."""
    out = ctx.code(core)
    bits, out_frac = ctx.fmt[value]
    if frac != out_frac or src_bits > bits:
        out.append(ops.rqnt(d=reg, a=reg, n=n, shift=frac - out_frac, w=bits, node=node))
    mem = at.shifted(c0)
    out.append(ops.store(dst=mem, a=reg, n=n, count=ctx.plan.store_count(value, core[0]), node=node))
    if send:
        out += [ops.send(src=mem, n=n, tile=s.tile, ch=s.ch, node=node)
                for s in ctx.plan.sends.get((value, core, c0), [])]
