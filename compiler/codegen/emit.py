"""Code generation: a mapped graph -> an `isa.Program`.

Each core runs one op. Crossbar layers (dense; conv as windows over its input) and vector-ALU ops (pooling,
element-wise) sweep their output pixels in a two-level loop (pointer registers advance by the strides), so the
program size does not depend on the image size; a flat (1 x 1) dense layer is straight-line code. Tensors live
in tile memory as described in `storage.py`; every word is stored once with reader count 0 (valid from then
on), so consumers synchronize on the valid bits alone. A tile that needs a tensor produced on another tile gets
each produced pixel chunk by send/receive: the producer sends right after its store, the first core on the
receiving tile that reads the tensor receives all its pixels before computing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from isa import NO_BASE, Instr, MemInit, MemRef, MvmuImage, Program, TensorLoc, ops
from isa.printer import branch_targets
from isa.errors import ModelError
from isa.hardware import HardwareConfig

from ..ir import Graph, Op
from ..mapping import Block, Mapping
from ..quant import LayerPrecision, quantize_layer
from ..quant.formats import Format
from ..quant.functional import DIV_FRAC, LEAKY_FRAC, clip_bounds, divisor_coef, leaky_coef
from .storage import Buffer, Storage, hwc

Core = tuple[int, int]
Mem = MemRef
DEVICE_KINDS = ("dense", "conv", "pool", "gap", "eltwise", "concat")
MAX_MSG = 65535


@dataclass(frozen=True)
class Stream:
    """Pixels [c0, c1) of tensor ``value`` produced by ``src`` and sent to ``tile`` on channel ``ch``."""

    value: str
    src: Core
    c0: int
    c1: int
    tile: int
    ch: int
    rows: tuple[int, int] | None = None  # the band of pixel rows the producer writes (None: all)


class Emitter:
    """Builds the program core by core (see module docstring)."""

    def __init__(self, g: Graph, prec: dict[str, LayerPrecision], fmt: dict[str, Format], mapping: Mapping,
                 hw: HardwareConfig) -> None:
        self.g, self.prec, self.fmt, self.mapping, self.hw = g, prec, fmt, mapping, hw
        self.program = Program(hw, meta={"model": g.name})
        self.st = Storage(g, fmt)
        self.mem_top: dict[int, int] = defaultdict(int)
        self.prologue: dict[Core, list[Instr]] = defaultdict(list)
        self.head: dict[Core, list[Instr]] = defaultdict(list)
        self.code: dict[Core, list[Instr]] = defaultdict(list)
        self.tail: dict[Core, list[Instr]] = defaultdict(list)
        self.channels: dict[tuple[int, int], int] = defaultdict(int)
        self.producers: dict[str, list[tuple[Core, int, int]]] = defaultdict(list)
        self.bands: dict[tuple[str, Core], tuple[int, int] | None] = {}
        self.readers: dict[str, list[Core]] = defaultdict(list)
        self.streams: dict[tuple[str, Core, int], list[Stream]] = defaultdict(list)
        top = hw.core_regs
        self.r_h, self.r_w, self.r_hm, self.r_wm = top - 1, top - 2, top - 3, top - 4
        self.ptr_regs = [(top - 5 - 2 * i, top - 6 - 2 * i) for i in range(3)]

    # ---- memory -------------------------------------------------------------------------------------------------
    def alloc(self, tile: int, words: int) -> int:
        """Bump-allocate ``words`` of tile memory."""
        addr = self.mem_top[tile]
        self.mem_top[tile] += words
        if self.mem_top[tile] > self.hw.tile_mem_words:
            raise ModelError(f"tile {tile} memory overflow: {self.mem_top[tile]} words needed, "
                             f"{self.hw.tile_mem_words} available (pass a hardware file with a larger "
                             f"tile_mem_words or more tiles)")
        return addr

    def emit(self, core: Core, instr: Instr) -> None:
        """Append one instruction to ``core``'s stream."""
        self.code[core].append(instr)

    # ---- planning -----------------------------------------------------------------------------------------------
    def cores_of(self, op: Op) -> list[Core]:
        """Cores running ``op`` (none for a concat)."""
        if op.is_crossbar:
            return self.mapping.layers[op.name].cores()
        return [self.mapping.vector[op.name]] if op.name in self.mapping.vector else []

    def plan(self) -> None:
        """Producers and readers of every tensor; tiles and buffers of every root; streams between tiles."""
        for op in self.g.ops:
            if op.kind not in DEVICE_KINDS:
                raise ModelError(f"op '{op.name}' ({op.kind}) cannot run on the device: after canonicalization "
                                 f"only {', '.join(DEVICE_KINDS)} remain supported")
            out = op.outputs[0]
            if op.is_crossbar:
                lm = self.mapping.layers[op.name]
                self.producers[out] = [(lm.owner(c, r), *lm.group(c, r)[0].cols) for r in range(lm.replicas)
                                       for c in range(lm.col_blocks)]
                for r in range(lm.replicas):
                    for c in range(lm.col_blocks):
                        self.bands[(out, lm.owner(c, r))] = lm.group(c, r)[0].out_rows
            elif op.kind != "concat":
                c, step = hwc(self.g.values[out].shape)[2], self.vector_chunk(op)
                self.producers[out] = [(self.mapping.vector[op.name], lo, min(c, lo + step)) for lo in range(0, c, step)]
            for i in op.inputs:
                self.readers[i].extend(c for c in self.cores_of(op) if c not in self.readers[i])
        for v in self.g.inputs:
            if not self.readers[v.name]:
                raise ModelError(f"graph input '{v.name}' is not read by any device op")
            self.producers[v.name] = [(self.readers[v.name][0], 0, -1)]
        self.out_core = {o: self.producers[o][0][0] for o in self.g.outputs}
        tiles: dict[str, set[int]] = defaultdict(set)  # tiles holding a copy of a root's buffer
        need: dict[str, set[int]] = {}  # tiles that need a value: its readers, its root's readers, its output tile
        for v in self.g.values:
            root = self.st.root(v)
            need[v] = {c[0] for c in self.readers[v]} | {c[0] for c in self.readers[root]}
            if v in self.out_core:
                need[v].add(self.out_core[v][0])
            tiles[root] |= {c[0] for c, _, _ in self.producers.get(v, [])} | need[v]
        for root, ts in tiles.items():
            for t in sorted(ts):
                self.st.buffers[root].bases[t] = self.alloc(t, self.st.buffers[root].words)
        for v, prods in self.producers.items():
            if v in {i.name for i in self.g.inputs}:
                continue
            for src, c0, c1 in prods:
                for t in sorted(need[v] - {src[0]}):
                    ch = self.channels[(src[0], t)]
                    self.channels[(src[0], t)] += 1
                    s = Stream(v, src, c0, c1, t, ch, self.bands.get((v, src)))
                    self.streams[(v, src, c0)].append(s)
                    self._receive(s)
        self.need = need

    def vector_chunk(self, op: Op) -> int:
        """Channels processed per instruction group by a vector op (two operand regions fit the data registers)."""
        return min(hwc(self.g.values[op.outputs[0]].shape)[2], max(1, (self.hw.data_regs - 8) // 2))

    def receiver(self, value: str, tile: int) -> Core:
        """The core on ``tile`` that receives ``value``: its first reader there, else the first reader there of
        the concat output it is part of, else the output core (never a reader of a sibling view, which may be
        upstream of ``value``'s producer)."""
        for c in self.readers[value] + self.readers[self.st.root(value)]:
            if c[0] == tile:
                return c
        if value in self.out_core and self.out_core[value][0] == tile:
            return self.out_core[value]
        raise ModelError(f"no core on tile {tile} to receive '{value}'")

    def _receive(self, s: Stream) -> None:
        rcv = self.receiver(s.value, s.tile)
        part = self.tail if s.value in self.out_core and rcv == self.out_core[s.value] else self.head
        saved, self.code[rcv] = self.code[rcv], part[rcv]  # branch targets are relative to the part's start
        h, w, _ = hwc(self.g.values[s.value].shape)
        h0, h1 = s.rows or (0, h)
        row_step = self.st.pixel_step(s.value)[0]
        base = self.st.buffer(s.value).bases[s.tile] + self.st.origin(s.value) + s.c0 + h0 * row_step
        spatial = len(self.g.values[s.value].shape) == 3
        self.pixel_loop(rcv, h1 - h0, w, [(base, *self.st.pixel_step(s.value))], lambda m: self.emit(rcv, ops.recv(dst=m[0], n=s.c1 - s.c0, tile=s.src[0], ch=s.ch, count=0, node=s.value)), spatial=spatial, node=s.value)
        part[rcv], self.code[rcv] = self.code[rcv], saved

    # ---- loops --------------------------------------------------------------------------------------------------
    def pixel_loop(self, core: Core, oh: int, ow: int, ptrs: list[tuple[int, int, int]],
                   body: Callable[[list[Mem]], None], spatial: bool = True, node: str | None = None) -> None:
        """Run ``body`` for each of oh x ow pixels; ``ptrs`` are (start, row step, pixel step) addresses and the
        body receives the current ones as memory operands. Without ``spatial`` (a single pixel), no loop."""
        if not spatial:
            body([MemRef(NO_BASE, start) for start, _, _ in ptrs])
            return
        regs = self.ptr_regs[:len(ptrs)]
        self.emit(core, ops.set(d=self.r_h, imm=0, node=node))
        self.emit(core, ops.set(d=self.r_hm, imm=oh, node=node))
        self.emit(core, ops.set(d=self.r_wm, imm=ow, node=node))
        for (ptr, row), _ in zip(regs, ptrs):
            self.emit(core, ops.set(d=row, imm=0, node=node))
        top = len(self.code[core])
        for ptr, row in regs:
            self.emit(core, ops.iaddi(d=ptr, a=row, imm=0, node=node))
        self.emit(core, ops.set(d=self.r_w, imm=0, node=node))
        inner = len(self.code[core])
        body([MemRef(ptr, start) for (ptr, _), (start, _, _) in zip(regs, ptrs)])
        for (ptr, _), (_, _, step) in zip(regs, ptrs):
            self.emit(core, ops.iaddi(d=ptr, a=ptr, imm=step, node=node))
        self.emit(core, ops.iaddi(d=self.r_w, a=self.r_w, imm=1, node=node))
        self.emit(core, ops.blt(a=self.r_w, b=self.r_wm, target=inner, node=node))
        for (_, row), (_, rstep, _) in zip(regs, ptrs):
            self.emit(core, ops.iaddi(d=row, a=row, imm=rstep, node=node))
        self.emit(core, ops.iaddi(d=self.r_h, a=self.r_h, imm=1, node=node))
        self.emit(core, ops.blt(a=self.r_h, b=self.r_hm, target=top, node=node))

    def send_after_store(self, core: Core, value: str, c0: int, mem: Mem, n: int, node: str) -> None:
        """The sends of a just-stored pixel chunk to every other tile holding ``value``."""
        for s in self.streams.get((value, core, c0), []):
            self.emit(core, ops.send(src=mem, n=n, tile=s.tile, ch=s.ch, node=node))

    # ---- crossbar layers ----------------------------------------------------------------------------------------
    def geometry(self, op: Op) -> dict[str, tuple[int, ...]]:
        """Window geometry; a dense layer is a window covering its whole input."""
        if op.kind == "conv":
            return {k: tuple(op.attrs[k]) for k in ("kernel", "strides", "pads", "dilations")}
        h, w, _ = hwc(self.g.values[op.inputs[0]].shape)
        return {"kernel": (h, w), "strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}

    def window_offsets(self, op: Op) -> np.ndarray:
        """Buffer offset of every weight row (window order) from the window origin."""
        geo = self.geometry(op)
        (kh, kw), (dh, dw) = geo["kernel"], geo["dilations"]
        row, pix = self.st.pixel_step(op.inputs[0])
        c = hwc(self.g.values[op.inputs[0]].shape)[2]
        i, j, k = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
        return (i * dh * row + j * dw * pix + k).reshape(-1)

    @staticmethod
    def runs(offs: np.ndarray) -> list[tuple[int, int, int]]:
        """Maximal contiguous runs of ``offs`` as (first offset, length, position in offs)."""
        if len(offs) == 0:
            return []
        breaks = np.flatnonzero(np.diff(offs) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(offs)]])
        return [(int(offs[s]), int(e - s), int(s)) for s, e in zip(starts, ends)]

    def emit_crossbar(self, op: Op) -> None:
        """All cores of one crossbar layer."""
        lm, p = self.mapping.layers[op.name], self.prec[op.name]
        q = quantize_layer(op, p)
        for i, b in enumerate(lm.blocks):
            w = q.weight[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]]
            self.program.mvmus.append(MvmuImage(b.tile, b.core, b.mvmu, np.ascontiguousarray(w), p.w_bits, op.name,
                                                p.w_enc, lm.layout(i)))
        scratch = {b: self.alloc(b.tile, b.cols[1] - b.cols[0]) for b in lm.blocks
                   if b.where != lm.owner(b.c, b.rep)}
        self.remote_scratch: dict[Block, tuple[int, int]] = {}
        for b in scratch:
            owner = lm.owner(b.c, b.rep)
            if owner[0] != b.tile:  # the partial sum travels to the owner's tile
                ch = self.channels[(b.tile, owner[0])]
                self.channels[(b.tile, owner[0])] += 1
                self.remote_scratch[b] = (self.alloc(owner[0], b.cols[1] - b.cols[0]), ch)
        offs = self.window_offsets(op)
        for rep in range(lm.replicas):
            blocks = [b for b in lm.blocks if b.rep == rep]
            for core in dict.fromkeys(b.where for b in blocks):
                self._crossbar_core(core, op, blocks, q.bias, p, scratch, offs)

    def _crossbar_core(self, core: Core, op: Op, blocks: list[Block], bias: np.ndarray | None, p: LayerPrecision,
                       scratch: dict[Block, int], offs: np.ndarray) -> None:
        hw, node, tile = self.hw, op.name, core[0]
        mine = [b for b in blocks if b.where == core]
        owned = [c for c in dict.fromkeys(b.c for b in mine) if [b for b in blocks if b.c == c][0].where == core]
        bias_regs = {}
        data = hw.data_base
        for c in owned:
            lo, hi = [b for b in blocks if b.c == c][0].cols
            if bias is not None:
                addr = self.alloc(tile, hi - lo)
                self.program.data.append(MemInit(tile, addr, bias[lo:hi].astype(np.int64), 0))
                self.emit(core, ops.load(d=data, src=MemRef(NO_BASE, addr), n=hi - lo, node=node))
                bias_regs[c] = data
                data += hi - lo
        geo = self.geometry(op)
        xin, yout = op.inputs[0], op.outputs[0]
        oh, ow, _ = hwc(self.g.values[yout].shape)
        in_row, in_pix = self.st.pixel_step(xin)
        out_row, out_pix = self.st.pixel_step(yout)
        start_in = self.st.buffer(xin).bases[tile] + self.st.origin(xin, geo["pads"][0], geo["pads"][1])
        start_out = self.st.buffer(yout).bases.get(tile, 0) + self.st.origin(yout)  # only owners store
        h0, h1 = blocks[0].out_rows or (0, oh)  # this replica's band of output rows
        start_in += h0 * geo["strides"][0] * in_row
        start_out += h0 * out_row
        oh = h1 - h0
        ptrs = [(start_in, geo["strides"][0] * in_row, geo["strides"][1] * in_pix), (start_out, out_row, out_pix)]
        spatial = op.kind == "conv"

        def body(m: list[Mem]) -> None:
            for b in mine:
                for off, n, k in self.runs(offs[b.rows[0]:b.rows[1]]):
                    self.emit(core, ops.load(d=hw.mvmu_in(b.mvmu) + k, src=m[0].shifted(off), n=n, node=node))
            self.emit(core, ops.mvm(mask=sum(1 << b.mvmu for b in mine), ibits=p.in_bits, adc=p.adc_bits, shift=p.mvm_shift, obits=p.acc_bits, enc=int(p.in_enc == "csd"), skip=p.skip, node=node))
            for c in dict.fromkeys(b.c for b in mine):
                group = [b for b in blocks if b.c == c]
                if group[0].where != core:
                    for b in (b for b in group if b.where == core):
                        n = b.cols[1] - b.cols[0]
                        self.emit(core, ops.store(dst=MemRef(NO_BASE, scratch[b]), a=hw.mvmu_out(b.mvmu), n=n, count=1, node=node))
                        if b in self.remote_scratch:
                            self.emit(core, ops.send(src=MemRef(NO_BASE, scratch[b]), n=n, tile=group[0].tile, ch=self.remote_scratch[b][1], node=node))
                    continue
                self._owner(core, node, group, scratch, bias_regs.get(c), p, yout, m[1], data)

        self.pixel_loop(core, oh, ow, ptrs, body, spatial=spatial, node=node)

    def _owner(self, core: Core, node: str, group: list[Block], scratch: dict[Block, int], bias_reg: int | None,
               p: LayerPrecision, yout: str, out: Mem, tmp: int) -> None:
        lo, hi = group[0].cols
        n, acc = hi - lo, self.hw.mvmu_out(group[0].mvmu)
        for b in group[1:]:
            if b.where == core:
                self.emit(core, ops.add(d=acc, a=acc, b=self.hw.mvmu_out(b.mvmu), n=n, w=p.acc_bits, node=node))
            elif b in self.remote_scratch:
                addr, ch = self.remote_scratch[b]
                self.emit(core, ops.recv(dst=MemRef(NO_BASE, addr), n=n, tile=b.tile, ch=ch, count=1, node=node))
                self.emit(core, ops.load(d=tmp, src=MemRef(NO_BASE, addr), n=n, node=node))
                self.emit(core, ops.add(d=acc, a=acc, b=tmp, n=n, w=p.acc_bits, node=node))
            else:
                self.emit(core, ops.load(d=tmp, src=MemRef(NO_BASE, scratch[b]), n=n, node=node))
                self.emit(core, ops.add(d=acc, a=acc, b=tmp, n=n, w=p.acc_bits, node=node))
        if bias_reg is not None:
            self.emit(core, ops.add(d=acc, a=acc, b=bias_reg, n=n, w=p.acc_bits, node=node))
        op = self.g.op(node)
        self.activation(core, op, acc, n, p.acc_frac, tmp, node)
        self.finish(core, node, yout, acc, n, p.acc_frac, lo, out, p.acc_bits)

    def activation(self, core: Core, op: Op, reg: int, n: int, frac: int, tmp: int, node: str) -> None:
        """The instructions of ``op``'s fused activation on n words at ``reg`` in Q(., frac) (rule ACT)."""
        fn = op.attrs.get("act", "none")
        if fn == "relu":
            self.emit(core, ops.relu(d=reg, a=reg, n=n, node=node))
        elif fn in ("sigmoid", "tanh"):
            act = ops.sig if fn == "sigmoid" else ops.tanh
            self.emit(core, act(d=reg, a=reg, n=n, f=frac, node=node))
        elif fn == "leaky_relu":
            self.emit(core, ops.muli(d=tmp, a=reg, imm=leaky_coef(op.attrs["alpha"]), n=n, f=LEAKY_FRAC, w=64, node=node))
            self.emit(core, ops.max(d=reg, a=reg, b=tmp, n=n, node=node))
        elif fn == "clip":
            lo, hi = clip_bounds(op.attrs, frac)
            self.emit(core, ops.maxi(d=reg, a=reg, imm=lo, n=n, node=node))
            self.emit(core, ops.mini(d=reg, a=reg, imm=hi, n=n, node=node))

    def finish(self, core: Core, node: str, value: str, reg: int, n: int, frac: int, c0: int, out: Mem,
               src_bits: int = 64) -> None:
        """Requantize n words at ``reg`` (Q(src_bits, frac)) to ``value``'s format, store them as channels
        [c0, c0+n) of the current pixel, and send them on."""
        bits, out_frac = self.fmt[value]
        if frac != out_frac or src_bits > bits:
            self.emit(core, ops.rqnt(d=reg, a=reg, n=n, shift=frac - out_frac, w=bits, node=node))
        mem = out.shifted(c0)
        self.emit(core, ops.store(dst=mem, a=reg, n=n, count=0, node=node))
        self.send_after_store(core, value, c0, mem, n, node)

    # ---- vector ops -------------------------------------------------------------------------------------------
    def emit_vector(self, op: Op) -> None:
        """Pooling, global average and element-wise ops on the vector ALU of their core."""
        core = self.mapping.vector[op.name]
        tile, yout = core[0], op.outputs[0]
        oh, ow, c = hwc(self.g.values[yout].shape)
        chunk = self.vector_chunk(op)
        a, b = self.hw.data_base, self.hw.data_base + chunk
        out_ptr = (self.st.buffer(yout).bases[tile] + self.st.origin(yout), *self.st.pixel_step(yout))
        for c0 in range(0, c, chunk):
            n = min(chunk, c - c0)
            if op.kind == "gap":
                self._gap(core, op, a, b, n, c0, out_ptr)
            elif op.kind == "pool":
                self._pool(core, op, a, b, n, c0, oh, ow, out_ptr)
            else:
                self._eltwise(core, op, a, b, n, c0, oh, ow, out_ptr)

    def _in_ptr(self, tile: int, value: str, top: int = 0, left: int = 0, sh: int = 1,
                sw: int = 1) -> tuple[int, int, int]:
        row, pix = self.st.pixel_step(value)
        return self.st.buffer(value).bases[tile] + self.st.origin(value, top, left), sh * row, sw * pix

    def _pool(self, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
              out_ptr: tuple[int, int, int]) -> None:
        node, x = op.name, op.inputs[0]
        (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["strides"]
        dh, dw = op.attrs.get("dilations", (1, 1))
        row, pix = self.st.pixel_step(x)
        src = self._in_ptr(core[0], x, op.attrs["pads"][0], op.attrs["pads"][1], sh, sw)
        fi = self.fmt[x][1]

        def body(m: list[Mem]) -> None:
            for i in range(kh):
                for j in range(kw):
                    mem = m[0].shifted(i * dh * row + j * dw * pix + c0)
                    self.emit(core, ops.load(d=a if i == j == 0 else b, src=mem, n=n, node=node))
                    if i or j:
                        if op.attrs["mode"] == "max":
                            self.emit(core, ops.max(d=a, a=a, b=b, n=n, node=node))
                        else:
                            self.emit(core, ops.add(d=a, a=a, b=b, n=n, w=64, node=node))
            if op.attrs["mode"] == "avg":
                self.emit(core, ops.muli(d=a, a=a, imm=divisor_coef(kh * kw), n=n, f=DIV_FRAC, w=64, node=node))
            self.activation(core, op, a, n, fi, b, node)
            src_bits = self.fmt[x][0] if op.attrs["mode"] == "max" else 64
            self.finish(core, node, op.outputs[0], a, n, fi, c0, m[1], src_bits)

        self.pixel_loop(core, oh, ow, [src, out_ptr], body, node=node)

    def _gap(self, core: Core, op: Op, a: int, b: int, n: int, c0: int, out_ptr: tuple[int, int, int]) -> None:
        node, x = op.name, op.inputs[0]
        h, w, _ = hwc(self.g.values[x].shape)
        self.emit(core, ops.sub(d=a, a=a, b=a, n=n, w=64, node=node))
        self.pixel_loop(core, h, w, [self._in_ptr(core[0], x)], lambda m: (
            self.emit(core, ops.load(d=b, src=m[0].shifted(c0), n=n, node=node)),
            self.emit(core, ops.add(d=a, a=a, b=b, n=n, w=64, node=node))), node=node)
        self.emit(core, ops.muli(d=a, a=a, imm=divisor_coef(h * w), n=n, f=DIV_FRAC, w=64, node=node))
        fi = self.fmt[x][1]
        self.activation(core, op, a, n, fi, b, node)
        self.pixel_loop(core, 1, 1, [out_ptr], lambda m: self.finish(core, node, op.outputs[0], a, n, fi, c0, m[0]),
                        node=node)

    def _eltwise(self, core: Core, op: Op, a: int, b: int, n: int, c0: int, oh: int, ow: int,
                 out_ptr: tuple[int, int, int]) -> None:
        node = op.name
        fm = max(self.fmt[i][1] for i in op.inputs)
        srcs = [self._in_ptr(core[0], i) for i in op.inputs]

        def body(m: list[Mem]) -> None:
            for k, i in enumerate(op.inputs):
                reg = a if k == 0 else b
                self.emit(core, ops.load(d=reg, src=m[k].shifted(c0), n=n, node=node))
                if self.fmt[i][1] != fm:
                    self.emit(core, ops.rqnt(d=reg, a=reg, n=n, shift=self.fmt[i][1] - fm, w=64, node=node))
                if k:
                    self.emit(core, ops.add(d=a, a=a, b=b, n=n, w=64, node=node))
            self.activation(core, op, a, n, fm, b, node)
            self.finish(core, node, op.outputs[0], a, n, fm, c0, m[-1])

        spatial = len(self.g.values[op.outputs[0]].shape) == 3
        self.pixel_loop(core, oh, ow, srcs + [out_ptr], body, spatial=spatial, node=node)

    # ---- inputs, outputs, borders -------------------------------------------------------------------------------
    def emit_inputs(self) -> None:
        """Graph inputs: the host writes the whole padded buffer on the home tile; the home core sends it on."""
        for v in self.g.inputs:
            buf, home = self.st.buffer(v.name), self.producers[v.name][0][0]
            bits, frac = self.fmt[v.name]
            self.program.inputs.append(TensorLoc(v.name, home[0], buf.bases[home[0]], buf.words, bits, frac,
                                                 v.shape, 0, tuple(buf.pads), buf.fill or 0))
            for t in sorted(self.need[v.name] - {home[0]}):
                rcv = self.receiver(v.name, t)
                for lo in range(0, buf.words, MAX_MSG):
                    n = min(MAX_MSG, buf.words - lo)
                    ch = self.channels[(home[0], t)]
                    self.channels[(home[0], t)] += 1
                    self.prologue[home].append(ops.send(src=MemRef(NO_BASE, buf.bases[home[0]] + lo), n=n, tile=t, ch=ch, node=v.name))
                    self.prologue[rcv].append(ops.recv(dst=MemRef(NO_BASE, buf.bases[t] + lo), n=n, tile=home[0], ch=ch, count=0, node=v.name))

    def emit_borders(self) -> None:
        """Initial data: the border of every padded buffer copy -- not of graph inputs: the host writes the whole
        padded buffer on the home tile and the home core sends all of it, border included, to the other tiles."""
        inputs = {v.name for v in self.g.inputs}
        for root, buf in self.st.buffers.items():
            if not any(buf.pads) or root in inputs:
                continue
            for t, base in sorted(buf.bases.items()):
                for lo, n in self._border_runs(buf):
                    self.program.data.append(MemInit(t, base + lo, np.full(n, buf.fill or 0, np.int64), 0))

    @staticmethod
    def _border_runs(buf: Buffer) -> list[tuple[int, int]]:
        """(offset, length) of the border runs of one copy: whole rows above and below, and the left and right
        border pixels of every interior row."""
        pt, pl, pb, pr = buf.pads
        row = buf.wp * buf.c
        runs = [(0, pt * row)] if pt else []
        for h in range(pt, pt + buf.h):
            if pl:
                runs.append((h * row, pl * buf.c))
            if pr:
                runs.append((h * row + (pl + buf.w) * buf.c, pr * buf.c))
        if pb:
            runs.append(((pt + buf.h) * row, pb * row))
        return runs

    def emit_outputs(self) -> None:
        """Output locations on each output's tile."""
        for name in self.g.outputs:
            buf, core = self.st.buffer(name), self.out_core[name]
            if self.st.views[name].coff or self.st.root(name) != name:
                raise ModelError(f"graph output '{name}' is also a concat input; not supported")
            bits, frac = self.fmt[name]
            self.program.outputs.append(TensorLoc(self.g.external_name(name), core[0], buf.bases[core[0]],
                                                  buf.words, bits, frac, self.g.values[name].shape, 0,
                                                  tuple(buf.pads), buf.fill or 0))

    # ---- driver -------------------------------------------------------------------------------------------------
    def run(self) -> Program:
        """Plan, emit every op, attach inputs/outputs/borders, and return the program."""
        self.plan()
        for op in self.g.ops:
            if op.is_crossbar:
                self.emit_crossbar(op)
            elif op.kind != "concat":
                self.emit_vector(op)
        self.emit_inputs()
        self.emit_outputs()
        self.emit_borders()
        for core in sorted(set(self.code) | set(self.head) | set(self.tail) | set(self.prologue)):
            cc = self.program.core(*core)
            cc.instrs = self._relocate(self.prologue[core], self.head[core], self.code[core], self.tail[core])
            cc.instrs.append(ops.halt(node=cc.instrs[-1].node if cc.instrs else None))
        self.program.cores.sort(key=lambda c: (c.tile, c.core))
        self.program.meta["formats"] = {k: list(v) for k, v in self.fmt.items()}
        return self.program

    @staticmethod
    def _relocate(*parts: list[Instr]) -> list[Instr]:
        """Concatenate the parts, shifting branch targets (recorded relative to each part's start)."""
        out: list[Instr] = []
        for part in parts:
            base = len(out)
            for ins in part:
                out.append(relocated(ins, base))
        return out


def relocated(instr: Instr, base: int) -> Instr:
    """``instr`` with its branch targets shifted by ``base`` (code recorded relative to a part's start)."""
    labels = [f.name for f in instr.spec.fields if f.kind == "label"]
    if not labels:
        return instr
    return replace(instr, **{name: t + base for name, t in zip(labels, branch_targets(instr))})


def generate(g: Graph, prec: dict[str, LayerPrecision], mapping: Mapping, hw: HardwareConfig,
             fmt: dict[str, Format]) -> Program:
    """Compile a mapped graph to a program."""
    return Emitter(g, prec, fmt, mapping, hw).run()
