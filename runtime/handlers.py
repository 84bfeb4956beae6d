"""One handler per instruction: the executable definition of the ISA (docs/semantics.md is the prose one).

A handler is ``fn(core, operands, lat)`` registered with ``@handler(ops.Add)``: ``operands`` is the instruction's
typed record (`isa.ops`), read by field name, or -- for instructions with a load-time ``@decoder`` (mvm, send) --
the plan the decoder built from it once. Operands are checked at load time by their kinds
(`isa.operands.OperandKind.fault`), so handlers index registers and memory without further checks. ``lat`` is the
instruction's latency in cycles. A handler returns None when the instruction completed, ``HALT`` to stop the core,
or a wait tuple (nothing changed) when it must block: ``("valid" | "invalid", tile, addr, n)`` or
``("msg", src, dst, ch)``. A handler that waited moves ``core.clock`` to the time the condition became true; the
scheduler then adds ``lat``. Faults raise `Fault`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np

from isa import BY_MNEMONIC, NO_BASE, HardwareConfig, Instr, MemRef
from isa import numerics as nx
from isa import ops

from isa.costs import port_hops, transit_cycles
from .devices import fire_devices
from .mvm import LazyStack, MvmStack
from .state import I64, CoreState, Fault, MvmuKernel

Wait = tuple[str, int, int, int]  # ("valid" | "invalid", tile, addr, n), ("msg", src, dst, ch), or HALT
Handler = Callable[[CoreState, Any, int], Wait | None]  # Any: the record or plan type the registry erases
Decoder = Callable[[Any, "DecodeContext"], object]
_R = TypeVar("_R", bound=Instr)

HANDLERS: dict[str, Handler] = {}
DECODERS: dict[str, Decoder] = {}
HALT: Wait = ("halt", -1, -1, -1)  # compared by identity


def handler(record: type[_R]) -> Callable[[Callable[[CoreState, Any, int], Wait | None]], Handler]:
    """Register the handler of instruction ``record`` (a record class of `isa.ops` or `isa.define_instruction`)."""
    if record.op not in BY_MNEMONIC:
        raise AssertionError(f"handler for unknown instruction {record.op!r}")

    def register(fn: Handler) -> Handler:
        HANDLERS[record.op] = fn
        return fn

    return register


def decoder(record: type[_R]) -> Callable[[Callable[[Any, "DecodeContext"], object]], Decoder]:
    """Register a load-time decoder for ``record``: it turns the checked record into what the handler receives."""

    def register(fn: Decoder) -> Decoder:
        DECODERS[record.op] = fn
        return fn

    return register


class DecodeContext:
    """What decoding may look at: hardware, the core's position, its MVMU kernels and code length."""

    def __init__(self, hw: HardwareConfig, tile: int, core: int, kernels: dict[int, MvmuKernel], n_code: int):
        self.hw, self.tile, self.core, self.kernels, self.n_code = hw, tile, core, kernels, n_code
        self.stacks: dict[tuple[Any, ...], MvmStack] = {}  # the core's MVM stacks, shared by equal mvms


def check_operands(instr: Instr, ctx: DecodeContext) -> None:
    """Fault unless every operand can execute here: register operands span ``n`` words (1 without an ``n``
    field) inside the register file, memory bases are registers, branch targets lie in the code."""
    spec = instr.spec
    n = int(getattr(instr, "n", 1))
    if n < 1:
        raise Fault(f"vector length n={n} must be positive")
    for f in spec.fields:
        problem = f.operand.fault(f, getattr(instr, f.name), n, ctx.hw, ctx.n_code)
        if problem:
            raise Fault(problem)


def decode(instr: Instr, ctx: DecodeContext) -> object:
    """Check ``instr`` and return what its handler receives: its decoder's plan, or the record itself."""
    check_operands(instr, ctx)
    special = DECODERS.get(instr.op)
    return instr if special is None else special(instr, ctx)


def _addr(c: CoreState, m: MemRef, n: int) -> int:
    addr = m.off if m.base == NO_BASE else int(c.regs[m.base, 0]) + m.off
    c.mem.check(addr, n, c.tile)
    return addr


