"""The recurrent op (`ir.Op` kind ``recurrent``: one direction of an LSTM, GRU or RNN) in float and in the
integers the hardware computes (rule RECURRENT in docs/semantics.md).

Float: ONNX's equations (gate order i, o, f, c / z, r, n), the GRU with either ``linear_before_reset``; ``clip``
bounds every activation's input (peepholes included), not the cell state.

Integer, per time step, with the layer's formats Q(in_bits, in_frac) (the MVM input: x_t as stored, h_{t-1}
requantized into it) and Q(acc_bits, acc_frac) (everything else, the cell state included: the documented
cell-state rule), every add, sub and mul saturating to acc_bits (the ``add``/``sub``/``mul`` instructions):

1. ``a = MVM([x_t ; rqnt(h_{t-1})]) + bias`` (rule MVM, row blocks accumulated in order, rule BIAS);
2. clip: ``a = min(max(a, -k), k)`` with k = quant(clip) in Q(32, acc_frac);
3. LSTM: ``i = sig(a_i + mul(p_i, c))``, ``f = sig(a_f + mul(p_f, c))`` (``input_forget``: f = one - i),
   ``g = tanh(a_c)``, ``c = mul(f, c) + mul(i, g)``, ``o = sig(a_o + mul(p_o, c))``, ``h = mul(o, tanh(c))``;
   GRU: ``z = sig(a_z)``, ``r = sig(a_r)``, ``n = tanh(a_nx + mul(r, a_nh))``, ``h = n + mul(z, h - n)``;
   (``linear_before_reset=0``: ``n = tanh(a_nx + b_nh)`` with ``b = MVM([x_t ; rqnt(mul(r, h))])``, no bias);
   RNN: ``h = act(a)``; ``mul`` rounds by acc_frac (``mul_q``), sig/tanh are rule ACT, one = 2^acc_frac;
4. the output (h_t for every t, or the last h or c) is requantized to its tensor's format.

The initial states and peepholes are quantized to Q(acc_bits, acc_frac).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa import numerics as nx
from isa.hardware import HardwareConfig

from ..ir import Op
from .precision import LayerPrecision

FN = {"sigmoid": lambda v: 0.5 * (1.0 + np.tanh(0.5 * v)), "tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0)}


#: hidden units per column block: their gate columns fill one 128-column crossbar (4 x 32; an RNN's 128 x 1)
UNITS_PER_BLOCK = {"lstm": 32, "gru": 32, "rnn": 128}
GATE_COLUMNS = {"lstm": 4, "gru": 4, "rnn": 1}


def unit_blocks(op: Op) -> list[tuple[int, int]]:
    """(first unit, units) of every column block of the op's weight matrix."""
    hid, u = int(op.attrs["hidden"]), UNITS_PER_BLOCK[op.attrs["cell"]]
    return [(u0, min(u, hid - u0)) for u0 in range(0, hid, u)]


def gate_major(op: Op) -> np.ndarray:
    """Column index: ``acc[:, gate_major(op)]`` puts the weight matrix's columns (column block by column block,
    each holding the gates of its units gate by gate) in gate-major order (gate g of unit j at g H + j)."""
    hid, g = int(op.attrs["hidden"]), GATE_COLUMNS[op.attrs["cell"]]
    idx = np.empty(g * hid, dtype=np.int64)
    for u0, n in unit_blocks(op):
        for k in range(g):
            idx[k * hid + u0:k * hid + u0 + n] = g * u0 + k * n + np.arange(n)
    return idx


def drives(op: Op) -> int:
    """MVMs per time step: 2 for a GRU with ``linear_before_reset=0`` (the same crossbars driven again with
    [x_t ; r * h_{t-1}] for the candidate's recurrent part), else 1."""
    return 2 if op.attrs["cell"] == "gru" and not op.attrs.get("linear_before_reset", 1) else 1


