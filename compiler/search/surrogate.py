"""The actor-critic's episode critic: a model of an episode's reward from its whole action vector, used to
screen the actor's samples before they are evaluated (docs/search.md, "Agent", ``screen``).

The reward's terms are modelled apart, each by ridge regression on codes of every layer's knob values (an
intercept; an ordinal knob's n values as n - 1 thermometer steps, a nominal knob's one-hot; `features`): the
hardware cost, which is close to a sum of per-layer terms, the accuracy cost (CE increase, clipped at ``clip_ce``) and the accuracy drop's bound (clipped at
``max_drop + clip_bound``: beyond the constraint only "infeasible" matters), both additive to first order in each
layer's quantization error. The predicted reward puts the constraint back: -(a + penalty [bound > max_drop]) -
lambda h. Configurations that did not resolve are left out of the fit.
The one-hot codes with a trend column per ordinal knob that session 3 used measured worse (docs/search.md) and
were removed.
Deterministic: a closed-form solve, no random state.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .record import Evaluation


class RewardModel:
    """Ridge models of cost_accuracy, drop_bound and cost_hardware over action codes (see the module docstring)."""

    def __init__(self, sizes: Sequence[int], layers: int, max_drop: float, penalty: float, lam: float,
                 ridge: float = 1.0, clip_ce: float = 0.1, clip_bound: float = 0.05, ordinal: Sequence[bool] = ()
                 ) -> None:
        self.sizes, self.layers = tuple(sizes), layers
        self.max_drop, self.penalty, self.lam, self.ridge = max_drop, penalty, lam, ridge
        self.cap_ce, self.cap_bound = clip_ce, max_drop + clip_bound
        self.ord = [i for i, o in enumerate(ordinal) if o and self.sizes[i] > 1]
        self.width = 1 + layers * (int(sum(self.sizes)) - len(self.ord))
        self.w: np.ndarray | None = None

    def features(self, actions: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
        """(N, width) codes of N action vectors: an intercept column, then per layer and knob an ordinal knob's n
        values as n - 1 steps (column j: value >= j) and a nominal knob's one-hot. The ridge then prefers small
        differences between neighbouring values, so a value not evaluated yet is predicted like its evaluated
        neighbours (a smoothness prior for bit widths)."""
        a = np.asarray(actions, dtype=np.int64).reshape(len(actions), self.layers, len(self.sizes))
        cols = [np.ones((len(a), 1))]
        for li in range(self.layers):
            for i, n in enumerate(self.sizes):
                v = a[:, li, i][:, None]
                if i in self.ord:
                    cols.append((v >= np.arange(1, n)[None, :]).astype(np.float64))
                else:
                    cols.append((v == np.arange(n)[None, :]).astype(np.float64))
        return np.concatenate(cols, axis=1)

    def fit(self, records: Sequence[Evaluation]) -> bool:
        """Fit the three terms on the evaluated records (the first of each configuration); False if too few."""
        seen, rows, ys = set(), [], []
        for r in records:
            if r.error is not None or r.key in seen:
                continue
            seen.add(r.key)
            rows.append(r.actions)
            ys.append((min(r.cost_accuracy, self.cap_ce), min(r.drop_bound, self.cap_bound), r.cost_hardware))
        if len(rows) < 2:
            self.w = None
            return False
        x, y = self.features(rows), np.asarray(ys)
        reg = self.ridge * np.eye(self.width)
        reg[0, 0] = 0.0  # the intercept is not shrunk
        self.w = np.linalg.solve(x.T @ x + reg, x.T @ y)
        return True

    def predict(self, actions: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
        """Predicted rewards of N action vectors (requires a successful `fit`)."""
        assert self.w is not None
        acc, bound, hw = (self.features(actions) @ self.w).T
        return -(acc + self.penalty * (bound > self.max_drop)) - self.lam * hw
