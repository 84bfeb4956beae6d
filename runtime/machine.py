"""`Machine`: loads a `Program`, runs a batch in lock step, schedules cores, detects deadlock, wraps faults.

Scheduling: each core runs until it blocks or halts; then the lowest (tile, core) that can progress runs next.
A blocked core is retried only after its tile's memory or incoming FIFOs changed (a per-tile epoch counter).
Deadlock = live cores remain and none can progress. Costs go through one accountant (`isa.costs.Accountant`): at
load time it costs every pc (the latencies the scheduler adds); during a run each core's `CoreMeter` is notified of
every executed instruction and, by the mvm handler, of the input digits of every MVMU firing; after the run its
`Ledger` gives energy per component, instruction and layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from isa import (CoreCode, DeadlockError, HardwareConfig, Instr, Location, MemRef, Program, RuntimeFault, TensorLoc,
                 XbarcError)
from isa import numerics as nx
from isa import NO_BASE, ops
from isa.printer import format_instr

from isa.costs import Accountant, CoreCosts
from isa.inport import port_messages, port_output
from isa.memory import chunk_size, memory_budget, mib
from .devices import DeviceModel, NoisyMvmu, program_devices
from .gangs import bind_gangs, find_gangs, run_gang
from .loops import LoopPlan, NestPlan, find_loops, mark_sized_recvs, run_batched
from .handlers import HALT, HANDLERS, DecodeContext, Handler, Wait, decode, fault_handler
from .prepare import prepare_kernels
from .programming import unprogrammed
from .replay import MAX_TRACES, Trace, data_independent, mem_operand, templates
from .state import I64, CoreState, Fault, MachineState, MvmuKernel, TileMemory
from .stats import Stats, busy_timeline, tile_traffic


Step = tuple[Handler, object, int]  # (handler, what it receives, latency) of one pc


@dataclass
class RunResult:
    """Outputs (name -> (batch, length) int64 Q(bits, frac) values) and the run's statistics."""

    outputs: dict[str, np.ndarray]
    stats: Stats


@dataclass
class _Compiled:
    """One core's code decoded once: (handler, operands, latency) per pc, and its static costs."""

    source: CoreCode
    code: list[Step]
    costs: CoreCosts
    loops: dict[int, LoopPlan | NestPlan]
    mems: list[MemRef | None]  # per pc: the memory operand (None: none)


