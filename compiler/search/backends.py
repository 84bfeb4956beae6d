"""Where candidate configurations are evaluated: in this process, in a pool of worker processes (``process``, the
default) or on Ray actors (``ray``: a local instance or, with ``address``, a running cluster; ``pip install
'xbarc[ray]'``). Results come back in the order asked and are stored in the parent, so the search's log does not
depend on the backend or the number of workers.

With the process pool, ``workers`` N is this process and N - 1 spawned workers (one BLAS thread each): a free
worker is handed the next configuration of a batch and this process evaluates the one after, with its warm
caches. A worker receives the parent's environment pickled (`SearchEnv.__getstate__`: the frontend,
calibration, splits and baseline program already built). Both matter on a small search: LeNet-5 / digits at a
budget of 32, two spawned workers each rebuilding the environment took 0.5x the time of one process; this way
1.0x (`benchmarks/search_workers.py`). A Ray actor, possibly on another machine, builds its own environment from
the picklable `EnvConfig`."""

from __future__ import annotations

from typing import Any, Sequence

from isa.errors import XbarcError

from ..runner import blas_threads, start_ray
from .cache import EvalCache
from .env import Actions, EnvConfig, SearchEnv
from .record import Evaluation

BACKENDS = ("process", "ray")

_WORKER: SearchEnv | None = None


def _init_worker(env: SearchEnv) -> None:
    """Hold the parent's environment, received pickled (`SearchEnv.__getstate__`: built once, not per worker)."""
    import signal

    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it keeps what was done)
    _WORKER = env


def _started(_: int) -> None:
    """Nothing: submitted once per worker so that every worker process starts at once."""


def _eval_worker(key: Actions) -> Evaluation:
    assert _WORKER is not None
    return _WORKER.evaluate(key)


class _RayWorker:
    """A Ray actor holding one environment."""

    def __init__(self, cfg: EnvConfig) -> None:
        self.env = SearchEnv(cfg)

    def evaluate(self, key: Actions) -> Evaluation:
        """One configuration's record."""
        return self.env.evaluate(key)


class Evaluator:
    """Evaluates batches of effective configurations in order: the environment's memory first, then the
    persistent ``cache``, then the backend; new evaluations go to both."""

    def __init__(self, env: SearchEnv, workers: int = 1, backend: str = "process", address: str | None = None,
                 cache: EvalCache | None = None) -> None:
        if backend not in BACKENDS:
            raise XbarcError(f"backend '{backend}': expected one of {', '.join(BACKENDS)}")
        self.env, self.cache, self.pool, self.helpers = env, cache, None, 0
        self.actors: list[Any] = []
        self.computed = 0
        if backend == "ray":
            self.actors = _ray_actors(env.cfg, workers, address)
        elif workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # this process evaluates beside workers - 1 spawned workers with one BLAS thread each (forked ones
            # would keep the parent's threads: 2 workers x all cores oversubscribe the machine); started now,
            # while the variables say so
            with blas_threads(1):
                self.pool = ProcessPoolExecutor(workers - 1, mp_context=mp.get_context("spawn"),
                                                initializer=_init_worker, initargs=(env,))
                list(self.pool.map(_started, range(workers - 1)))
            self.helpers = workers - 1

    def __call__(self, batch: Sequence[Actions]) -> list[Evaluation]:
        keys = [self.env.space.canonical(a) for a in batch]
        todo = [k for k in dict.fromkeys(keys) if k not in self.env.cache]
        if self.cache is not None:
            for k in list(todo):
                hit = self.cache.get(k)
                if hit is not None:
                    self.env.cache[k] = hit
                    todo.remove(k)
        fresh = self._compute(todo)
        self.computed += len(fresh)
        for k, rec in zip(todo, fresh):
            self.env.cache[k] = rec
        if self.cache is not None and fresh:
            self.cache.put_many(fresh)
        return [self.env.evaluate(k) for k in keys]

    def _compute(self, todo: list[Actions]) -> list[Evaluation]:
        if self.actors and len(todo):
            import ray

            return list(ray.get([self.actors[i % len(self.actors)].evaluate.remote(k) for i, k in enumerate(todo)]))
        if self.pool is not None and len(todo) > 1:
            return self._shared(todo)
        return [self.env.evaluate(k) for k in todo]

    def _shared(self, todo: list[Actions]) -> list[Evaluation]:
        """``todo`` evaluated by the pool's workers and this process together, in order: whoever is free takes
        the next configuration (a worker's done-callback hands it its next one, so it never waits for this
        process's evaluation to end)."""
        import threading
        from concurrent.futures import Future

        assert self.pool is not None
        pool, cond = self.pool, threading.Condition()
        futures: dict[int, Future[Evaluation]] = {}
        mine: dict[int, Evaluation] = {}
        nxt = [0]

        def take() -> int | None:
            with cond:
                if nxt[0] >= len(todo):
                    return None
                nxt[0] += 1
                return nxt[0] - 1

        def feed(_: object = None) -> None:
            i = take()
            if i is not None:
                try:
                    f = pool.submit(_eval_worker, todo[i])
                except RuntimeError:  # the pool was shut down (an interrupt): nothing more to hand out
                    return
                with cond:
                    futures[i] = f
                f.add_done_callback(feed)
            with cond:
                cond.notify_all()

        for _ in range(self.helpers):
            feed()
        while (i := take()) is not None:
            mine[i] = self.env.evaluate(todo[i])
        with cond:
            cond.wait_for(lambda: len(futures) + len(mine) == len(todo) and all(f.done() for f in futures.values()))
        return [mine[i] if i in mine else futures[i].result() for i in range(len(todo))]

    def close(self) -> None:
        """Stop the worker processes (at once, dropping queued work, when interrupted) or actors."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.actors:
            import ray

            for a in self.actors:
                ray.kill(a)
            self.actors = []


def _ray_actors(cfg: EnvConfig, workers: int, address: str | None) -> list[Any]:
    ray = start_ray(workers, address)
    actor = ray.remote(num_cpus=1)(_RayWorker)
    return [actor.remote(cfg) for _ in range(workers)]
