"""The search's worker scaling: one search run with ``--workers 1`` and with ``--workers 2`` (process pool, one
BLAS thread per worker), interleaved, on the same model, data and seed, with wall and CPU seconds (this process
and its workers) and a check that both found the same evaluations (the search's log does not depend on the
workers). Issue 18: two workers must be faster than one on this 2-core machine.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/search_workers.py [--model models/lenet5_digits.onnx]
           [--dataset digits32] [--budget 48] [--repeats 2] [--workers 1,2] [--method random]

"startup" is the time until the pool's workers have built their environments (`Evaluator`'s constructor:
spawning and loading the model, data and calibration in each worker); "search" the rest. CPU seconds are
`resource.getrusage` of this process plus its reaped children; on a shared machine compare ratios measured in
the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _table import table  # noqa: E402


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def one(model: str, dataset: str, budget: int, workers: int, method: str, seed: int) -> dict[str, object]:
    """One search from scratch (environment included) with ``workers``: times and the evaluated configs."""
    from compiler.search import backends, search_precision
    from models.datasets import load_for_shape

    started: list[float] = []
    make = backends.Evaluator.__init__

    def timed_init(self: object, *args: object, **kwargs: object) -> None:
        make(self, *args, **kwargs)  # type: ignore[arg-type]
        started.append(time.perf_counter())

    backends.Evaluator.__init__ = timed_init  # type: ignore[method-assign]
    try:
        c0, w0 = _cpu(), time.perf_counter()
        r = search_precision(model, dataset, budget=budget, seed=seed, method=method, workers=workers,
                             data=load_for_shape)
        c1, w1 = _cpu(), time.perf_counter()
    finally:
        backends.Evaluator.__init__ = make  # type: ignore[method-assign]
    return {"wall": w1 - w0, "cpu": c1 - c0, "startup": started[0] - w0, "evals": len(r.records),
            "log": [(tuple(map(tuple, x.actions)), x.reward) for x in r.records]}


def main() -> None:
    """Run the searches interleaved and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/lenet5_digits.onnx")
    ap.add_argument("--dataset", default="digits32")
    ap.add_argument("--budget", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--method", default="random")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    counts = [int(w) for w in a.workers.split(",")]
    runs: dict[int, list[dict[str, object]]] = {w: [] for w in counts}
    for rep in range(a.repeats):
        for w in counts if rep % 2 == 0 else counts[::-1]:  # interleaved, alternating order
            runs[w].append(one(a.model, a.dataset, a.budget, w, a.method, a.seed))
            last = runs[w][-1]
            print(f"repeat {rep} workers {w}: {last['wall']:.1f} s wall, {last['cpu']:.1f} s CPU", file=sys.stderr,
                  flush=True)
    base = min(float(r["wall"]) for r in runs[counts[0]])  # type: ignore[arg-type]
    rows = []
    for w in counts:
        best = min(runs[w], key=lambda r: float(r["wall"]))  # type: ignore[arg-type]
        same = all(r["log"] == runs[counts[0]][0]["log"] for r in runs[w])
        rows.append([w, f"{float(best['wall']):.1f}", f"{float(best['startup']):.1f}",  # type: ignore[arg-type]
                     f"{float(best['wall']) - float(best['startup']):.1f}",  # type: ignore[arg-type]
                     f"{float(best['cpu']):.1f}", f"{base / float(best['wall']):.2f}x",  # type: ignore[arg-type]
                     best["evals"], "yes" if same else "NO"])
    print(f"{a.method} search of {a.model} on {a.dataset}, budget {a.budget}, best of {a.repeats} interleaved "
          f"runs; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load average "
          f"{os.getloadavg()[1]:.1f}")
    print(table(rows, ["workers", "wall s", "startup s", "search s", "CPU s", "speed-up", "evaluations",
                       "same log"]))


if __name__ == "__main__":
    main()
