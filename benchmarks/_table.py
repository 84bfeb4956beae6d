"""Plain-text tables for benchmark output."""

from __future__ import annotations

import time
from typing import Callable, Sequence


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """Right-aligned columns (first column left-aligned)."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def best_time(fn: Callable[[], object], repeat: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best time of ``repeat`` calls, in seconds: wall time, or ``clock`` (``time.process_time``: this process's
    CPU time, less inflated by other processes on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best