class Machine:
    """Executes a `Program` on a batch of inputs (see module docstring). ``reference=True`` interprets one
    instruction at a time; by default static loops run all their iterations at once (`runtime.loops`), with the
    same outputs and counters. ``once=True``: a machine built for one run (`compiler.runner.run`, a shard, a
    round) records a trace (`runtime.replay`) only when its batch runs in chunks, for the later chunks to replay;
    a run in one chunk would never use it (recording costs ~25 % of a run on line-buffered programs)."""

    def __init__(self, program: Program, reference: bool = False, replay: bool = True, once: bool = False) -> None:
        self.program = program
        self.reference = reference
        self.once = once
        self.batched = 0  # instructions the last run executed batched (fast mode)
        self.hw = hw = program.hw
        kernels = self._kernels(program, hw)
        for (tile, core), per_core in kernels.items():
            used = sum(k.shape.crossbars for k in per_core.values())
            if hw.xbars_per_core and used > hw.xbars_per_core:
                raise XbarcError(f"tile {tile} core {core}: its MVMU images use {used} crossbars but a core has "
                                 f"{hw.xbars_per_core} (xbars_per_core)")
        seen: set[tuple[int, int]] = set()
        for cc in program.cores:
            if not (0 <= cc.tile < hw.tiles and 0 <= cc.core < hw.cores_per_tile):
                raise XbarcError(f"core tile {cc.tile} core {cc.core} does not exist on {hw.name} "
                                 f"({hw.tiles} tiles x {hw.cores_per_tile} cores)")
            if (cc.tile, cc.core) in seen:
                raise XbarcError(f"two instruction streams for tile {cc.tile} core {cc.core}")
            seen.add((cc.tile, cc.core))
        ordered = sorted(program.cores, key=lambda cc: (cc.tile, cc.core))
        self.accountant = Accountant(hw)
        self._compiled = [self._compile(cc, kernels.get((cc.tile, cc.core), {})) for cc in ordered]
        sends: dict[tuple[int, int, int], set[int]] = {}
        for cc in program.cores:
            for i in cc.instrs:
                if isinstance(i, ops.Send):
                    sends.setdefault((cc.tile, i.tile, i.ch), set()).add(i.n)
        mark_sized_recvs([c.loops for c in self._compiled], sends)
        self._gangs = [] if reference else find_gangs([c.source.tile for c in self._compiled],
                                                       [c.loops for c in self._compiled])
        self._left = 0
        #: why runs are not replayed (`runtime.replay`), None if they are
        self.no_replay: str | None = ("reference mode" if reference else "replay=False" if not replay else
                                      next((why for c in self._compiled
                                            if (why := data_independent(c.source.instrs, hw)) is not None), None))
        self._traces: dict[int, Trace] = {}  # batch size -> the recorded run
        self._static: dict[tuple[int, ...], tuple[Any, ...]] = {}  # chunk sizes -> `_stats`'s static part
        self.replayed = False  # whether every chunk of the last run replayed a trace (`runtime.replay`)

    # ---- loading -------------------------------------------------------------------------------------------------
    @staticmethod
    def _kernels(program: Program, hw: HardwareConfig) -> dict[tuple[int, int], dict[int, MvmuKernel]]:
        """Every MVMU image prepared (`runtime.prepare`: in batches), by core and MVMU index."""
        seen: set[tuple[int, int, int]] = set()
        for img in program.mvmus:
            if (img.tile, img.core, img.mvmu) in seen:
                raise XbarcError(f"two images for MVMU {img.mvmu} of tile {img.tile} core {img.core}")
            seen.add((img.tile, img.core, img.mvmu))
        kernels: dict[tuple[int, int], dict[int, MvmuKernel]] = {}
        for img, kern in zip(program.mvmus, prepare_kernels(program.mvmus, hw)):
            kernels.setdefault((img.tile, img.core), {})[img.mvmu] = kern
        return kernels

    def _compile(self, cc: CoreCode, kernels: dict[int, MvmuKernel]) -> _Compiled:
        ctx = DecodeContext(self.hw, cc.tile, cc.core, kernels, len(cc.instrs))
        costs = self.accountant.core(cc.tile, cc.core, {k: m.shape for k, m in kernels.items()})
        code: list[Step] = []
        pointers = pointer_registers(cc.instrs)
        for instr in cc.instrs:
            fn: Handler = fault_handler
            try:
                ops: object = decode(instr, ctx)
                fn = HANDLERS[instr.op]
                clash = overwritten_pointer(instr, pointers)
                if clash is not None:
                    fn, ops = fault_handler, clash
            except KeyError:
                ops = f"unknown instruction {instr.op!r}"
            except Fault as f:
                ops = str(f)
            code.append((fn, ops, costs.load(instr, runnable=fn is not fault_handler)))
        for pc, reason in unprogrammed(cc.instrs).items():  # an MVMU used before its prog holds no weights
            code[pc] = (fault_handler, reason, code[pc][2])
        loops = {} if self.reference else find_loops(cc.instrs, code, self.hw, cc.tile)
        return _Compiled(cc, code, costs, loops, [mem_operand(i) for i in cc.instrs])

    def _batch_of(self, inputs: dict[str, np.ndarray]) -> tuple[int, dict[str, np.ndarray]]:
        """Check inputs against the manifest; returns the batch size and (batch, length) int64 arrays."""
        want = {loc.name: loc for loc in self.program.inputs}
        missing, extra = sorted(set(want) - set(inputs)), sorted(set(inputs) - set(want))
        if missing or extra:
            raise XbarcError(f"inputs: missing {missing}, unexpected {extra}; the program takes {sorted(want)}")
        out: dict[str, np.ndarray] = {}
        batch = None
        for name, loc in want.items():
            arr = np.asarray(inputs[name])
            if arr.dtype.kind not in "iu":
                raise XbarcError(f"input {name!r}: expected quantized integers Q({loc.bits}, {loc.frac}), "
                                 f"got dtype {arr.dtype}")
            if arr.ndim < 2 or arr[0].size != loc.length:
                raise XbarcError(f"input {name!r}: expected shape (batch, {loc.length}) or (batch, "
                                 f"{', '.join(map(str, loc.shape))}), got {arr.shape}")
            arr = arr.reshape(len(arr), loc.length)
            if batch is not None and len(arr) != batch:
                raise XbarcError(f"input {name!r}: batch {len(arr)} differs from the other inputs' {batch}")
            batch = len(arr)
            if arr.size and (arr.min() < nx.qmin(loc.bits) or arr.max() > nx.qmax(loc.bits)):  # before the cast
                raise XbarcError(f"input {name!r}: values outside the {loc.bits}-bit range of Q({loc.bits}, "
                                 f"{loc.frac})")
            out[name] = arr.astype(I64)
        if batch == 0:
            raise XbarcError("inputs: empty batch")
        return batch or 1, out

    def _fresh_state(self, batch: int, inputs: dict[str, np.ndarray], trace: Trace | None = None) -> MachineState:
        """The state a run starts from; to replay ``trace``, its tile memories hold values only, at the sizes
        the recorded run ended with."""
        hw = self.hw
        st = MachineState(hw, batch, {}, epoch=[0] * hw.tiles)
        if trace is not None:
            for t, size in trace.sizes.items():
                st.memory(t).values_only(size)
        for init in self.program.data:
            vals = np.asarray(init.values, dtype=I64).reshape(-1)
            self._place(st, init.tile, init.addr, len(vals), f"data at tile {init.tile} addr {init.addr}")
            st.memory(init.tile).write(init.addr, np.repeat(vals[:, None], batch, axis=1), init.count, 0)
        for loc in self.program.inputs:
            if loc.port:  # streamed through the input port (`isa.inport`)
                continue
            self._place(st, loc.tile, loc.addr, loc.length, f"input {loc.name!r}")
            st.memory(loc.tile).write(loc.addr, inputs[loc.name].T, loc.count, 0)
        st.fifos.update(port_messages(hw, self.program.inputs, inputs))
        for comp, meter in zip(self._compiled, self.accountant.meters()):
            cc = comp.source
            st.cores.append(CoreState(cc.tile, cc.core, np.zeros((hw.core_regs, batch), dtype=I64),
                                      st.memory(cc.tile), st.fifos, st.epoch, comp.code, halted=not comp.code,
                                      meter=meter, loops=comp.loops, batch=batch, index=len(st.cores)))
        bind_gangs(self._gangs, st.cores)
        return st

    def _place(self, st: MachineState, tile: int, addr: int, n: int, what: str) -> None:
        if not (0 <= tile < self.hw.tiles and 0 <= addr and addr + n <= self.hw.tile_mem_words):
            raise XbarcError(f"{what}: words [{addr}, {addr + n}) of tile {tile} outside the chip "
                             f"({self.hw.tiles} tiles of {self.hw.tile_mem_words} words)")

    # ---- running -------------------------------------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray], max_instructions: int = 50_000_000,
            budget: int | None = None, workers: int = 1, devices: DeviceModel | None = None,
            trial: int = 0, backend: str = "process", address: str | None = None) -> RunResult:
        """Run every core to halt on a batch of quantized inputs; returns the outputs and statistics.

        A batch whose machine state would exceed the memory budget (``budget`` bytes, default
        `isa.memory.memory_budget`) runs in chunks, one after the other; outputs and every counter are those of
        one pass (event counts are exact integers, divided by the whole batch once). One item that cannot fit
        the budget is an error with the numbers; so is a program whose control flow differs between chunks
        (branches and based addresses read batch lane 0, so such a program cannot be split). ``workers`` > 1
        shards the batch over that many processes (`runtime.parallel`), each with one BLAS thread; the result is
        the same as one process's; ``backend="ray"`` shards it over Ray tasks instead (``address``: a running
        cluster to join).

        ``devices`` (opt-in, `runtime.devices`): the crossbars hold conductances sampled from this model for
        trial ``trial`` and every MVM converts their perturbed currents; None (default): the exact MVM.
        A device run stays in one process."""
        batch, arrays = self._batch_of(inputs)
        noisy = None if devices is None else program_devices(devices, self.program, trial)
        if (workers > 1 or backend != "process") and batch > 1 and noisy is None:
            from .parallel import run_parallel

            return run_parallel(self, arrays, workers, max_instructions, budget, backend=backend, address=address)
        states, outputs = self.run_states(arrays, max_instructions, budget, noisy)
        sizes = tuple(s.batch for s in states)  # runs of recorded chunk sizes share their control flow
        key = sizes if noisy is None and all(n in self._traces for n in sizes) else None
        return RunResult(outputs, self._stats(states, key))

    def run_states(self, arrays: dict[str, np.ndarray], max_instructions: int = 50_000_000,
                   budget: int | None = None,
                   noisy: dict[tuple[int, int], dict[int, NoisyMvmu]] | None = None
                   ) -> tuple[list[MachineState], dict[str, np.ndarray]]:
        """`run` on checked (batch, length) int64 inputs, without the statistics: the final states of its chunks
        (cores and meters only) and the outputs."""
        batch = len(next(iter(arrays.values()))) if arrays else 1
        budget = memory_budget() if budget is None else budget
        regs, tmp, known, whole, detail = self._item_bytes()
        size = chunk_size("run", regs + tmp + known, batch, budget, detail)  # what one item surely needs fits
        if batch * (regs + tmp + whole) > budget:  # memory grows on demand: measure a first chunk, then the rest
            size = min(size, max(1, budget // (regs + tmp + whole)))
        states, outs, lo = [], [], 0
        self.batched, self.replayed = 0, True
        while lo < batch:
            hi = min(batch, lo + size)
            trace = self._traces.get(hi - lo) if noisy is None else None
            if trace is not None and trace.instructions > max_instructions:
                trace = None  # fewer instructions allowed than the recorded run executed: run it (it faults)
            st = self._fresh_state(hi - lo, {k: v[lo:hi] for k, v in arrays.items()}, trace)
            if noisy is not None:  # opt-in non-ideal devices: each core fires its MVMUs' sampled arrays
                for c in st.cores:
                    c.devices = noisy.get((c.tile, c.core), {})
            self._left, self._budget = max_instructions, max_instructions
            if trace is not None:
                trace.replay(st)
                self.batched += trace.batched
            else:
                self.replayed = False
                self._record(st, noisy is None and (not self.once or hi < batch))
            outs.append({loc.name: self._read_output(st, loc, trace is None) for loc in self.program.outputs})
            states.append(st)
            held = sum(c.regs.nbytes for c in st.cores) + sum(m.values.nbytes for m in st.memories.values())
            if lo == 0 and hi < batch:
                size = chunk_size("run", held // (hi - lo) + tmp, batch, budget, detail)
            for c in st.cores:  # only the meters are needed from here on (no views: they would keep the big
                c.regs = np.empty((0, 0), dtype=I64)  # arrays alive)
            st.memories.clear()
            for c in st.cores:
                c.mem = TileMemory(0, 0)
            lo = hi
        self.same_control_flow(states, batch, f"does not fit the memory budget of {mib(budget)} in one pass")
        return states, {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    def _record(self, st: MachineState, ideal: bool) -> None:
        """Schedule ``st`` to halt, recording its trace (`runtime.replay`) if this machine replays and the run
        is ``ideal`` (no device model, and a trace may be used: see ``once``); the trace is kept for the batch
        size once the run completed."""
        trace = None
        if ideal and self.no_replay is None:
            trace = Trace(st.batch)
            trace.templates = [templates(comp.source.instrs, comp.code) for comp in self._compiled]
            for c in st.cores:
                c.trace = trace
        batched = self.batched
        self._schedule(st)
        if trace is not None:
            for c in st.cores:
                c.trace = None
            if not trace.overflow:
                trace.finish(st, self.batched - batched)
                self._traces[st.batch] = trace
                while len(self._traces) > MAX_TRACES:  # the oldest batch sizes' traces go first
                    old = next(iter(self._traces))
                    del self._traces[old]
                    self._static = {k: v for k, v in self._static.items() if old not in k}

    def _item_bytes(self) -> tuple[int, int, int, int, str]:
        """Bytes one batch item needs: registers, MVM temporaries (digits, bit-line values and products of the
        widest MVM), the memory words the program names statically (data, inputs, outputs: a lower bound) and
        every used tile's whole memory (an upper bound), and a description for messages."""
        hw, prog = self.hw, self.program
        regs = len(self._compiled) * hw.core_regs * 8
        ibits = [ins.ibits for cc in prog.cores for ins in cc.instrs if isinstance(ins, ops.Mvm)]
        tmp = 12 * hw.xbar_rows * max(ibits, default=0) + 24 * hw.max_slices * hw.xbar_cols * max(ibits, default=0)
        top: dict[int, int] = {}
        for t, addr, n in ([(d.tile, d.addr, int(np.asarray(d.values).size)) for d in prog.data]
                           + [(loc.tile, loc.addr, loc.length) for loc in prog.inputs + prog.outputs
                              if not loc.port]):
            top[t] = max(top.get(t, 0), addr + n)
        tiles = {cc.tile for cc in prog.cores} | set(top)
        known = sum(min(hw.tile_mem_words, v) for v in top.values()) * 8
        detail = (f"{len(self._compiled)} cores x {hw.core_regs} registers, MVM temporaries, {len(tiles)} tile "
                  f"memories of up to {hw.tile_mem_words} words")
        return regs, tmp, known, len(tiles) * hw.tile_mem_words * 8, detail

    def same_control_flow(self, states: list[MachineState], batch: int, why: str) -> None:
        """Fail unless every part of a batch that ran separately (``why``) took the same path through the code."""
        first = states[0]
        for st in states[1:]:
            for a, b in zip(first.cores, st.cores):
                if (a.meter and b.meter and a.meter.counts != b.meter.counts) or a.clock != b.clock:
                    raise XbarcError(f"run: the batch of {batch} {why}, and core {a.name} takes a different path "
                                     f"through its code in different parts of the batch (branches and based "
                                     f"addresses read lane 0), so the batch cannot be split; run a smaller batch, "
                                     f"raise XBARC_MEMORY_BUDGET or use one worker")

    def _schedule(self, st: MachineState) -> None:
        """Step the cores to halt (module docstring). Fast mode: a core parked at a gang's head
        (`runtime.gangs`) is passed over until the gang's other members arrive, and a gang whose members all
        stand at their heads waits for its tile to change; if nothing else can progress, those gangs are given
        up for the run and their cores go on one instruction at a time."""
        live = [c for c in st.cores if not c.halted]
        epoch = st.epoch
        while live:
            for c in live:
                if c.parked or (c.wait is not None and epoch[c.tile] == c.wait_epoch):
                    continue
                if self._run_core(c) or c.halted:
                    break
            else:
                stuck = [c for c in live if c.parked or (c.wait is not None and c.wait[0] == "gang")]
                if not stuck:
                    raise DeadlockError(self._deadlock_message(live))
                for c in stuck:
                    c.parked, c.wait = False, None
                    for gang in c.gangs.values():
                        gang.off = True
                continue
            if c.halted:
                live = [c for c in live if not c.halted]

    def _run_core(self, c: CoreState) -> int:
        """Run ``c`` until it blocks or halts; returns the instructions executed."""
        assert c.meter is not None, "a core without its cost listener"
        code, executed, loops, trace = c.code, c.meter.executed, c.loops, c.trace
        mems = self._compiled[c.index].mems if trace is not None else []
        n_code, left, done, pc = len(code), self._left, 0, c.pc
        c.wait = None
        try:
            while True:
                pc = c.pc
                if pc >= n_code:
                    raise Fault(f"pc {pc} ran past the end of the code ({n_code} instructions) without halt")
                if pc in loops:  # fast mode: the loop's remaining iterations at once, if they can run so
                    gang = c.gangs.get(pc)
                    ran = run_batched(c, loops[pc], left - done) if gang is None else run_gang(gang, c, left - done)
                    if ran:
                        done += ran
                        self.batched += ran
                        continue
                    if c.parked or c.wait is not None:  # at a gang's head: the other members go first
                        break
                fn, ops, lat = code[pc]
                if trace is not None:  # the address before the instruction (a load may overwrite its base)
                    ref = mems[pc]
                    addr = -1 if ref is None else ref.off if ref.base == NO_BASE else int(c.regs[ref.base, 0]) + ref.off
                c.pc = pc + 1
                r = fn(c, ops, lat)
                if r is not None and r is not HALT:
                    c.pc, c.wait, c.wait_epoch = pc, r, c.epoch[c.tile]
                    break
                if trace is not None:
                    trace.step(c, pc, addr, self._compiled[c.index].source.instrs[pc])
                start = c.clock
                c.clock = end = start + lat
                executed(pc, start, end)
                done += 1
                if done > left:
                    raise Fault(f"instruction budget of {self._budget} instructions exceeded")
                if r is HALT:
                    c.halted = True
                    break
        except Fault as f:
            self._left = left - done
            raise self._fault(c, pc, str(f)) from None
        self._left = left - done
        return done

    def _read_output(self, st: MachineState, loc: TensorLoc, check: bool = True) -> np.ndarray:
        """Output ``loc`` (batch, length) of a finished run; ``check``: fault unless its words are valid (a
        replay's valid bits are not kept: its recorded run checked them)."""
        if loc.port:  # sent to the host through the port (`isa.inport`)
            return port_output(self.hw, loc, st.fifos, st.batch)
        mem = st.memory(loc.tile)
        if 0 <= loc.addr and loc.addr + loc.length <= mem.words:
            mem.check(loc.addr, loc.length, loc.tile)  # grows the arrays to cover it (never touched: invalid)
        valid = mem.valid[loc.addr:loc.addr + loc.length]
        if check and (len(valid) != loc.length or not valid.all()):
            bad = loc.length - int(valid.sum())
            raise RuntimeFault(f"runtime fault: output {loc.name!r}: {bad} of words [{loc.addr}, "
                               f"{loc.addr + loc.length}) of tile {loc.tile} memory are not valid after every core "
                               f"halted")
        return mem.values[loc.addr:loc.addr + loc.length].T.copy()

    # ---- reporting -----------------------------------------------------------------------------------------------
    def _instr(self, c: CoreState, pc: int) -> Instr | None:
        instrs = self._compiled_for(c).source.instrs
        return instrs[pc] if 0 <= pc < len(instrs) else None

    def _compiled_for(self, c: CoreState) -> _Compiled:
        return next(comp for comp in self._compiled if comp.code is c.code)

    def _where(self, c: CoreState, pc: int) -> tuple[str, str]:
        """(line number or '?', instruction text) of (core, pc)."""
        cc = self._compiled_for(c).source
        instr = self._instr(c, pc)
        line = cc.lines[pc] if cc.lines is not None and 0 <= pc < len(cc.lines) else None
        src = self.program.source
        if line is not None and src is not None and 1 <= line <= len(src):
            return str(line), src[line - 1].strip()
        text = instr_text(instr) if instr is not None else "<end of code>"
        return (str(line) if line is not None else "?"), text

    def _fault(self, c: CoreState, pc: int, reason: str) -> RuntimeFault:
        n = len(self._compiled_for(c).source.instrs)
        at = pc if pc < n or n == 0 else n - 1  # past the end: the last instruction, the one that fell through
        line, text = self._where(c, at)
        instr = self._instr(c, at)
        node = (instr.node if instr is not None else None) or "-"
        where = "at" if at == pc else "after the last instruction,"
        msg = (f"runtime fault: {reason}\n  core: tile {c.tile} core {c.core}, pc {pc}\n"
               f"  {where} {self.program.filename}:{line}: {text}\n  node: {node}")
        err = RuntimeFault(msg)
        if line != "?":
            err.location = Location(self.program.filename, int(line), 1, text)
        return err

    def _deadlock_message(self, live: list[CoreState]) -> str:
        lines = [f"deadlock: {len(live)} core(s) blocked, none can progress"]
        for c in live:
            lines.append(f"  tile {c.tile} core {c.core} pc {c.pc}: {self._where(c, c.pc)[1]} "
                         f"waits for {describe_wait(c.wait)}")
        return "\n".join(lines)

    def stats_of(self, states: list[MachineState]) -> Stats:
        """`_stats` for callers that ran the parts themselves (`runtime.parallel`)."""
        return self._stats(states)

    def _stats(self, states: list[MachineState], key: tuple[int, ...] | None = None) -> Stats:
        """Statistics of a run (its chunks' states, which share the control flow: `same_control_flow`); the
        data-dependent event counts are summed over the chunks and turned into energy per inference once.
        ``key``: the chunk sizes of a run whose control flow is recorded (`runtime.replay`): its
        data-independent part (static energy, leakage, timeline, traffic) is computed once per key."""
        st = states[0]
        batch = sum(s.batch for s in states)
        meters = [c.meter for c in st.cores if c.meter is not None]
        for other in states[1:]:
            for m, c in zip(meters, [c for c in other.cores if c.meter is not None]):
                m.absorb(c.meter)  # type: ignore[arg-type]
        cycles = max((c.clock for c in st.cores), default=0)
        part = self._static.get(key) if key is not None else None
        if part is None:
            part = (self.accountant.static_report(meters, cycles, batch), *busy_timeline(meters, cycles),
                    tile_traffic(meters))
            if key is not None:
                self._static[key] = part
        static, resolution, timeline, traffic = part
        led = self.accountant.report(meters, cycles, batch, static)
        timeline = dict(timeline)  # shared with the cached part: read-only
        return Stats(cycles=cycles, energy_pj=led.energy_pj, per_component=led.per_component,
                     per_instruction=led.per_instruction, per_layer=led.per_layer,
                     per_core={c.name: c.clock for c in st.cores}, per_core_busy=led.busy,
                     dynamic_instructions=led.dynamic_instructions, batch=batch, writes=led.writes,
                     cells_written=led.cells_written, program_cycles=led.program_cycles, timeline=timeline,
                     timeline_resolution=resolution, traffic=dict(traffic),
                     per_layer_component=led.per_layer_component)


def describe_wait(wait: Wait | None) -> str:
    """Words for a handler's wait tuple."""
    if wait is None:
        return "nothing"
    kind = wait[0]
    if kind == "msg":
        return f"message on channel ({wait[1]} -> {wait[2]}, ch {wait[3]})"
    _, tile, addr, n = wait
    return f"{kind} words [{addr}, {addr + n}) of tile {tile} memory"


def instr_text(instr: Instr) -> str:
    """The assembly text of ``instr`` (`isa.printer.format_instr`, the one printer)."""
    return format_instr(instr)


def pointer_registers(instrs: list[Instr]) -> frozenset[int]:
    """The registers a core's code uses as the base of a memory operand (its pointer registers)."""
    return frozenset(getattr(i, f.name).base for i in instrs for f in i.spec.fields
                     if f.kind == "mem" and getattr(i, f.name).base != NO_BASE)


def overwritten_pointer(instr: Instr, pointers: frozenset[int]) -> str | None:
    """Why ``instr`` must fault: a vector write (``n`` > 1 words from register ``d``) that covers a pointer
    register of its core (issue 18: such a write silently moves the core's later loads and stores); None if not.
    Scalar writes (``set``, ``iaddi``, a one-word ``load``) are how pointers are written and stay legal."""
    names = {f.name for f in instr.spec.fields}
    if not {"d", "n"} <= names:
        return None
    d, n = getattr(instr, "d"), getattr(instr, "n")
    hit = sorted(p for p in pointers if d <= p < d + n) if n > 1 else []
    if not hit:
        return None
    return (f"vector destination r{d}..r{d + n - 1} ({n} words) overlaps pointer register r{hit[0]}, the base "
            f"register of this core's memory operands")
