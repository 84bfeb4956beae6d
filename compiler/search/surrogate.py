"""The actor-critic's episode critic: a model of an episode's reward from its whole action vector, used to
screen the actor's samples before they are evaluated (docs/search.md, "Agent", ``screen``).

The reward's terms are modelled apart, each by ridge regression on the one-hot codes of every layer's knob
values (an intercept, one column per (layer, knob, value), then for every ordinal knob of every layer its value
index over the knob's range, so a trend carries over to values not evaluated yet): the hardware cost, which is close to a sum of
per-layer terms, the accuracy cost (CE increase, clipped at ``clip_ce``) and the accuracy drop's bound (clipped at
``max_drop + clip_bound``: beyond the constraint only "infeasible" matters), both additive to first order in each
layer's quantization error. The predicted reward puts the constraint back: -(a + penalty [bound > max_drop]) -
lambda h. Configurations that did not resolve are left out of the fit.
With ``thermometer`` (the agent's default) an ordinal knob's n values are coded as n - 1 steps instead (column j:
value >= j; no trend column), so the ridge shrinks the differences between neighbouring values.
Deterministic: a closed-form solve, no random state.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .record import Evaluation


class RewardModel:
    """Ridge models of cost_accuracy, drop_bound and cost_hardware over action codes (see the module docstring)."""

    def __init__(self, sizes: Sequence[int], layers: int, max_drop: float, penalty: float, lam: float,
                 ridge: float = 1.0, clip_ce: float = 0.1, clip_bound: float = 0.05, ordinal: Sequence[bool] = (),
                 thermometer: bool = False) -> None:
        self.thermo = thermometer
        self.sizes, self.layers = tuple(sizes), layers
        self.max_drop, self.penalty, self.lam, self.ridge = max_drop, penalty, lam, ridge
        self.cap_ce, self.cap_bound = clip_ce, max_drop + clip_bound
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.ord = [i for i, o in enumerate(ordinal) if o and self.sizes[i] > 1]
        per_layer = int(sum(self.sizes)) - len(self.ord) if thermometer else int(sum(self.sizes)) + len(self.ord)
        self.width = 1 + layers * per_layer
        self.w: np.ndarray | None = None

    def features(self, actions: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
        """(N, width) codes (an intercept column, then one-hot or thermometer columns) of N action vectors."""
        a = np.asarray(actions, dtype=np.int64).reshape(len(actions), self.layers, len(self.sizes))
        if self.thermo:
            return self._thermometer(a)
        cols = 1 + (np.arange(self.layers)[:, None] * int(sum(self.sizes)) + self.offsets[None, :])[None] + a
        x = np.zeros((len(a), self.width))
        x[:, 0] = 1.0
        np.put_along_axis(x, cols.reshape(len(a), -1), 1.0, axis=1)
        if self.ord:
            scale = np.array([self.sizes[i] - 1 for i in self.ord], dtype=np.float64)
            x[:, 1 + self.layers * int(sum(self.sizes)):] = (a[:, :, self.ord] / scale).reshape(len(a), -1)
        return x

    def _thermometer(self, a: np.ndarray) -> np.ndarray:
        """Codes with an ordinal knob's n values as n - 1 steps (column j: value >= j) instead of one-hot and a
        trend: the ridge then prefers small differences between neighbouring values, so a value not evaluated
        yet is predicted like its evaluated neighbours (a smoothness prior for bit widths)."""
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
