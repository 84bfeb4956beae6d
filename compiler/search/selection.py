"""Choosing a configuration that holds on unseen data (docs/search.md, "Selection"): a paired confidence bound on
the accuracy drop against the float model, the Pareto front of the evaluated configurations and the cheapest
point whose bound meets the user's ``--max-drop``."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np

from .record import Evaluation


def drop_upper_bound(float_ok: np.ndarray, quant_ok: np.ndarray, confidence: float) -> float:
    """One-sided upper confidence bound (level ``confidence``) on the accuracy drop
    delta = p(float right, quantized wrong) - p(float wrong, quantized right), paired per image: `score_upper` of
    the two discordant counts."""
    f, q = np.asarray(float_ok, dtype=bool), np.asarray(quant_ok, dtype=bool)
    if f.shape != q.shape or f.ndim != 1 or not len(f):
        raise ValueError(f"paired per-image results needed, got shapes {f.shape} and {q.shape}")
    return score_upper(len(f), int(np.count_nonzero(f & ~q)), int(np.count_nonzero(~f & q)), confidence)


def score_upper(n: int, b: int, c: int, confidence: float) -> float:
    """The upper end of Tango's score interval (1998) for a difference of paired proportions: the delta at which
    the score statistic T(delta) = (b - c - n delta) / sqrt(n (2 p21 + delta (1 - delta))), p21 the constrained
    maximum-likelihood estimate of p(float wrong, quantized right), falls to -z; ``b`` images lost, ``c`` gained
    out of ``n``. Found by bisection (T decreases in delta). Unlike the Wald interval it does not collapse to 0
    when no image flips: with b = c = 0 it is z^2 / (n + z^2)."""
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence {confidence}: expected 0.5 <= confidence < 1")
    z = NormalDist().inv_cdf(confidence)

    def t(d: float) -> float:
        bq = -b - c + (2 * n - b + c) * d
        p21 = (-bq + math.sqrt(max(0.0, bq * bq + 8 * n * c * d * (1 - d)))) / (4 * n)
        var = n * (2 * p21 + d * (1 - d))
        return (b - c - n * d) / math.sqrt(var) if var > 0 else -math.inf

    lo, hi = (b - c) / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t(mid) > -z else (lo, mid)
    return hi


def pareto_front(records: Sequence[Evaluation]) -> list[Evaluation]:
    """The distinct configurations (first record of each) that no other one dominates in (energy, cycles, area,
    selection accuracy): lower or equal energy, cycles and area and higher or equal selection accuracy, one
    strictly. Ordered by energy; configurations that did not resolve, or whose scoring stopped on the search split
    (no selection accuracy), are left out."""
    seen: dict[tuple[tuple[int, ...], ...], Evaluation] = {}
    for r in records:
        if r.error is None and not r.stopped_at:
            seen.setdefault(r.key, r)
    pts = list(seen.values())
    v = np.array([(r.energy_pj, r.cycles, r.area_mm2, -r.select_accuracy) for r in pts],
                 dtype=np.float64).reshape(-1, 4)
    keep = []
    for i in range(len(pts)):
        le = (v <= v[i]).all(axis=1) & (v < v[i]).any(axis=1)
        if not le.any():
            keep.append(pts[i])
    return sorted(keep, key=lambda r: (r.energy_pj, r.cycles, -r.select_accuracy))


def scored(records: Sequence[Evaluation]) -> list[Evaluation]:
    """The records scored on the selection split: resolved, and not stopped on the search split."""
    return [r for r in records if r.error is None and not r.stopped_at]


def family_level(confidence: float, k: int) -> float:
    """Bonferroni: the level at which each of ``k`` bounds must hold for all of them to hold at ``confidence``."""
    return 1 - (1 - confidence) / max(1, k)


def family_bound(records: Sequence[Evaluation], n: int, confidence: float) -> Callable[[Evaluation], float]:
    """The selection-split drop bound of a record corrected for the number of configurations compared there: each
    record's bound (`score_upper` of its discordant counts on the ``n`` selection images) at
    `family_level` (``confidence``, K), K the distinct configurations of ``records`` scored on the selection split.
    All K bounds then hold together at ``confidence``, so the cheapest one under ``max_drop`` does too, however
    many were compared (the winner's curse of taking the cheapest that passes)."""
    level = family_level(confidence, len({r.key for r in scored(records)}))
    return lambda r: score_upper(n, r.select_lost, r.select_gained, level) if r.error is None and not r.stopped_at \
        else 1.0


def choose(records: Sequence[Evaluation], max_drop: float,
           bound: Callable[[Evaluation], float] | None = None) -> Evaluation | None:
    """The configuration to deliver: the lowest hardware cost among those whose selection-split drop bound
    (``bound`` of the record; default its own ``select_bound``) is at most ``max_drop`` (ties: higher selection
    accuracy, then the earlier evaluation); None if none is. Only configurations scored on the selection split
    count (not those whose scoring stopped on the search split)."""
    at = bound or (lambda r: r.select_bound)
    ok = [r for r in scored(records) if at(r) <= max_drop]
    if not ok:
        return None
    return min(ok, key=lambda r: (r.cost_hardware, -r.select_accuracy, r.episode))