# ---- crossbar -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MvmPlan:
    """An mvm decoded at load time: its record, its digit significances, the output spans of its idle MVMUs
    (no crossbar: they output zeros) and the stack of the others (`runtime.mvm`, built on the first firing)."""

    instr: ops.Mvm
    sig: np.ndarray
    idle: tuple[slice, ...]
    stack: LazyStack | None


@decoder(ops.Mvm)
def _decode_mvm(i: ops.Mvm, ctx: DecodeContext) -> MvmPlan:
    hw = ctx.hw
    if i.mask >> hw.mvmus_per_core:
        raise Fault(f"mvm mask {i.mask:#b} selects an MVMU >= {hw.mvmus_per_core} (MVMUs per core)")
    live, idle, exact = [], [], True
    for k in range(hw.mvmus_per_core):
        if not i.mask >> k & 1:
            continue
        kern = ctx.kernels.get(k)
        if kern is None:
            raise Fault(f"mvm fires MVMU {k} of tile {ctx.tile} core {ctx.core}, which has no programmed image")
        if kern.idle:
            idle.append(slice(hw.mvmu_out(k), hw.mvmu_out(k) + kern.cols))
            continue
        live.append(kern)
        skips = nx.skipped(i.ibits, kern.slice_ids, hw.cell_bits, i.skip)
        exact = exact and not skips.any() and kern.never_clips(i.adc, i.enc) and kern.product_exact_in_f64(i.ibits)
    sig = nx.input_digits(np.zeros(0, dtype=I64), i.ibits, "csd" if i.enc else "twos")[1]  # digit significances
    stack = LazyStack(i, live, hw, exact, ctx.stacks) if live else None
    return MvmPlan(i, sig, tuple(idle), stack)


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement value of the low ``bits`` bits (what the digit stream represents); a new array."""
    sb = I64(1 << (bits - 1))
    out: np.ndarray = x & I64((1 << bits) - 1)
    out ^= sb
    out -= sb
    return out


_SAT = {b: (I64(nx.qmin(b)), I64(nx.qmax(b))) for b in range(1, 64)}


def _requantize_owned(x: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """`numerics.requantize` of an array nothing else holds, in place (the same int64 arithmetic)."""
    if shift < 0:
        return nx.requantize(x, shift, bits)
    if shift > 0:
        x += I64(1 << (shift - 1))
        x >>= I64(shift)
    if bits < 64:
        lo, hi = _SAT[bits]
        np.maximum(x, lo, out=x)
        np.minimum(x, hi, out=x)
    return x


@handler(ops.Mvm)
def _mvm(c: CoreState, p: MvmPlan, lat: int) -> None:
    """Fire the MVMUs (one stacked evaluation, `runtime.mvm`), then tell the core's cost listener the input
    digits they converted."""
    i, regs, meter = p.instr, c.regs, c.meter
    for out in p.idle:  # no crossbar: nothing is driven or converted, the outputs are zero
        regs[out] = 0
    if p.stack is None:
        return
    st = p.stack.get()
    x = _wrap(regs[st.gather], i.ibits)
    if c.devices is not None:  # opt-in non-ideal devices: the one hook (runtime/devices.py)
        res = nx.requantize(fire_devices(c.devices, st, x, i, p.sig), i.shift, i.obits)
    else:
        res = _requantize_owned(st.fire(x, i, p.sig), i.shift, i.obits)  # (K, C, B)
    if st.scatter is not None:
        regs[st.scatter] = res.reshape(-1, res.shape[2])
    else:
        for j, out in enumerate(st.outs):
            regs[out] = res[j, :st.ncols[j]]
    if meter is not None:
        if i.enc:  # DAC pulses per row (`numerics.nonzero_digits`, summed over the lanes)
            nz = nx.nonzero_digits(x, i.ibits, "csd").sum(axis=1)
        else:  # the popcounts summed as int64 straight from their uint8 counts
            nz = np.bitwise_count(x & I64((1 << i.ibits) - 1)).sum(axis=1, dtype=I64)
        levels = int(st.gsum @ nz) if meter.counts_levels else 0
        meter.fired(c.pc - 1, st.units, i.adc, int(st.rowmask @ nz), levels, c.batch or x.shape[1])


# ---- vector ALU ------------------------------------------------------------------------------------------------
def _v(reg: int, n: int) -> slice:
    """The n-word register span starting at ``reg``."""
    return slice(reg, reg + n)


def _saturate_in_place(x: np.ndarray, bits: int) -> None:
    """`numerics.saturate` of int64 ``x`` written back into it (a register span: ufuncs handle overlap)."""
    if bits < 64:
        lo, hi = _SAT[bits]
        np.maximum(x, lo, out=x)
        np.minimum(x, hi, out=x)


@handler(ops.Add)
def _add(c: CoreState, i: ops.Add, lat: int) -> None:
    r = c.regs
    d = r[i.d:i.d + i.n]
    np.add(r[i.a:i.a + i.n], r[i.b:i.b + i.n], out=d)
    _saturate_in_place(d, i.w)


@handler(ops.Sub)
def _sub(c: CoreState, i: ops.Sub, lat: int) -> None:
    r = c.regs
    d = r[i.d:i.d + i.n]
    np.subtract(r[i.a:i.a + i.n], r[i.b:i.b + i.n], out=d)
    _saturate_in_place(d, i.w)


@handler(ops.Mul)
def _mul(c: CoreState, i: ops.Mul, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = nx.mul_q(r[_v(i.a, i.n)], r[_v(i.b, i.n)], i.f, i.w)


@handler(ops.Min)
def _min(c: CoreState, i: ops.Min, lat: int) -> None:
    r = c.regs
    np.minimum(r[i.a:i.a + i.n], r[i.b:i.b + i.n], out=r[i.d:i.d + i.n])


@handler(ops.Max)
def _max(c: CoreState, i: ops.Max, lat: int) -> None:
    r = c.regs
    np.maximum(r[i.a:i.a + i.n], r[i.b:i.b + i.n], out=r[i.d:i.d + i.n])


@handler(ops.Addi)
def _addi(c: CoreState, i: ops.Addi, lat: int) -> None:
    r = c.regs
    d = r[i.d:i.d + i.n]
    np.add(r[i.a:i.a + i.n], I64(i.imm), out=d)
    _saturate_in_place(d, i.w)


@handler(ops.Muli)
def _muli(c: CoreState, i: ops.Muli, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = nx.mul_q(r[_v(i.a, i.n)], I64(i.imm), i.f, i.w)


@handler(ops.Mini)
def _mini(c: CoreState, i: ops.Mini, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = np.minimum(r[_v(i.a, i.n)], I64(i.imm))


@handler(ops.Maxi)
def _maxi(c: CoreState, i: ops.Maxi, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = np.maximum(r[_v(i.a, i.n)], I64(i.imm))


@handler(ops.Shli)
def _shli(c: CoreState, i: ops.Shli, lat: int) -> None:
    r = c.regs
    lim = I64(1 << (63 - i.sh))  # pre-clip so the shift cannot wrap; anything clipped saturates anyway (w < 64)
    r[_v(i.d, i.n)] = nx.saturate(np.minimum(np.maximum(r[_v(i.a, i.n)], -lim), lim - 1) << I64(i.sh), i.w)


@handler(ops.Shri)
def _shri(c: CoreState, i: ops.Shri, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = nx.rshift_round(r[_v(i.a, i.n)], i.sh)


@handler(ops.Relu)
def _relu(c: CoreState, i: ops.Relu, lat: int) -> None:
    r = c.regs
    np.maximum(r[i.a:i.a + i.n], I64(0), out=r[i.d:i.d + i.n])


@handler(ops.Sig)
def _sig(c: CoreState, i: ops.Sig, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = nx.sigmoid_q(r[_v(i.a, i.n)], i.f)


@handler(ops.Tanh)
def _tanh(c: CoreState, i: ops.Tanh, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = nx.tanh_q(r[_v(i.a, i.n)], i.f)


@handler(ops.Rqnt)
def _rqnt(c: CoreState, i: ops.Rqnt, lat: int) -> None:
    r = c.regs
    if i.shift < 0:
        r[_v(i.d, i.n)] = nx.requantize(r[_v(i.a, i.n)], i.shift, i.w)
        return
    d = r[i.d:i.d + i.n]
    if i.shift > 0:  # rshift_round: (x + 2^(s-1)) >> s
        np.add(r[i.a:i.a + i.n], I64(1 << (i.shift - 1)), out=d)
        np.right_shift(d, I64(i.shift), out=d)
    elif i.d != i.a:
        d[...] = r[i.a:i.a + i.n]
    _saturate_in_place(d, i.w)


# ---- moves and scalar integer ops ------------------------------------------------------------------------------
@handler(ops.Set)
def _set(c: CoreState, i: ops.Set, lat: int) -> None:
    c.regs[i.d] = i.imm


@handler(ops.Copy)
def _copy(c: CoreState, i: ops.Copy, lat: int) -> None:
    r = c.regs
    r[_v(i.d, i.n)] = r[_v(i.a, i.n)].copy()


@handler(ops.Iadd)
def _iadd(c: CoreState, i: ops.Iadd, lat: int) -> None:
    r = c.regs
    r[i.d] = r[i.a] + r[i.b]


@handler(ops.Iaddi)
def _iaddi(c: CoreState, i: ops.Iaddi, lat: int) -> None:
    r = c.regs
    r[i.d] = r[i.a] + I64(i.imm)


@handler(ops.Isub)
def _isub(c: CoreState, i: ops.Isub, lat: int) -> None:
    r = c.regs
    r[i.d] = r[i.a] - r[i.b]


@handler(ops.Imul)
def _imul(c: CoreState, i: ops.Imul, lat: int) -> None:
    r = c.regs
    r[i.d] = r[i.a] * r[i.b]


# ---- tile memory -----------------------------------------------------------------------------------------------
@handler(ops.Load)
def _load(c: CoreState, i: ops.Load, lat: int) -> Wait | None:
    n = i.n
    addr, mem = _addr(c, i.src, n), c.mem
    if not mem.valid[addr:addr + n].all():
        return ("valid", c.tile, addr, n)
    c.clock = start = max(c.clock, int(mem.time[addr:addr + n].max()))
    c.regs[_v(i.d, n)] = mem.values[addr:addr + n]
    mem.consume(addr, n, start + lat)
    c.epoch[c.tile] += 1
    return None


@handler(ops.Store)
def _store(c: CoreState, i: ops.Store, lat: int) -> Wait | None:
    n = i.n
    addr, mem = _addr(c, i.dst, n), c.mem
    if mem.valid[addr:addr + n].any():
        return ("invalid", c.tile, addr, n)
    c.clock = start = max(c.clock, int(mem.time[addr:addr + n].max()))
    mem.write(addr, c.regs[_v(i.a, n)], i.count, start + lat)
    c.epoch[c.tile] += 1
    return None


@handler(ops.Peek)
def _peek(c: CoreState, i: ops.Peek, lat: int) -> Wait | None:
    n = i.n
    addr, mem = _addr(c, i.src, n), c.mem
    if not mem.valid[addr:addr + n].all():
        return ("valid", c.tile, addr, n)
    c.clock = max(c.clock, int(mem.time[addr:addr + n].max()))
    c.regs[_v(i.d, n)] = mem.values[addr:addr + n]
    return None


@handler(ops.Free)
def _free(c: CoreState, i: ops.Free, lat: int) -> Wait | None:
    n = i.n
    addr, mem = _addr(c, i.addr, n), c.mem
    if not mem.valid[addr:addr + n].all():
        return ("valid", c.tile, addr, n)
    c.clock = start = max(c.clock, int(mem.time[addr:addr + n].max()))
    mem.consume(addr, n, start + lat)
    c.epoch[c.tile] += 1
    return None


# ---- network ---------------------------------------------------------------------------------------------------
def _check_tile(hw: HardwareConfig, tile: int) -> None:
    if not 0 <= tile < hw.tiles:
        raise Fault(f"tile {tile} outside the chip [0, {hw.tiles}) and not the host port (tile {hw.port_tile})")


@dataclass(frozen=True)
class SendPlan:
    """A send decoded at load time: its record and the cycles its message spends on the network."""

    instr: ops.Send
    transit: int


@decoder(ops.Send)
def _decode_send(i: ops.Send, ctx: DecodeContext) -> SendPlan:
    if i.tile == ctx.hw.port_tile:  # to the host through the port (`isa.inport`)
        return SendPlan(i, port_hops(ctx.hw, ctx.tile) * ctx.hw.costs.hop_cycles)
    _check_tile(ctx.hw, i.tile)
    return SendPlan(i, transit_cycles(ctx.hw, ctx.tile, i.tile))


@decoder(ops.Recv)
def _decode_recv(i: ops.Recv, ctx: DecodeContext) -> ops.Recv:
    if i.tile != ctx.hw.port_tile:  # a recv may name the input port (`isa.inport`)
        _check_tile(ctx.hw, i.tile)
    return i


@handler(ops.Send)
def _send(c: CoreState, p: SendPlan, lat: int) -> Wait | None:
    i, n = p.instr, p.instr.n
    addr, mem = _addr(c, i.src, n), c.mem
    if not mem.valid[addr:addr + n].all():
        return ("valid", c.tile, addr, n)
    c.clock = start = max(c.clock, int(mem.time[addr:addr + n].max()))
    vals = mem.values[addr:addr + n].copy()
    mem.consume(addr, n, start + lat)  # after the copy: consume does not copy
    q = c.fifos.get((c.tile, i.tile, i.ch))
    if q is None:
        q = c.fifos[(c.tile, i.tile, i.ch)] = deque()
    q.append((start + lat + p.transit, vals))
    c.epoch[c.tile] += 1
    if i.tile < len(c.epoch):  # not the port: its tile may now receive
        c.epoch[i.tile] += 1
    return None


@handler(ops.Recv)
def _recv(c: CoreState, i: ops.Recv, lat: int) -> Wait | None:
    n, tile, ch = i.n, i.tile, i.ch
    q = c.fifos.get((tile, c.tile, ch))
    if not q:
        return ("msg", tile, c.tile, ch)
    addr, mem = _addr(c, i.dst, n), c.mem
    arrival, vals = q[0]
    if len(vals) != n:
        raise Fault(f"message of {len(vals)} words on channel ({tile} -> {c.tile}, ch {ch}), recv expects n={n}")
    if mem.valid[addr:addr + n].any():
        return ("invalid", c.tile, addr, n)
    q.popleft()
    c.clock = start = max(c.clock, arrival, int(mem.time[addr:addr + n].max()))
    mem.write(addr, vals, i.count, start + lat)
    c.epoch[c.tile] += 1
    return None


# ---- control ---------------------------------------------------------------------------------------------------
@handler(ops.Jmp)
def _jmp(c: CoreState, i: ops.Jmp, lat: int) -> None:
    c.pc = i.target


@handler(ops.Beq)
def _beq(c: CoreState, i: ops.Beq, lat: int) -> None:
    r = c.regs
    if r[i.a, 0] == r[i.b, 0]:
        c.pc = i.target


@handler(ops.Bne)
def _bne(c: CoreState, i: ops.Bne, lat: int) -> None:
    r = c.regs
    if r[i.a, 0] != r[i.b, 0]:
        c.pc = i.target


@handler(ops.Blt)
def _blt(c: CoreState, i: ops.Blt, lat: int) -> None:
    r = c.regs
    if r[i.a, 0] < r[i.b, 0]:
        c.pc = i.target


@handler(ops.Halt)
def _halt(c: CoreState, i: ops.Halt, lat: int) -> Wait:
    return HALT


def fault_handler(c: CoreState, reason: str, lat: int) -> Wait | None:
    """Stands in for an instruction whose operands failed the load-time checks: faults when executed."""
    raise Fault(reason)


from .programming import decode_prog, run_prog  # noqa: E402 -- reprogramming lives in its own module

DECODERS[ops.Prog.op], HANDLERS[ops.Prog.op] = decode_prog, run_prog

_missing = sorted(set(BY_MNEMONIC) - set(HANDLERS))
if _missing:
    raise AssertionError(f"instructions without a handler: {_missing}")
