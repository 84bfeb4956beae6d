"""One handler per instruction: the executable definition of the ISA (docs/semantics.md is the prose one).

A handler is ``fn(core, ops, lat)``: ``ops`` are the instruction's operands decoded once at load time (register
operands as slices of ``n`` words, memory operands as ``(base or None, offset)``), ``lat`` its latency in cycles.
It returns None when the instruction completed, ``HALT`` to stop the core, or a wait tuple (nothing changed) when
it must block: ``("valid" | "invalid", tile, addr, n)`` or ``("msg", src, dst, ch)``. A handler that waited moves
``core.clock`` to the time the condition became true; the scheduler then adds ``lat``. Faults raise `Fault`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import numpy as np

from isa import BY_MNEMONIC, NO_BASE, HardwareConfig, Instr
from isa import numerics as nx

from isa.costs import crossbar_pj_per_level, transit_cycles
from .state import I64, CoreState, Fault, MvmuKernel

Handler = Callable[[CoreState, Any, int], Any]
Decoder = Callable[[Instr, "DecodeContext"], Any]

HANDLERS: dict[str, Handler] = {}
DECODERS: dict[str, Decoder] = {}
HALT = ("halt",)


def handler(mnemonic: str) -> Callable[[Handler], Handler]:
    """Register the handler of ``mnemonic`` (which must be in the instruction table)."""
    if mnemonic not in BY_MNEMONIC:
        raise AssertionError(f"handler for unknown instruction {mnemonic!r}")

    def register(fn: Handler) -> Handler:
        HANDLERS[mnemonic] = fn
        return fn

    return register


def decoder(mnemonic: str) -> Callable[[Decoder], Decoder]:
    """Register a special operand decoder for ``mnemonic`` (default: `decode_generic`)."""

    def register(fn: Decoder) -> Decoder:
        DECODERS[mnemonic] = fn
        return fn

    return register


class DecodeContext:
    """What decoding may look at: hardware, the core's position, its MVMU kernels and code length."""

    def __init__(self, hw: HardwareConfig, tile: int, core: int, kernels: dict[int, MvmuKernel], n_code: int):
        self.hw, self.tile, self.core, self.kernels, self.n_code = hw, tile, core, kernels, n_code


def _reg_range(hw: HardwareConfig, name: str, r: int, n: int) -> None:
    if r < 0 or r + n > hw.core_regs:
        raise Fault(f"register operand {name}: words [{r}, {r + n}) outside the register file [0, {hw.core_regs})")


def decode_generic(instr: Instr, ctx: DecodeContext) -> tuple[Any, ...]:
    """Operands in table order: registers as slices of n words (single ints when the instruction has no ``n``),
    memory operands as (base register or None, offset), labels checked against the code, the rest as ints."""
    spec = instr.spec
    if len(instr.args) != len(spec.fields):
        raise Fault(f"{instr.op} takes {len(spec.fields)} operands, got {len(instr.args)}")
    n = int(instr.arg("n")) if any(f.name == "n" for f in spec.fields) else None  # type: ignore[arg-type]
    if n is not None and n < 1:
        raise Fault(f"vector length n={n} must be positive")
    out: list[Any] = []
    for f, v in zip(spec.fields, instr.args):
        if f.kind == "reg":
            _reg_range(ctx.hw, f.name, int(v), n or 1)  # type: ignore[arg-type]
            out.append(slice(int(v), int(v) + n) if n is not None else int(v))  # type: ignore[arg-type]
        elif f.kind == "mem":
            base, off = v  # type: ignore[misc]
            if base != NO_BASE:
                _reg_range(ctx.hw, f"{f.name} base", int(base), 1)
            out.append((None if base == NO_BASE else int(base), int(off)))
        elif f.kind == "label":
            if not 0 <= int(v) <= ctx.n_code:  # type: ignore[arg-type]
                raise Fault(f"branch target {v} outside the code [0, {ctx.n_code})")
            out.append(int(v))  # type: ignore[arg-type]
        else:
            out.append(int(v))  # type: ignore[arg-type]
    return tuple(out)


