"""A batch sharded over processes: `run_parallel` (``Machine.run(..., workers=N)``, ``xbarc run --workers N``).

The batch is cut into N contiguous shards; each runs in its own process (spawned, with ``threads`` BLAS/OpenMP
threads, 1 by default, so N workers do not oversubscribe the cores) through `run_shard`, which returns the
outputs and every core's clock and meter state (`ShardResult`, plain data). `merge_shards` puts them back in batch
order and computes the statistics exactly as one process would (meters' integer events summed, divided by the
whole batch once), after checking that every shard took the same path through the code (branches read lane 0).
A distributed backend (Ray) can call `run_shard` remotely and `merge_shards` locally.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from isa import Program, XbarcError

from .state import CoreState, MachineState, TileMemory

if TYPE_CHECKING:
    from .machine import Machine, RunResult

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class CoreRecord:
    """One core at the end of a shard: its clock and its meter's state (`isa.costs.CoreMeter`)."""

    clock: int
    counts: list[int]
    first: list[int]
    last: list[int]
    events: dict[int, list[int]]
    adc_bits: dict[int, int]
    batch: int
    busy: list[int] = field(default_factory=list)  # the meter's busy intervals, flattened (`CoreMeter.busy_runs`)


@dataclass
class ShardResult:
    """What one shard returns: its outputs (batch order inside the shard), its size and its cores."""

    outputs: dict[str, np.ndarray]
    batch: int
    cores: list[CoreRecord]


def run_shard(program: Program, arrays: dict[str, np.ndarray], reference: bool = False,
              max_instructions: int = 50_000_000, budget: int | None = None,
              machine: "Machine | None" = None) -> ShardResult:
    """Run one shard of checked (batch, length) int64 inputs on a fresh (or the given) `Machine`."""
    from .machine import Machine

    m = machine or Machine(program, reference=reference, once=True)
    states, outputs = m.run_states(arrays, max_instructions, budget)
    first = states[0]
    for other in states[1:]:  # chunks inside the shard: their events into the first chunk's meters
        for c, o in zip(first.cores, other.cores):
            if c.meter is not None and o.meter is not None:
                c.meter.absorb(o.meter)
    cores = []
    for c in first.cores:
        mt = c.meter
        assert mt is not None, "a core without its cost listener"
        cores.append(CoreRecord(c.clock, list(mt.counts), list(mt.first), list(mt.last),
                                {k: list(v) for k, v in mt.events.items()}, dict(mt.adc_bits), mt.batch,
                                [t for span in mt.busy_intervals() for t in span]))
    return ShardResult(outputs, sum(s.batch for s in states), cores)


def merge_shards(machine: "Machine", shards: list[ShardResult]) -> "RunResult":
    """The `RunResult` of the whole batch from its shards in batch order (see module docstring)."""
    from .machine import RunResult

    states = []
    for sh in shards:
        st = MachineState(machine.hw, sh.batch, {})
        for comp, meter, rec in zip(machine._compiled, machine.accountant.meters(), sh.cores):
            meter.counts, meter.first, meter.last = list(rec.counts), list(rec.first), list(rec.last)
            meter.events = {k: list(v) for k, v in rec.events.items()}
            meter.adc_bits, meter.batch = dict(rec.adc_bits), rec.batch
            meter.busy_runs = list(rec.busy)
            cc = comp.source
            st.cores.append(CoreState(cc.tile, cc.core, np.empty((0, 0), dtype=np.int64), TileMemory(0, 0), {}, [],
                                      comp.code, clock=rec.clock, meter=meter))
        states.append(st)
    batch = sum(sh.batch for sh in shards)
    machine.same_control_flow(states, batch, f"was sharded over {len(shards)} workers")
    outputs = {k: np.concatenate([sh.outputs[k] for sh in shards]) for k in shards[0].outputs}
    return RunResult(outputs, machine.stats_of(states))


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Set the BLAS/OpenMP thread variables that spawned workers inherit, then restore them."""
    old = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: str(n) for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def shard_bounds(batch: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) shards of a batch, as equal as possible, none empty."""
    n = max(1, min(workers, batch))
    edges = [batch * i // n for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _worker(args: tuple[Any, ...]) -> ShardResult:
    return run_shard(*args)


#: the message when ``backend="ray"`` is asked for without the optional extra
RAY_MISSING = "--backend ray needs ray, an optional extra: pip install 'xbarc[ray]'"

BACKENDS = ("process", "ray")


def start_ray(cpus: int, address: str | None) -> Any:
    """The ``ray`` module, initialized once: joined to the cluster at ``address``, else a local instance of
    ``cpus`` CPUs (quiet: no dashboard, no driver logs); a clear `XbarcError` without the optional extra."""
    try:
        import ray
    except ImportError:
        raise XbarcError(RAY_MISSING) from None
    if not ray.is_initialized():
        opts: dict[str, Any] = {"address": address} if address else {"num_cpus": cpus}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **opts)
    return ray


def _ray_map(jobs: list[tuple[Any, ...]], workers: int, address: str | None) -> list[ShardResult]:
    """`run_shard` of each job as a Ray task (one CPU each, so Ray sets one BLAS thread per task) on
    `start_ray`'s instance; results in job order."""
    ray = start_ray(workers, address)
    task = ray.remote(num_cpus=1)(_worker)
    return list(ray.get([task.remote(job) for job in jobs]))


def run_parallel(machine: "Machine", arrays: dict[str, np.ndarray], workers: int,
                 max_instructions: int = 50_000_000, budget: int | None = None, threads: int = 1,
                 backend: str = "process", address: str | None = None) -> "RunResult":
    """``machine.run`` of checked inputs with the batch sharded over ``workers`` spawned processes (each with a
    share of the memory budget and ``threads`` BLAS threads), or with ``backend="ray"`` over ``workers`` Ray
    tasks (on the cluster at ``address``, else a local instance); the result is the same either way."""
    from isa.memory import memory_budget

    batch = len(next(iter(arrays.values())))
    bounds = shard_bounds(batch, workers)
    share = (memory_budget() if budget is None else budget) // len(bounds)
    jobs = [(machine.program, {k: v[lo:hi] for k, v in arrays.items()}, machine.reference, max_instructions, share)
            for lo, hi in bounds]
    if backend not in BACKENDS:
        raise XbarcError(f"run: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "ray":
        shards = _ray_map(jobs, len(jobs), address)
    else:
        with blas_threads(threads), ProcessPoolExecutor(len(jobs), mp_context=mp.get_context("spawn")) as pool:
            shards = list(pool.map(_worker, jobs))
    return merge_shards(machine, shards)
