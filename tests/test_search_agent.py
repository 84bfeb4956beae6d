"""The search's cost per evaluation and its agent (compiler/search/env.py stages, agent.py): scoring the search
split in stages stops only where the constraint can no longer be met and otherwise gives the very record of one
pass; the bound that decides it is monotone in the images lost and gained."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compiler.search import EnvConfig, SearchEnv, search_precision
from compiler.search.baselines import uniform_actions
from compiler.search.selection import score_upper
from support import DATA


def test_bound_grows_with_losses_and_falls_with_gains() -> None:
    """`SearchEnv.hopeless` relies on it: the best case of the images not scored yet bounds the final bound."""
    for n in (256, 512):
        u = np.array([[score_upper(n, b, c, 0.95) for c in range(25)] for b in range(25)])
        assert (np.diff(u, axis=0) > 0).all() and (np.diff(u, axis=1) < 0).all()


@pytest.fixture(scope="module")
def envs() -> tuple[SearchEnv, SearchEnv]:
    cfg = EnvConfig("models/mlp_digits.onnx", "digits", search_images=256, max_drop=0.02, data=DATA,
                    screen_images=32)
    return SearchEnv(cfg), SearchEnv(dataclasses.replace(cfg, screen_images=0))


def test_staged_scoring_stops_exactly_where_the_constraint_is_lost(envs: tuple[SearchEnv, SearchEnv]) -> None:
    staged, full = envs
    assert staged.stages() == [32, 64, 128] and full.stages() == []
    rng = np.random.default_rng(3)
    base = staged.space.baseline()
    cands = [uniform_actions(rng, staged.space.sizes, len(base)) for _ in range(6)]
    for li in range(len(base)):  # near the baseline: one layer at 2 .. 4 bits (index 0 .. 2 of w_bits, in_bits)
        for i in range(3):
            a = [list(x) for x in base]
            a[li][0] = a[li][1] = i
            cands.append(tuple(tuple(x) for x in a))
    stopped = kept = 0
    for c in cands:
        s, f = staged.evaluate(c), full.evaluate(c)
        if s.error is not None:
            assert s == f
        elif s.stopped_at:
            stopped += 1
            assert not s.feasible and not f.feasible and f.drop_bound > full.cfg.max_drop
            assert s.stopped_at in staged.stages() and s.select_bound == 1.0
        else:
            kept += 1
            assert s == f  # the same record as one pass over both splits
    assert stopped and kept


def test_search_choice_ignores_stopped_configs(envs: tuple[SearchEnv, SearchEnv]) -> None:
    staged, _ = envs
    r = search_precision("models/mlp_digits.onnx", budget=16, seed=1, method="random", env=staged)
    assert any(x.stopped_at for x in r.records)
    assert r.chosen.stopped_at == 0