def decode(instr: Instr, ctx: DecodeContext) -> Any:
    """Decode with the instruction's special decoder, or the generic one."""
    return DECODERS.get(instr.op, decode_generic)(instr, ctx)


def _addr(c: CoreState, m: tuple[int | None, int], n: int) -> int:
    base, off = m
    addr = off if base is None else int(c.regs[base, 0]) + off
    c.mem.check(addr, n, c.tile)
    return addr


# ---- crossbar -------------------------------------------------------------------------------------------------
@decoder("mvm")
def _decode_mvm(instr: Instr, ctx: DecodeContext) -> tuple[Any, ...]:
    mask, ibits, adc, shift, obits, enc, skip = decode_generic(instr, ctx)
    hw, units = ctx.hw, []
    if mask >> hw.mvmus_per_core:
        raise Fault(f"mvm mask {mask:#b} selects an MVMU >= {hw.mvmus_per_core} (MVMUs per core)")
    for k in range(hw.mvmus_per_core):
        if not mask >> k & 1:
            continue
        kern = ctx.kernels.get(k)
        if kern is None:
            raise Fault(f"mvm fires MVMU {k} of tile {ctx.tile} core {ctx.core}, which has no programmed image")
        inp = slice(hw.mvmu_in(k), hw.mvmu_in(k) + kern.rows)
        out = slice(hw.mvmu_out(k), hw.mvmu_out(k) + kern.cols)
        skips = nx.skipped(ibits, kern.slice_ids, hw.cell_bits, skip)
        exact = not skips.any() and kern.never_clips(adc, enc) and kern.product_exact_in_f64(ibits)
        units.append((k, kern, inp, out, exact, kern.sum_dtype(adc), ~skips if skips.any() else None))
    sig = nx.input_digits(np.zeros(0, dtype=I64), ibits, "csd" if enc else "twos")[1]  # digit significances
    return tuple(units), ibits, adc, shift, obits, sig, enc, hw.costs.dac_pj, crossbar_pj_per_level(hw)


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement value of the low ``bits`` bits (what the digit stream represents)."""
    sb = I64(1 << (bits - 1))
    return ((x & I64((1 << bits) - 1)) ^ sb) - sb


def _mvm_digits(kern: MvmuKernel, x: np.ndarray, ibits: int, adc: int, sum_dtype: Any,
                sig: np.ndarray, enc: int, keep: np.ndarray | None) -> np.ndarray:
    """Rule MVM step by step: digits, bit-line values, ADC clipping (and skipped conversions), exact
    shift-and-add -> (C, B) int64.

    Every intermediate is an integer small enough for the float type it is held in (checked at load time), so
    the BLAS products are exact; the final sum over digits is int64."""
    r, b = x.shape
    if enc:
        digits = nx.csd_digits(x, ibits).transpose(1, 0, 2)  # (R, ibits, B) in {-1, 0, 1}
    else:
        js = np.arange(ibits, dtype=I64)[None, :, None]
        digits = ((x & I64((1 << ibits) - 1))[:, None, :] >> js) & I64(1)  # (R, ibits, B): numerics.input_digits
    v = kern.diff @ digits.reshape(r, ibits * b).astype(np.float32)  # (S*C, ibits*B) bit-line values
    np.clip(v, nx.qmin(adc), nx.qmax(adc), out=v)  # numerics.adc_convert
    if keep is not None:  # dynamic quantization: skipped conversions read as 0 (numerics.skipped)
        v = v.reshape(kern.slices, kern.cols, ibits, b) * keep.T[:, None, :, None].astype(np.float32)
    v = v.reshape(kern.slices, -1)
    if sum_dtype is None:
        u = kern.scale.astype(I64) @ v.astype(I64)
    else:
        u = (kern.scale.astype(sum_dtype) @ v.astype(sum_dtype, copy=False)).astype(I64)
    return np.einsum("cjb,j->cb", u.reshape(kern.cols, ibits, b), sig)


@handler("mvm")
def _mvm(c: CoreState, o: tuple[Any, ...], lat: int) -> None:
    units, ibits, adc, shift, obits, sig, enc, dac_pj, xbar_coef = o
    regs = c.regs
    dyn = c.dyn.setdefault(c.pc - 1, {})
    dac = xbar = 0  # exact event counts over the batch (the machine turns them into energy per inference)
    for k, kern, inp, out, exact, sum_dtype, keep in units:
        if kern.idle:  # no crossbar: nothing is driven or converted, the outputs are zero
            regs[out] = 0
            continue
        x = _wrap(regs[inp], ibits)
        if exact:
            p = (kern.weights_t @ x.astype(np.float64)).astype(I64)
        else:
            p = _mvm_digits(kern, x, ibits, adc, sum_dtype, sig, enc, keep)
        regs[out] = nx.requantize(p, shift, obits)
        c.adc_bits[k] = adc
        nz = nx.nonzero_digits(x, ibits, "csd" if enc else "twos")  # (R, B) DAC pulses per row
        dac += int(nz.sum())
        if xbar_coef:
            xbar += int(kern.gsum @ nz.sum(axis=1))  # cell levels driven
    dyn["dac"] = dyn.get("dac", 0) + dac
    if xbar_coef:
        dyn["crossbar"] = dyn.get("crossbar", 0) + xbar


# ---- vector ALU ------------------------------------------------------------------------------------------------
@handler("add")
def _add(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.saturate(r[o[1]] + r[o[2]], o[4])


@handler("sub")
def _sub(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.saturate(r[o[1]] - r[o[2]], o[4])


@handler("mul")
def _mul(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.mul_q(r[o[1]], r[o[2]], o[4], o[5])


@handler("min")
def _min(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = np.minimum(r[o[1]], r[o[2]])


@handler("max")
def _max(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = np.maximum(r[o[1]], r[o[2]])


@handler("addi")
def _addi(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.saturate(r[o[1]] + I64(o[2]), o[4])


@handler("muli")
def _muli(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.mul_q(r[o[1]], I64(o[2]), o[4], o[5])


@handler("mini")
def _mini(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = np.minimum(r[o[1]], I64(o[2]))


@handler("maxi")
def _maxi(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = np.maximum(r[o[1]], I64(o[2]))


@handler("shli")
def _shli(c: CoreState, o: Any, lat: int) -> None:
    r, sh = c.regs, o[2]
    lim = 1 << (63 - sh)  # pre-clip so the shift cannot wrap; anything clipped saturates anyway (w < 64)
    r[o[0]] = nx.saturate(np.clip(r[o[1]], -lim, lim - 1) << I64(sh), o[4])


@handler("shri")
def _shri(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.rshift_round(r[o[1]], o[2])


@handler("relu")
def _relu(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = np.maximum(r[o[1]], I64(0))


@handler("sig")
def _sig(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.sigmoid_q(r[o[1]], o[3])


@handler("tanh")
def _tanh(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.tanh_q(r[o[1]], o[3])


@handler("rqnt")
def _rqnt(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = nx.requantize(r[o[1]], o[3], o[4])


# ---- moves and scalar integer ops ------------------------------------------------------------------------------
@handler("set")
def _set(c: CoreState, o: Any, lat: int) -> None:
    c.regs[o[0]] = o[1]


@handler("copy")
def _copy(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = r[o[1]].copy()


@handler("iadd")
def _iadd(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = r[o[1]] + r[o[2]]


@handler("iaddi")
def _iaddi(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = r[o[1]] + I64(o[2])


@handler("isub")
def _isub(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = r[o[1]] - r[o[2]]


@handler("imul")
def _imul(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    r[o[0]] = r[o[1]] * r[o[2]]


# ---- tile memory -----------------------------------------------------------------------------------------------
@handler("load")
def _load(c: CoreState, o: Any, lat: int) -> Any:
    d, src, n = o
    addr, mem = _addr(c, src, n), c.mem
    if not mem.valid[addr:addr + n].all():
        return ("valid", c.tile, addr, n)
    c.clock = start = max(c.clock, int(mem.time[addr:addr + n].max()))
    c.regs[d] = mem.values[addr:addr + n]
    mem.consume(addr, n, start + lat)
    c.epoch[c.tile] += 1
    return None


@handler("store")
def _store(c: CoreState, o: Any, lat: int) -> Any:
    dst, a, n, count = o
    addr, mem = _addr(c, dst, n), c.mem
    if mem.valid[addr:addr + n].any():
        return ("invalid", c.tile, addr, n)
    c.clock = start = max(c.clock, int(mem.time[addr:addr + n].max()))
    mem.write(addr, c.regs[a], count, start + lat)
    c.epoch[c.tile] += 1
    return None


# ---- network ---------------------------------------------------------------------------------------------------
def _check_tile(hw: HardwareConfig, tile: int) -> None:
    if not 0 <= tile < hw.tiles:
        raise Fault(f"tile {tile} outside the chip [0, {hw.tiles})")


@decoder("send")
def _decode_send(instr: Instr, ctx: DecodeContext) -> tuple[Any, ...]:
    src, n, tile, ch = decode_generic(instr, ctx)
    _check_tile(ctx.hw, tile)
    return src, n, tile, ch, transit_cycles(ctx.hw, ctx.tile, tile)


@decoder("recv")
def _decode_recv(instr: Instr, ctx: DecodeContext) -> tuple[Any, ...]:
    ops = decode_generic(instr, ctx)
    _check_tile(ctx.hw, ops[2])
    return ops


@handler("send")
def _send(c: CoreState, o: Any, lat: int) -> Any:
    src, n, tile, ch, transit = o
    addr, mem = _addr(c, src, n), c.mem
    if not mem.valid[addr:addr + n].all():
        return ("valid", c.tile, addr, n)
    c.clock = start = max(c.clock, int(mem.time[addr:addr + n].max()))
    vals = mem.values[addr:addr + n].copy()
    mem.consume(addr, n, start + lat)
    q = c.fifos.get((c.tile, tile, ch))
    if q is None:
        q = c.fifos[(c.tile, tile, ch)] = deque()
    q.append((start + lat + transit, vals))
    c.epoch[c.tile] += 1
    c.epoch[tile] += 1
    return None


@handler("recv")
def _recv(c: CoreState, o: Any, lat: int) -> Any:
    dst, n, tile, ch, count = o
    q = c.fifos.get((tile, c.tile, ch))
    if not q:
        return ("msg", tile, c.tile, ch)
    addr, mem = _addr(c, dst, n), c.mem
    arrival, vals = q[0]
    if len(vals) != n:
        raise Fault(f"message of {len(vals)} words on channel ({tile} -> {c.tile}, ch {ch}), recv expects n={n}")
    if mem.valid[addr:addr + n].any():
        return ("invalid", c.tile, addr, n)
    q.popleft()
    c.clock = start = max(c.clock, arrival, int(mem.time[addr:addr + n].max()))
    mem.write(addr, vals, count, start + lat)
    c.epoch[c.tile] += 1
    return None


# ---- control ---------------------------------------------------------------------------------------------------
@handler("jmp")
def _jmp(c: CoreState, o: Any, lat: int) -> None:
    c.pc = o[0]


@handler("beq")
def _beq(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    if r[o[0], 0] == r[o[1], 0]:
        c.pc = o[2]


@handler("bne")
def _bne(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    if r[o[0], 0] != r[o[1], 0]:
        c.pc = o[2]


@handler("blt")
def _blt(c: CoreState, o: Any, lat: int) -> None:
    r = c.regs
    if r[o[0], 0] < r[o[1], 0]:
        c.pc = o[2]


@handler("halt")
def _halt(c: CoreState, o: Any, lat: int) -> Any:
    return HALT


def fault_handler(c: CoreState, reason: Any, lat: int) -> None:
    """Stands in for an instruction whose operands failed the load-time checks: faults when executed."""
    raise Fault(reason)


_missing = sorted(set(BY_MNEMONIC) - set(HANDLERS))
if _missing:
    raise AssertionError(f"instructions without a handler: {_missing}")
