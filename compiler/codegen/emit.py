"""Code generation: a mapped graph of dense layers -> an `isa.Program`.

Tensors live in tile memory, flat and row-major, in chunks (the producer's column blocks; crossbar-row-sized
chunks for graph inputs). A chunk is stored once by its producer on its tile with a reader count equal to its
local loads plus its sends; every other tile that needs it gets a copy by send/receive. Each core runs one
layer: receive what it is designated to receive, load its blocks' inputs, fire its MVMUs, then either hand its
partial sums to the column block's owner (through tile memory) or, as owner, accumulate them in row order, add
the bias, apply the activation, requantize to the consumers' input format, store and send.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from isa import NO_BASE, Instr, MemInit, MvmuImage, Program, TensorLoc
from isa.errors import ModelError
from isa.hardware import HardwareConfig

from ..ir import Graph, Op
from ..mapping import Block, Mapping
from ..quant import LayerPrecision, input_format, quantize_layer

Core = tuple[int, int]


@dataclass
class TensorPlan:
    """Where a tensor's chunks are produced, which tiles hold copies, and how many loads read each chunk."""

    name: str
    length: int
    chunks: list[tuple[int, int]]
    producer: list[Core]
    bits: int = 0
    frac: int = 0
    copies: dict[int, int] = field(default_factory=dict)
    readers: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    receivers: dict[tuple[int, int], Core] = field(default_factory=dict)
    output_tile: int | None = None
    output_core: Core | None = None

    def chunks_in(self, lo: int, hi: int) -> list[int]:
        """Indices of the chunks overlapping [lo, hi)."""
        return [i for i, (a, b) in enumerate(self.chunks) if a < hi and lo < b]

    def tiles_needing(self, i: int) -> list[int]:
        """Tiles other than the producer's that need chunk ``i``."""
        tiles = {t for (t, j) in self.readers if j == i}
        if self.output_tile is not None:
            tiles.add(self.output_tile)
        return sorted(tiles - {self.producer[i][0]})


