"""``move``: a data move, every output element a copy of one input element (DepthToSpace, nearest Resize and
Upsample). (C_in, H, W) -> (C_out, OH, OW); attrs:

- ``grid`` (row segments, column segments): each axis of the output is cut into consecutive segments
  ``(p, o, r, n)``: n base positions, each read from input index ``p * t + o`` (t < n) and written r times in a
  row (an upsample by r: p = 1, o = 0; a downsample by p from offset o: r = 1); `segments` finds them for any
  nondecreasing index map;
- ``channels``: per sub-position (i, j) (row-major) of a one-segment grid, the input channel of every output
  channel, or () when every output channel c copies input channel c (then C_out = C_in);
- ``nodes``: the ONNX nodes it stands for (messages).

Float and integer semantics are the same gather; the stored format passes through (``preserves_fmt``: the input
is stored in the output's format unless crossbar layers read it). On the vector unit: one pixel loop per pair of
row and column segments over its base pixels loads each run of consecutive source channels (one ``load`` per
run) and stores the r_h x r_w output pixels; the chunks are sent to other tiles after the loops, pixel by pixel
in raster order (the order receivers take them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import IntContext, OpKind, Shape, register

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..codegen.loops import Pointer
    from ..codegen.plan import Core
    from ..ir import Graph, Op

Segment = tuple[int, int, int, int]


def segments(src: list[int]) -> tuple[Segment, ...]:
    """The segments ``(p, o, r, n)`` of a nondecreasing index map (one input index per output index): greedily,
    runs of r equal indices whose values step by p."""
    runs_: list[tuple[int, int]] = []  # (value, length)
    for v in src:
        if runs_ and runs_[-1][0] == v:
            runs_[-1] = (v, runs_[-1][1] + 1)
        else:
            runs_.append((v, 1))
    out: list[Segment] = []
    k = 0
    while k < len(runs_):
        (v, r), n, p = runs_[k], 1, 1
        if k + 1 < len(runs_) and runs_[k + 1][1] == r:
            p = runs_[k + 1][0] - v
            while k + n < len(runs_) and runs_[k + n] == (v + n * p, r):
                n += 1
        out.append((p, v, r, n))
        k += n
    return tuple(out)


def axis_map(segs: tuple[Segment, ...]) -> np.ndarray:
    """The input index of every output index of an axis cut into ``segs``."""
    return np.concatenate([np.repeat(p * np.arange(n) + o, r) for p, o, r, n in segs]).astype(np.int64)


def gather(g: Graph, op: Op, x: np.ndarray) -> np.ndarray:
    """The move on an internal-layout (B, H, W, C) array."""
    c_out, h_out, w_out = g.values[op.outputs[0]].shape
    rows_seg, cols_seg = op.attrs["grid"]
    y = x[:, axis_map(rows_seg)][:, :, axis_map(cols_seg)]            # (B, OH, OW, C_in)
    chans = op.attrs["channels"]
    if not chans:
        return y
    rh, rw = rows_seg[0][2], cols_seg[0][2]
    src_c = np.asarray(chans, dtype=np.int64).reshape(rh, rw, c_out)
    idx = src_c[(np.arange(h_out) % rh)[:, None], (np.arange(w_out) % rw)[None, :]]   # (OH, OW, C_out)
    return np.take_along_axis(y, np.broadcast_to(idx, y.shape[:1] + idx.shape), axis=3)


def runs(src: np.ndarray) -> list[tuple[int, int, int]]:
    """(first output channel, first source channel, length) of the runs of consecutive source channels."""
    out: list[tuple[int, int, int]] = []
    for k, s in enumerate(int(v) for v in src):
        if out and out[-1][1] + out[-1][2] == s:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + 1)
        else:
            out.append((k, s, 1))
    return out


@register
class Move(OpKind):
    """A data move on the vector unit (copies only: no arithmetic, no crossbar)."""

    name = "move"

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        if len(ins[0]) != 3 or len(out) != 3:
            return f"expects (C, H, W) tensors, got {ins[0]} -> {out}"
        grid: Any = op.attrs.get("grid")
        if not grid or len(grid) != 2 or any(not segs or any(len(s) != 4 for s in segs) for segs in grid):
            return f"grid {grid!r} is not (row segments, column segments) of (p, o, r, n)"
        for segs, n_in, n_out in zip(grid, ins[0][1:], out[1:]):
            if any(p < 1 or o < 0 or r < 1 or n < 1 or p * (n - 1) + o >= n_in for p, o, r, n in segs) \
                    or sum(r * n for _, _, r, n in segs) != n_out:
                return f"grid {grid} does not map {ins[0]} onto {out}"
        chans = op.attrs.get("channels", ())
        if not chans and ins[0][0] != out[0]:
            return f"identity channels but {ins[0][0]} -> {out[0]} channels"
        if chans and (len(grid[0]) != 1 or len(grid[1]) != 1 or len(chans) != grid[0][0][2] * grid[1][0][2]
                      or any(len(c) != out[0] for c in chans)
                      or any(not 0 <= v < ins[0][0] for c in chans for v in c)):
            return f"channel map does not take {ins[0][0]} channels to {out[0]} per sub-position of one segment"
        return None

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        return gather(g, op, xs[0])

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        return gather(g, op, xs[0]), q.fmt[op.inputs[0]][1]

    def preserves_fmt(self, op: Op) -> bool:
        return True

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.vector import emit_vector

        emit_vector(ctx, op, _emit_chunk)


def _emit_chunk(ctx: Context, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
                out_ptr: Pointer) -> None:
    """Output channels [c0, c0 + n): per pair of segments a pixel loop over its base pixels (loads of the source
    runs into ``a``, stores of the r_h x r_w output pixels), then the sends of every output pixel in raster
    order."""
    from isa import MemRef, ops

    from ..codegen.epilogue import finish
    from ..codegen.loops import LoopRegs, pixel_loop
    from ..codegen.vector import in_ptr

    out, node, x, y = ctx.code(core), op.name, op.inputs[0], op.outputs[0]
    rows_seg, cols_seg = op.attrs["grid"]
    (bx, fx), (by, fy) = ctx.fmt[x], ctx.fmt[y]
    row_in, pix_in = ctx.st.pixel_step(x)
    row_out, pix_out = ctx.st.pixel_step(y)
    base_in = in_ptr(ctx, core[0], x)[0]
    chans = op.attrs["channels"]
    r0 = 0
    for ph, o_h, rh, nh in rows_seg:
        q0 = 0
        for pw, o_w, rw, nw in cols_seg:
            if chans:
                src_c = np.asarray(chans, dtype=np.int64).reshape(rh * rw, -1)
                parts = [runs(src_c[k, c0:c0 + n]) for k in range(rh * rw)]
            else:
                parts = [[(0, c0, n)]] * (rh * rw)
            shared = all(p == parts[0] for p in parts)
            src = (base_in + o_h * row_in + o_w * pix_in, ph * row_in, pw * pix_in)
            dst = (out_ptr[0] + r0 * row_out + q0 * pix_out, rh * row_out, rw * pix_out)

            def body(m: list[MemRef], parts: list[list[tuple[int, int, int]]] = parts, shared: bool = shared,
                     rw: int = rw) -> None:
                for k, part in enumerate(parts):
                    fresh = k == 0 or not shared  # a register already requantized is stored as it is
                    if fresh:
                        for dst_c, src_ch, length in part:
                            out.append(ops.load(d=a + dst_c, src=m[0].shifted(src_ch), n=length, node=node))
                    at = m[1].shifted((k // rw) * row_out + (k % rw) * pix_out)
                    finish(ctx, core, node, y, a, n, fx if fresh else fy, c0, at, bx if fresh else by, send=False)

            pixel_loop(out, LoopRegs.of(ctx.hw), nh, nw, [src, dst], body, node=node)
            q0 += rw * nw
        r0 += rh * nh
    streams = ctx.plan.sends.get((y, core, c0), [])
    if streams:
        pixel_loop(out, LoopRegs.of(ctx.hw), oh, ow, [out_ptr], lambda m: out.extend(
            ops.send(src=m[0].shifted(c0), n=n, tile=s.tile, ch=s.ch, node=node) for s in streams), node=node)
