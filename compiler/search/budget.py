"""The evaluation budget every search method spends: distinct configurations, counted in the order asked."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

from .env import Actions, SearchEnv
from .record import Evaluation

Evaluate = Callable[[Sequence[Actions]], list[Evaluation]]


class Budget:
    """Counts distinct evaluations of one search, keeps its log (a copy of each record with the episode, method
    and count set; a configuration seen before in this search is ``cached`` and free), the best record by reward,
    and reports progress. Records go to ``on_record`` one batch late (after the agent's update has set its losses
    on them) and all at `flush`."""

    def __init__(self, env: SearchEnv, evaluate: Evaluate, budget: int, method: str,
                 progress: Callable[[str], None] | None = None,
                 on_record: Callable[[Evaluation], None] | None = None) -> None:
        self.env, self.evaluate, self.budget, self.method = env, evaluate, budget, method
        self.on_record, self.progress = on_record, progress
        self.records: list[Evaluation] = []
        self.seen: set[Actions] = set()
        self.best: Evaluation | None = None
        self.used, self.emitted, self.t0 = 0, 0, time.perf_counter()

    @property
    def left(self) -> int:
        """Evaluations left."""
        return self.budget - self.used

    def run(self, batch: Sequence[Actions]) -> list[Evaluation]:
        """Evaluate a batch (in order) and log it."""
        self.flush()
        out = []
        for r in self.evaluate(batch):
            cached = r.key in self.seen
            self.seen.add(r.key)
            self.used += not cached
            r = dataclasses.replace(r, actions=[list(a) for a in r.actions], cost_terms=dict(r.cost_terms),
                                    step_rewards=list(r.step_rewards), episode=len(self.records),
                                    method=self.method, evaluations=self.used, cached=cached)
            self.records.append(r)
            out.append(r)
            if self.best is None or r.reward > self.best.reward:
                self.best = r
        if self.progress and self.best is not None:
            n = min(self.used, self.budget)
            bar = "#" * (30 * n // max(1, self.budget))
            self.progress(f"\r[{bar:<30}] {n}/{self.budget} evals  best reward {self.best.reward:.4f}  "
                          f"{time.perf_counter() - self.t0:.0f} s")
        return out

    def flush(self) -> None:
        """Hand the records not yet passed to ``on_record``."""
        if self.on_record:
            for r in self.records[self.emitted:]:
                self.on_record(r)
        self.emitted = len(self.records)
