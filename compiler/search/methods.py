"""`search_precision`: a search method at a budget of distinct evaluations, then the choice made on the selection
split (docs/search.md)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .agent import RLSearch
from .backends import Evaluator
from .baselines import run_greedy, run_random
from .budget import Budget
from .cache import EvalCache
from .env import EnvConfig, SearchEnv
from .record import Evaluation
from .selection import choose

METHODS = ("rl", "random", "greedy")


@dataclass
class SearchResult:
    """A search's outcome: ``chosen``, the configuration delivered (the cheapest evaluated one whose selection-split
    drop bound meets ``max_drop``; the 16-bit baseline if none does, with ``met`` false), ``best`` (the highest
    search-split reward), every record in order, the 16-bit baseline's record and the counts."""

    method: str
    chosen: Evaluation
    best: Evaluation
    met: bool
    config: dict[str, Any]  # the chosen configuration's precision config
    records: list[Evaluation] = field(default_factory=list)
    baseline: Evaluation | None = None
    evaluations: int = 0
    reused: int = 0  # evaluations read from the persistent cache instead of computed
    seconds: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C: the best of the evaluations done so far


def search_precision(model: str, dataset: str | None = None, budget: int = 100, seed: int = 0, method: str = "rl",
                     workers: int = 1, batch: int = 8, progress: Callable[[str], None] | None = None,
                     env: SearchEnv | None = None, rl: dict[str, Any] | None = None,
                     on_record: Callable[[Evaluation], None] | None = None, backend: str = "process",
                     address: str | None = None, cache: str | Path | None = None,
                     **env_options: Any) -> SearchResult:
    """Search a per-layer precision config of ``model``; ``budget`` distinct evaluations; deterministic in
    ``seed`` (and independent of ``workers``, ``backend`` and ``cache``). ``rl`` overrides `RL_DEFAULTS`;
    ``env_options`` are `EnvConfig` fields; ``cache``: a SQLite file of evaluations to read and extend.
    ``on_record`` sees every evaluation's record (a checkpoint log). Ctrl-C (KeyboardInterrupt) ends the search
    early with the choice among the evaluations done so far and ``interrupted`` set, once at least one
    configuration was evaluated."""
    if method not in METHODS:
        raise ValueError(f"method '{method}' not in {', '.join(METHODS)}")
    env = env or SearchEnv(EnvConfig(str(model), dataset, **env_options))
    store = EvalCache(cache, env.cfg.scope()) if cache is not None else None
    ev = Evaluator(env, workers, backend, address, store)
    b = Budget(env, ev, budget, method, progress, on_record)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    interrupted = False
    try:
        if method == "rl":
            RLSearch(env, b, rng, batch, **(rl or {})).run()
        elif method == "random":
            run_random(env, b, rng, batch)
        else:
            run_greedy(env, b, batch)
    except KeyboardInterrupt:
        if b.best is None:
            raise
        interrupted = True
    finally:
        ev.close()
        b.flush()
        if store is not None:
            store.close()
    if progress:
        progress("\n")
    assert b.best is not None and env.baseline is not None
    every = b.records + [env.baseline]
    pick = choose(every, env.cfg.max_drop, env.choice_bound(every))
    chosen = pick or env.baseline
    return SearchResult(method, chosen, b.best, pick is not None, env.config(chosen.actions), b.records,
                        env.baseline, b.used, store.hits if store is not None else 0, time.perf_counter() - t0, interrupted)


def stderr_progress(msg: str) -> None:
    """Progress lines to stderr."""
    sys.stderr.write(msg)
    sys.stderr.flush()