class Emitter:
    """Builds the program core by core (see module docstring)."""

    def __init__(self, g: Graph, prec: dict[str, LayerPrecision], mapping: Mapping, hw: HardwareConfig) -> None:
        self.g, self.prec, self.mapping, self.hw = g, prec, mapping, hw
        self.program = Program(hw, meta={"model": g.name})
        self.mem_top: dict[int, int] = defaultdict(int)
        self.code: dict[Core, list[Instr]] = defaultdict(list)
        self.tail: dict[Core, list[Instr]] = defaultdict(list)
        self.pending: dict[Core, list[Instr]] = defaultdict(list)
        self.channels: dict[tuple[int, int], int] = defaultdict(int)
        self.tensors: dict[str, TensorPlan] = {}

    # ---- memory -------------------------------------------------------------------------------------------------
    def alloc(self, tile: int, words: int) -> int:
        """Bump-allocate ``words`` of tile memory."""
        addr = self.mem_top[tile]
        self.mem_top[tile] += words
        if self.mem_top[tile] > self.hw.tile_mem_words:
            raise ModelError(f"tile {tile} memory overflow: {self.mem_top[tile]} words needed, "
                             f"{self.hw.tile_mem_words} available")
        return addr

    # ---- planning -----------------------------------------------------------------------------------------------
    def plan(self) -> None:
        """Decide chunks, producers, copies, reader counts and receivers of every tensor."""
        for v in self.g.inputs:
            first = self._first_consumer_block(v.name)
            n = v.size
            chunks = [(lo, min(n, lo + self.hw.xbar_rows)) for lo in range(0, n, self.hw.xbar_rows)]
            bits, frac = input_format(self.g, v.name, self.prec) or (16, 0)
            self.tensors[v.name] = TensorPlan(v.name, n, chunks, [first.where] * len(chunks), bits, frac)
        for op in self.g.crossbar_ops():
            lm = self.mapping.layers[op.name]
            n = op.params["weight"].shape[1]
            chunks = [lm.group(c)[0].cols for c in range(lm.col_blocks)]
            producers = [lm.owner(c) for c in range(lm.col_blocks)]
            self.tensors[op.outputs[0]] = TensorPlan(op.outputs[0], n, chunks, producers)
        for op in self.g.crossbar_ops():
            plan = self.tensors[op.inputs[0]]
            for b in self.mapping.layers[op.name].blocks:
                for i in plan.chunks_in(*b.rows):
                    plan.readers[(b.tile, i)] += 1
                    plan.receivers.setdefault((b.tile, i), b.where)
        for name in self.g.outputs:
            plan = self.tensors[name]
            plan.output_core = plan.producer[0]
            plan.output_tile = plan.output_core[0]
        for plan in self.tensors.values():
            tiles = {t for t, _ in plan.readers} | {c[0] for c in plan.producer}
            tiles |= {plan.output_tile} if plan.output_tile is not None else set()
            for t in sorted(tiles):
                plan.copies[t] = self.alloc(t, plan.length)

    def _first_consumer_block(self, value: str) -> Block:
        for op in self.g.consumers(value):
            if op.is_crossbar:
                return self.mapping.layers[op.name].blocks[0]
        raise ModelError(f"graph input '{value}' is not read by any crossbar layer")

    # ---- emission helpers ---------------------------------------------------------------------------------------
    def emit(self, core: Core, op: str, *args: object, node: str) -> None:
        """Append one instruction to ``core``'s stream."""
        self.code[core].append(Instr(op, tuple(args), node))  # type: ignore[arg-type]

    def _chunk_count(self, plan: TensorPlan, i: int, tile: int) -> int:
        """Reader count for chunk ``i``'s words on ``tile``: local loads, plus sends from the producer's tile;
        0 (valid forever) for graph inputs and for graph outputs on the output tile."""
        if plan.name in {v.name for v in self.g.inputs}:
            return 0
        if plan.output_tile == tile:
            return 0
        count = plan.readers.get((tile, i), 0)
        if tile == plan.producer[i][0]:
            count += len(plan.tiles_needing(i))
        if count > 255:
            raise ModelError(f"tensor '{plan.name}' chunk {i}: {count} readers on tile {tile} exceed 255")
        return count

    def send_chunk(self, plan: TensorPlan, i: int, node: str) -> None:
        """Sends of chunk ``i`` from its producer to every other tile needing it, and the matching receives."""
        src_core = plan.producer[i]
        lo, hi = plan.chunks[i]
        for t in plan.tiles_needing(i):
            ch = self.channels[(src_core[0], t)]
            self.channels[(src_core[0], t)] += 1
            self.emit(src_core, "send", (NO_BASE, plan.copies[src_core[0]] + lo), hi - lo, t, ch, node=node)
            rcv = plan.output_core if t == plan.output_tile and plan.output_core else plan.receivers[(t, i)]
            instr = Instr("recv", ((NO_BASE, plan.copies[t] + lo), hi - lo, src_core[0], ch,
                                   self._chunk_count(plan, i, t)), node)
            (self.tail if t == plan.output_tile else self.pending)[rcv].append(instr)

    # ---- layers -------------------------------------------------------------------------------------------------
    def emit_inputs(self) -> None:
        """Graph inputs: the host writes them on their home tile; the home core sends copies elsewhere."""
        for v in self.g.inputs:
            plan = self.tensors[v.name]
            tile = plan.producer[0][0]
            self.program.inputs.append(TensorLoc(v.name, tile, plan.copies[tile], plan.length, plan.bits,
                                                 plan.frac, v.shape, 0))
            for i in range(len(plan.chunks)):
                self.send_chunk(plan, i, node=v.name)

    def emit_layer(self, op: Op) -> None:
        """All cores of one crossbar layer."""
        lm, p = self.mapping.layers[op.name], self.prec[op.name]
        q = quantize_layer(op, p)
        xin, yout = self.tensors[op.inputs[0]], self.tensors[op.outputs[0]]
        nxt = input_format(self.g, op.outputs[0], self.prec)
        if nxt is not None and op.outputs[0] in self.g.outputs:
            raise ModelError(f"layer '{op.name}': output is both a graph output and another layer's input")
        yout.bits, yout.frac = nxt if nxt else (p.acc_bits, p.acc_frac)
        for b in lm.blocks:
            w = q.weight[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]]
            self.program.mvmus.append(MvmuImage(b.tile, b.core, b.mvmu, np.ascontiguousarray(w), p.w_bits, op.name))
        scratch = {b: self.alloc(b.tile, b.cols[1] - b.cols[0]) for b in lm.blocks if b.where != lm.owner(b.c)}
        for core in lm.cores():
            self._emit_core(core, op, lm.blocks, q.bias, p, xin, yout, scratch, nxt)

    def _emit_core(self, core: Core, op: Op, blocks: list[Block], bias: np.ndarray | None, p: LayerPrecision,
                   xin: TensorPlan, yout: TensorPlan, scratch: dict[Block, int],
                   nxt: tuple[int, int] | None) -> None:
        hw, node = self.hw, op.name
        self.code[core].extend(self.pending.pop(core, []))
        mine = [b for b in blocks if b.where == core]
        for b in mine:
            self.emit(core, "load", hw.mvmu_in(b.mvmu), (NO_BASE, xin.copies[b.tile] + b.rows[0]),
                      b.rows[1] - b.rows[0], node=node)
        mask = sum(1 << b.mvmu for b in mine)
        self.emit(core, "mvm", mask, p.in_bits, p.adc_bits, p.mvm_shift, p.acc_bits, node=node)
        for c in dict.fromkeys(b.c for b in mine):
            group = [b for b in blocks if b.c == c]
            if group[0].where != core:
                for b in (b for b in group if b.where == core):
                    self.emit(core, "store", (NO_BASE, scratch[b]), hw.mvmu_out(b.mvmu), b.cols[1] - b.cols[0], 1,
                              node=node)
                continue
            self._emit_owner(core, node, group, scratch, bias, p, yout, c, nxt)

    def _emit_owner(self, core: Core, node: str, group: list[Block], scratch: dict[Block, int],
                    bias: np.ndarray | None, p: LayerPrecision, yout: TensorPlan, c: int,
                    nxt: tuple[int, int] | None) -> None:
        hw, tmp = self.hw, self.hw.data_base
        lo, hi = group[0].cols
        n, acc = hi - lo, hw.mvmu_out(group[0].mvmu)
        for b in group[1:]:
            if b.where == core:
                self.emit(core, "add", acc, acc, hw.mvmu_out(b.mvmu), n, p.acc_bits, node=node)
            else:
                self.emit(core, "load", tmp, (NO_BASE, scratch[b]), n, node=node)
                self.emit(core, "add", acc, acc, tmp, n, p.acc_bits, node=node)
        if bias is not None:
            addr = self.alloc(core[0], n)
            self.program.data.append(MemInit(core[0], addr, bias[lo:hi].astype(np.int64), 0))
            self.emit(core, "load", tmp, (NO_BASE, addr), n, node=node)
            self.emit(core, "add", acc, acc, tmp, n, p.acc_bits, node=node)
        act = self.g.op(node).attrs.get("act", "none")
        if act == "relu":
            self.emit(core, "relu", acc, acc, n, node=node)
        elif act in ("sigmoid", "tanh"):
            self.emit(core, "sig" if act == "sigmoid" else "tanh", acc, acc, n, p.acc_frac, node=node)
        if nxt is not None:
            self.emit(core, "rqnt", acc, acc, n, p.acc_frac - nxt[1], nxt[0], node=node)
        tile = core[0]
        self.emit(core, "store", (NO_BASE, yout.copies[tile] + lo), acc, n, self._chunk_count(yout, c, tile),
                  node=node)
        self.send_chunk(yout, c, node=node)

    # ---- driver -------------------------------------------------------------------------------------------------
    def run(self) -> Program:
        """Plan, emit every layer, attach outputs, and return the program."""
        for op in self.g.ops:
            if not op.is_crossbar:
                raise ModelError(f"op '{op.name}' ({op.kind}) cannot run on the device yet: only crossbar layers "
                                 f"with fused bias and activation are supported")
        self.plan()
        self.emit_inputs()
        for op in self.g.crossbar_ops():
            self.emit_layer(op)
        for name in self.g.outputs:
            plan = self.tensors[name]
            assert plan.output_tile is not None
            self.program.outputs.append(TensorLoc(self.g.external_name(name), plan.output_tile,
                                                  plan.copies[plan.output_tile], plan.length, plan.bits, plan.frac,
                                                  self.g.values[name].shape, 0))
        for core in sorted(set(self.code) | set(self.tail)):
            cc = self.program.core(*core)
            body = self.code[core] + self.tail[core]
            cc.instrs = body + [Instr("halt", (), body[-1].node if body else None)]
        self.program.cores.sort(key=lambda c: (c.tile, c.core))
        return self.program


def generate(g: Graph, prec: dict[str, LayerPrecision], mapping: Mapping, hw: HardwareConfig) -> Program:
    """Compile a mapped graph to a program."""
    return Emitter(g, prec, mapping, hw).run()
