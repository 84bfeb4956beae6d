"""Ctrl-C during a real `xbarc search` process (issue 20, part 5): SIGINT sent to its process group, as a
terminal does, at a seeded random point; the log, the cache and the best-so-far files are consistent, the exit
says how to continue, and the same command with --resume ends with the uninterrupted run's results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from compiler.cli import EXIT_INTERRUPTED, main
from compiler.search.cache import EvalCache
from compiler.search.session import HOLD_ENV

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["search", "models/mlp_digits.onnx", "--dataset", "digits", "--budget", "24", "--seed", "3",
        "--search-images", "64", "--max-drop", "2%", "--test-images", "8", "--measure-front", "0"]
# SIGINT as a terminal's process has it: a job started in the background by a non-interactive shell (`cmd &`,
# as CI scripts may run the suite) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
LAUNCH = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "from compiler.cli import main; sys.exit(main(sys.argv[1:]))")


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_sigint_then_resume_equals_uninterrupted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(ARGS + ["-o", str(tmp_path / "whole")]) == 0
    whole = (tmp_path / "whole" / "log.jsonl").read_text().splitlines()
    part = tmp_path / "part"
    after = int(np.random.default_rng(20).integers(1, 12))  # log lines written before the signal
    # the search holds after that line until the signal, so it lands there on a loaded machine too
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **{HOLD_ENV: str(after)})
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, *ARGS, "-o", str(part), "--workers", "2"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while _lines(part / "log.jsonl") < after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before the signal"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    cut = (part / "log.jsonl").read_text().splitlines()
    assert after <= len(cut) < len(whole) and cut == whole[: len(cut)]  # a consistent prefix, every line whole
    scope = json.loads((part / "search.json").read_text())["scope"]
    assert len(EvalCache(part / "evaluations.sqlite", scope)) >= len(cut) - 1  # the baseline is the env's own
    best = json.loads((part / "best.json").read_text())  # the choice so far: a usable precision file
    assert best["layers"] and json.loads((part / "pareto.json").read_text())
    assert main(ARGS + ["-o", str(part), "--resume"]) == 0
    for f in ("log.jsonl", "best.json", "pareto.json"):
        assert (part / f).read_text() == (tmp_path / "whole" / f).read_text(), f
