"""Finishing weight schemes that depend on the weights themselves: the nonuniform codebook's grid (how many
crossbar weight bits its levels need) and, when asked (``w_k`` = -1), the search for its k (seed 001)."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from isa.errors import ConfigError

from ..ir import Graph
from .precision import LayerPrecision
from .weights import levels_on_grid, min_grid_bits, nonuniform_levels

#: The k values tried by the search (seed 001 tests a few k around 1).
K_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)

Score = Callable[[dict[str, LayerPrecision]], float]


def nonuniform_grid(p: LayerPrecision, levels_max_bits: int, levels: object) -> LayerPrecision:
    """``p`` with w_bits = the smallest grid (>= code bits, <= the configured w_bits) keeping the levels distinct
    and w_frac = that grid's fraction for the largest level."""
    import numpy as np

    lv = np.asarray(levels)
    code = p.w_code_bits or p.w_bits
    grid = faithful_grid_bits(lv, max(code, min_grid_bits(lv)), levels_max_bits)
    frac, _ = levels_on_grid(lv, grid)
    return replace(p, w_bits=grid, w_frac=frac, w_code_bits=code)


def faithful_grid_bits(levels: "object", lo: int, hi: int, tolerance: float = 0.05) -> int:
    """The smallest grid width in [lo, hi] on which every level lands within ``tolerance`` x the smallest gap
    between adjacent levels (so the codebook keeps its shape, not only distinct values); ``hi`` if none."""
    import numpy as np

    lv = np.unique(np.asarray(levels, dtype=np.float64))
    if len(lv) < 2 or not np.abs(lv).max():
        return lo
    gap = float(np.diff(lv).min())
    for bits in range(lo, hi + 1):
        frac, ints = levels_on_grid(lv, bits)
        if float(np.abs(ints / 2.0**frac - lv).max()) <= tolerance * gap:
            return bits
    return hi


def finalize_weight_schemes(g: Graph, prec: dict[str, LayerPrecision], score: Score | None) -> dict[str, LayerPrecision]:
    """Resolve every nonuniform layer in graph order: its k (searched with ``score`` -- higher is better, ties
    to the smaller k -- when w_k is -1; layers not searched yet score with k = 1, the seed's plain g(x)|x|) and
    its grid."""
    todo = [op for op in g.crossbar_ops() if prec[op.name].w_scheme == "nonuniform"]
    work = dict(prec)

    def with_k(name: str, k: float) -> LayerPrecision:
        p = prec[name]
        code = p.w_code_bits or p.w_bits
        return nonuniform_grid(replace(p, w_k=float(k)), p.w_bits, nonuniform_levels(g.op(name).params["weight"],
                                                                                     code - 1, float(k)))

    for op in todo:
        work[op.name] = with_k(op.name, prec[op.name].w_k if prec[op.name].w_k >= 0 else 1.0)
    for op in todo:
        if prec[op.name].w_k >= 0:
            continue
        if score is None:
            raise ConfigError(f"layer '{op.name}': w_k=-1 asks for a k search, which needs a labelled data set")
        best, best_score = work[op.name], float("-inf")
        for k in K_GRID:
            cand = with_k(op.name, k)
            sc = score(work | {op.name: cand})
            if sc > best_score:
                best, best_score = cand, sc
        work[op.name] = best
    return work