def steps_of(op: Op) -> list[int]:
    """The time steps in the order the op runs them."""
    t = list(range(op.attrs["steps"]))
    return t[::-1] if op.attrs["reverse"] else t


def _split(a: np.ndarray, hid: int, k: int) -> list[np.ndarray]:
    return [a[:, i * hid:(i + 1) * hid] for i in range(k)]


def float_recurrent(op: Op, x: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The op in float64 on internal-layout x (B, 1, C, T) -> internal output ((B, 1, H, T) or (B, 1, H, 1)) and
    the largest magnitudes of its MVM input rows (``input``), of its accumulator-format values (``acc``: gate
    pre-activations, cell states, products) and of its weights."""
    a, p = op.attrs, op.params
    hid, cell = a["hidden"], a["cell"]
    b = len(x)
    h = np.broadcast_to(p["init_h"], (b, hid)).astype(np.float64)
    c = np.broadcast_to(p.get("init_c", np.zeros(hid)), (b, hid)).astype(np.float64)
    clip = a["clip"]
    bound = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    f_act, *rest = (FN[n] for n in a["acts"])
    peep = _split(p["peephole"][None], hid, 3) if "peephole" in p else [np.zeros((1, hid))] * 3
    seq, big, xin = np.zeros((b, hid, a["steps"])), 0.0, float(np.abs(h).max(initial=0.0))
    order = gate_major(op)
    for t in steps_of(op):
        rows = np.concatenate([x[:, 0, :, t], h], axis=1)
        xin = max(xin, float(np.abs(rows).max(initial=0.0)))
        acc = (rows @ p["weight"] + p["bias"])[:, order]
        seen = [acc, c]
        if cell == "lstm":
            ai, ao, af, ag = _split(acc, hid, 4)
            i = f_act(bound(ai + peep[0] * c))
            f = 1.0 - i if a["input_forget"] else f_act(bound(af + peep[2] * c))
            c = f * c + i * rest[0](bound(ag))
            o = f_act(bound(ao + peep[1] * c))
            h = o * rest[1](c)
            seen += [ai + peep[0] * c, af + peep[2] * c, ao + peep[1] * c, c]
        elif cell == "gru":
            az, ar, anx, anh = _split(acc, hid, 4)
            z, r = f_act(bound(az)), f_act(bound(ar))
            if drives(op) == 2:
                again = (np.concatenate([x[:, 0, :, t], r * h], axis=1) @ p["weight"])[:, order]
                anh = _split(again, hid, 4)[3]
                pre = anx + anh
                seen.append(anh)
            else:
                pre = anx + r * anh
            n = rest[0](bound(pre))
            h = n + z * (h - n)
            seen += [pre, h - n]
        else:
            h = f_act(bound(acc))
        big = max([big] + [float(np.abs(v).max(initial=0.0)) for v in seen])
        seq[:, :, t] = h
    out = a["out"]
    last = {"seq": None, "h": h, "c": c}[out]
    y = seq[:, None] if last is None else last[:, None, :, None]
    return y, {"input": xin, "acc": big, "weight": float(np.abs(p["weight"]).max(initial=0.0))}


@dataclass(frozen=True)
class RecurrentConstants:
    """The op's integer constants in Q(acc_bits, acc_frac): initial h and c, peepholes (3, H) or None, the clip
    bound (None without clip) and one (2^acc_frac)."""

    init_h: np.ndarray
    init_c: np.ndarray
    peephole: np.ndarray | None
    clip: int | None
    one: int


def recurrent_constants(op: Op, p: LayerPrecision) -> RecurrentConstants:
    """Quantize the initial states and peepholes to the accumulator format, the clip bound to Q(32, acc_frac)."""
    hid = op.attrs["hidden"]
    q = lambda v: nx.quantize(np.asarray(v, dtype=np.float64), p.acc_bits, p.acc_frac)  # noqa: E731
    peep = op.params.get("peephole")
    clip = op.attrs["clip"]
    return RecurrentConstants(q(op.params["init_h"]), q(op.params.get("init_c", np.zeros(hid))),
                              None if peep is None else q(peep).reshape(3, hid),
                              None if clip is None else int(nx.quantize(np.array(clip), 32, p.acc_frac)),
                              1 << p.acc_frac)


def recurrent_q(op: Op, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, p: LayerPrecision,
                hw: HardwareConfig) -> np.ndarray:
    """Rule RECURRENT on internal-layout integers x (B, 1, C, T) in Q(in_bits, in_frac) -> the output in
    Q(acc_bits, acc_frac), internal layout (before the output tensor's requantization)."""
    from .functional import _crossbar_rows, prepare_block

    a, k = op.attrs, recurrent_constants(op, p)
    hid, cell, ba, fa = a["hidden"], a["cell"], p.acc_bits, p.acc_frac
    blocks = [prepare_block(weight[r0:r0 + hw.xbar_rows], p, hw.cell_bits)
              for r0 in range(0, weight.shape[0], hw.xbar_rows)]
    b = len(x)
    h = np.broadcast_to(k.init_h, (b, hid)).astype(np.int64)
    c = np.broadcast_to(k.init_c, (b, hid)).astype(np.int64)
    f_act, *rest = a["acts"]
    act = lambda fn, v: _act(fn, v, fa)  # noqa: E731
    add = lambda u, v: nx.saturate(u + v, ba)  # noqa: E731
    mul = lambda u, v: nx.mul_q(u, v, fa, ba)  # noqa: E731
    bound = (lambda v: np.minimum(np.maximum(v, -k.clip), k.clip)) if k.clip is not None else (lambda v: v)
    seq = np.zeros((b, hid, a["steps"]), dtype=np.int64)
    order = gate_major(op)
    for t in steps_of(op):
        rows = np.concatenate([x[:, 0, :, t], nx.requantize(h, fa - p.in_frac, p.in_bits)], axis=1)
        acc = _crossbar_rows(rows, blocks, bias, p, lambda v: v, 1)[:, order]
        if cell == "lstm":
            ai, ao, af, ag = _split(acc, hid, 4)
            pe = k.peephole
            i = act(f_act, bound(ai if pe is None else add(ai, mul(pe[0], c))))
            f = nx.saturate(k.one - i, ba) if a["input_forget"] else \
                act(f_act, bound(af if pe is None else add(af, mul(pe[2], c))))
            c = add(mul(f, c), mul(i, act(rest[0], bound(ag))))
            o = act(f_act, bound(ao if pe is None else add(ao, mul(pe[1], c))))
            h = mul(o, act(rest[1], c))
        elif cell == "gru":
            az, ar, anx, anh = _split(acc, hid, 4)
            z, r = act(f_act, bound(az)), act(f_act, bound(ar))
            if drives(op) == 2:  # the second drive: x_t again (its rows hold 0 in the R_h columns), r * h
                again = np.concatenate([x[:, 0, :, t], nx.requantize(mul(r, h), fa - p.in_frac, p.in_bits)], axis=1)
                n = act(rest[0], bound(add(anx, _split(_crossbar_rows(again, blocks, None, p, lambda v: v, 1)[:, order],
                                                       hid, 4)[3])))
            else:
                n = act(rest[0], bound(add(anx, mul(r, anh))))
            h = add(n, mul(z, nx.saturate(h - n, ba)))
        else:
            h = act(f_act, bound(acc))
        seq[:, :, t] = h
    last = {"seq": None, "h": h, "c": c}[a["out"]]
    return seq[:, None] if last is None else last[:, None, :, None]


def _act(fn: str, v: np.ndarray, frac: int) -> np.ndarray:
    if fn == "sigmoid":
        return nx.sigmoid_q(v, frac)
    if fn == "tanh":
        return nx.tanh_q(v, frac)
    return np.maximum(v, 0)
