"""Evaluation that survives interruption and scales out (compiler/search/cache.py, backends.py): a search
interrupted at a random point and resumed equals an uninterrupted one, a second search reuses the cache, and the
log does not depend on the number of workers or the backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import EXIT_INTERRUPTED, main
from compiler.search import EnvConfig, SearchEnv, search_precision
from compiler.search import backends
from compiler.search.cache import EvalCache
from support import DATA

MLP = "models/mlp_digits.onnx"
ARGS = ["search", MLP, "--dataset", "digits", "--budget", "24", "--seed", "5", "--search-images", "256",
        "--max-drop", "2%", "--test-images", "8", "--measure-front", "0"]


@pytest.fixture(scope="module")
def env() -> SearchEnv:
    return SearchEnv(EnvConfig(MLP, "digits", search_images=256, max_drop=0.02, data=DATA))


def _log(r) -> list[dict]:
    return [x.to_json() for x in r.records]


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path, monkeypatch, capsys) -> None:
    """`xbarc search` stopped by Ctrl-C after a random number of batches (seeded), then the same command with
    --resume: the same log, best.json and pareto.json as a run never interrupted."""
    assert main(ARGS + ["-o", str(tmp_path / "whole")]) == 0
    real = backends.Evaluator.__call__
    stop = int(np.random.default_rng(11).integers(2, 4))
    calls = []

    def interrupted(self, batch):
        calls.append(len(batch))
        if len(calls) == stop:
            raise KeyboardInterrupt
        return real(self, batch)

    part = tmp_path / "part"
    monkeypatch.setattr(backends.Evaluator, "__call__", interrupted)
    assert main(ARGS + ["-o", str(part)]) == EXIT_INTERRUPTED
    monkeypatch.setattr(backends.Evaluator, "__call__", real)
    cut = (part / "log.jsonl").read_text().splitlines()
    whole = (tmp_path / "whole" / "log.jsonl").read_text().splitlines()
    assert 0 < len(cut) < len(whole) and cut == whole[: len(cut)]  # a consistent prefix
    assert len(EvalCache(part / "evaluations.sqlite", json.loads((part / "search.json").read_text())["scope"])) \
        >= len(cut) - 1  # every evaluation logged is in the cache (the baseline is the environment's own)
    assert main(ARGS + ["-o", str(part), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "from " in out and "warning" not in out
    for f in ("log.jsonl", "best.json", "pareto.json"):
        assert (part / f).read_text() == (tmp_path / "whole" / f).read_text(), f


def test_resume_checks_the_settings(tmp_path: Path, capsys) -> None:
    assert main(ARGS + ["-o", str(tmp_path / "none"), "--resume"]) == 2
    assert "no search to resume" in capsys.readouterr().err
    short = [x if x != "24" else "2" for x in ARGS]
    assert main(short + ["-o", str(tmp_path / "a")]) == 0
    assert main([x if x != "5" else "6" for x in short] + ["-o", str(tmp_path / "a"), "--resume"]) == 2
    assert "seed was 5, now 6" in capsys.readouterr().err


def test_a_second_search_reuses_the_cache(env: SearchEnv, tmp_path: Path) -> None:
    db = tmp_path / "evals.sqlite"
    env.cache.clear()
    a = search_precision(MLP, budget=16, seed=1, method="rl", env=env, cache=db)
    env.cache.clear()
    b = search_precision(MLP, budget=16, seed=1, method="rl", env=env, cache=db)
    assert _log(a) == _log(b) and a.reused == 0 and b.reused == b.evaluations
    env.cache.clear()
    c = search_precision(MLP, budget=16, seed=1, method="greedy", env=env, cache=db)
    assert 0 < c.reused < c.evaluations  # another method shares what both evaluated
    other = EnvConfig(MLP, "digits", search_images=256, max_drop=0.03, data=DATA)
    assert other.scope() != env.cfg.scope()  # a setting that changes a score is another scope


def test_workers_do_not_change_the_log(env: SearchEnv) -> None:
    env.cache.clear()
    one = search_precision(MLP, budget=16, seed=4, method="rl", env=env)
    env.cache.clear()
    two = search_precision(MLP, budget=16, seed=4, method="rl", env=env, workers=2)
    assert _log(one) == _log(two)


def test_ray_gives_the_process_pool_log(env: SearchEnv) -> None:
    """A local 2-CPU Ray instance (skipped without the ``ray`` extra)."""
    ray = pytest.importorskip("ray")
    env.cache.clear()
    pool = search_precision(MLP, budget=10, seed=4, method="rl", env=env, workers=2)
    env.cache.clear()
    try:
        on_ray = search_precision(MLP, budget=10, seed=4, method="rl", env=env, workers=2, backend="ray")
    finally:
        ray.shutdown()
    assert _log(on_ray) == _log(pool)


def test_ray_missing_is_a_clear_error(env: SearchEnv, monkeypatch) -> None:
    import sys

    from isa.errors import XbarcError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(XbarcError, match=r"pip install 'xbarc\[ray\]'"):
        backends.Evaluator(env, 2, "ray")
