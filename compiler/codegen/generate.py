"""Code generation: a mapped graph -> an `isa.Program`, in three steps.

1. Plan (`plan.py`): storage of every tensor (`storage.py`), then the communication plan -- producers, readers,
   buffer copies, streams between tiles, partial sums, biases, input transfers -- computed once.
2. Emit: each op by its kind's ``emit`` (`compiler.ops`), which calls one small emitter per op family: crossbar layers (`crossbar.py`), vector-ALU ops (`vector.py`), and the
   program's edges (`transfers.py`: receives, inputs, outputs, borders). Each core runs one op; pixel loops
   (`loops.py`) keep the program size independent of the image size; every output goes through `epilogue.py`.
3. Assemble each core's stream: prologue, head, code, tail (branch targets relocated), then ``halt``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from isa import Instr, Program, ops
from isa.errors import ConfigError
from isa.hardware import HardwareConfig
from isa.printer import branch_targets

from ..ir import Graph
from ..mapping import Mapping
from ..ops import kind_of
from ..quant import LayerPrecision
from ..quant.blockcache import quantized as quantized_layer
from ..quant.formats import Format
from .context import Context, CoreStreams
from .loops import LOOP_REGS, required_data_regs
from .plan import TileMemory, plan_communication
from .storage import Storage
from .transfers import emit_borders, emit_inputs, emit_outputs, emit_receive


def generate(g: Graph, prec: dict[str, LayerPrecision], mapping: Mapping, hw: HardwareConfig,
             fmt: dict[str, Format]) -> Program:
    """Compile a mapped graph to a program (see module docstring)."""
    if hw.data_regs < required_data_regs(hw):
        raise ConfigError(f"hardware: field 'data_regs': the compiler needs at least {required_data_regs(hw)} "
                          f"data registers per core ((mvmus_per_core + 1) x xbar_cols for biases and a partial "
                          f"sum, plus {LOOP_REGS} loop registers), got {hw.data_regs}")
    quantized = {op.name: quantized_layer(op, prec[op.name]) for op in g.crossbar_ops()}  # cached, narrow
    st = Storage(g, fmt)
    plan = plan_communication(g, mapping, st, hw, {k for k, q in quantized.items() if q.bias is not None},
                              TileMemory(hw))
    ctx = Context(g, prec, fmt, mapping, hw, st, plan, Program(hw, meta={"model": g.name}), quantized=quantized)
    for s in plan.streams:
        emit_receive(ctx, s)
    for op in g.ops:
        kind_of(op).emit(ctx, op)
    emit_inputs(ctx)
    emit_outputs(ctx)
    emit_borders(ctx)
    for core in sorted(ctx.streams):
        cc = ctx.program.core(*core)
        cc.instrs = assemble_stream(ctx.streams[core])
    ctx.program.cores.sort(key=lambda c: (c.tile, c.core))
    ctx.program.meta["formats"] = {k: list(v) for k, v in fmt.items()}
    return ctx.program


def add_programming(program: Program) -> Program:
    """Make ``program`` a reprogramming round: every core holding MVMU images first writes them (one ``prog`` of
    all its MVMUs at pc 0, branch targets shifted), so the chip's crossbars are written in the round itself
    (docs/cost-model.md, "Reprogramming rounds"); returns it."""
    masks: dict[tuple[int, int], int] = {}
    nodes: dict[tuple[int, int], str] = {}
    for img in program.mvmus:
        masks[img.tile, img.core] = masks.get((img.tile, img.core), 0) | 1 << img.mvmu
        nodes.setdefault((img.tile, img.core), img.node)
    for cc in program.cores:
        mask = masks.get((cc.tile, cc.core))
        if mask:
            head = ops.prog(mask=mask, node=nodes[cc.tile, cc.core] or None)
            cc.instrs = [head] + [relocated(i, 1) for i in cc.instrs]
    return program


def assemble_stream(streams: CoreStreams) -> list[Instr]:
    """Concatenate a core's parts, shifting branch targets (recorded relative to each part's start), and halt."""
    out: list[Instr] = []
    for part in streams.parts:
        base = len(out)
        out += [relocated(ins, base) for ins in part]
    out.append(ops.halt(node=out[-1].node if out else None))
    return out


def relocated(instr: Instr, base: int) -> Instr:
    """``instr`` with its branch targets shifted by ``base``."""
    labels = [f.name for f in instr.spec.fields if f.kind == "label"]
    if not labels:
        return instr
    shifted: dict[str, Any] = {name: t + base for name, t in zip(labels, branch_targets(instr))}
    return replace(instr, **shifted)
