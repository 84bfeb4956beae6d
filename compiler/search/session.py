"""The files of one `xbarc search -o OUT` (docs/search.md, "Outputs"): ``search.json`` (the settings, so that
``--resume`` continues the same search), ``log.jsonl`` (one record per evaluation, flushed as the search goes),
``evaluations.sqlite`` (the evaluation cache), ``best.json`` (the chosen precision config), ``pareto.json`` with
``pareto/point-NN.json``, and the plots when matplotlib is installed."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from isa.errors import XbarcError
from isa.outputs import write_file

from .env import SearchEnv
from .methods import SearchResult
from .pareto import write_pareto
from .record import Evaluation


def check_resume(out: Path, settings: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
    """With ``resume``: the earlier log of the search in ``out`` (its ``search.json`` must hold the same
    ``settings``: an error names the ones that differ); without it, nothing. Writes ``search.json``."""
    old: list[dict[str, Any]] = []
    if resume:
        f = out / "search.json"
        if not f.exists():
            raise XbarcError(f"--resume: {f} not found; there is no search to resume in {out}")
        try:
            was = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise XbarcError(f"--resume: {f}: cannot read the earlier settings: {e}") from None
        diff = sorted(k for k in set(was) | set(settings) if was.get(k) != settings.get(k))
        if diff:
            raise XbarcError(f"--resume: the settings differ from the search in {out}: "
                             + ", ".join(f"{k} was {was.get(k)!r}, now {settings.get(k)!r}" for k in diff))
        log = out / "log.jsonl"
        old = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
    write_file(out / "search.json", json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return old


#: Environment variable: after this many log lines the search sleeps `HOLD_SECONDS` (then goes on), so that a
#: signal lands at a known point whatever the machine's load (`tests/test_search_interrupt.py`).
HOLD_ENV = "XBARC_SEARCH_HOLD_AFTER"
HOLD_SECONDS = 600.0


class Checkpoint:
    """``log.jsonl`` written as the search goes, one flushed line per evaluation, so that a killed search keeps
    what it evaluated; rewritten atomically at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: io.TextIOBase | None = None
        self.lines = 0
        hold = os.environ.get(HOLD_ENV, "")
        self.hold_after = int(hold) if hold.isdigit() else None

    def __enter__(self) -> "Checkpoint":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.f = self.path.open("w")  # type: ignore[assignment]
        except OSError as e:
            raise XbarcError(f"{self.path}: cannot write: {e.strerror}") from None
        return self

    def append(self, record: Evaluation) -> None:
        """Write one evaluation's record."""
        assert self.f is not None
        try:
            self.f.write(json.dumps(record.to_json()) + "\n")
            self.f.flush()
        except OSError as e:
            raise XbarcError(f"{self.path}: cannot write: {e.strerror}") from None
        self.lines += 1
        if self.lines == self.hold_after:  # a reproducible point for an interruption (Ctrl-C test, debugging)
            print(f"xbarc search: holding after {self.lines} log lines ({HOLD_ENV}); Ctrl-C to interrupt",
                  file=sys.stderr, flush=True)
            time.sleep(HOLD_SECONDS)

    def __exit__(self, *exc: object) -> None:
        if self.f is not None:
            self.f.close()


def write_outputs(out: Path, env: SearchEnv, r: SearchResult) -> dict[str, Any]:
    """best.json (the chosen config), log.jsonl and the Pareto front; returns `pareto.json`'s document."""
    write_file(out / "best.json", json.dumps(r.config, indent=2) + "\n")
    write_file(out / "log.jsonl", "".join(json.dumps(x.to_json()) + "\n" for x in r.records))
    return write_pareto(out, env, r.records, r.chosen)


def resumed_agrees(old: list[dict[str, Any]], r: SearchResult, echo: Callable[[str], None]) -> bool:
    """Whether the resumed search replayed the earlier log unchanged (a warning through ``echo`` if not)."""
    new = [x.to_json() for x in r.records[: len(old)]]
    if new == old:
        return True
    echo(f"warning: the resumed search's first {len(old)} evaluations differ from the earlier log "
         f"(another machine's float results?): continued from its own replay")
    return False
