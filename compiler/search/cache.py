"""A persistent evaluation cache (SQLite): one row per (scope, effective configuration), the scope being
`EnvConfig.scope` (the model's hash and every setting that changes a score). A search that stops and is run again
(`xbarc search --resume`) or a second search of the same model reads the evaluations made before instead of
recomputing them; each write is committed at once, so an interrupted search leaves a consistent file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Sequence

from isa.errors import XbarcError

from .record import Evaluation

Actions = tuple[tuple[int, ...], ...]

_SCHEMA = "CREATE TABLE IF NOT EXISTS evaluations (scope TEXT, config TEXT, record TEXT, PRIMARY KEY (scope, config))"


def config_key(key: Actions) -> str:
    """The text key of an effective action tuple."""
    return json.dumps([list(a) for a in key], separators=(",", ":"))


class EvalCache:
    """Evaluations of one scope in the SQLite file ``path`` (created if absent)."""

    def __init__(self, path: str | Path, scope: str) -> None:
        self.path, self.scope, self.hits = Path(path), scope, 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.execute(_SCHEMA)
            self.db.commit()
        except (OSError, sqlite3.Error) as e:
            raise XbarcError(f"{self.path}: cannot open the evaluation cache: {e}") from None

    def get(self, key: Actions) -> Evaluation | None:
        """The stored evaluation of ``key``, or None."""
        row = self.db.execute("SELECT record FROM evaluations WHERE scope = ? AND config = ?",
                              (self.scope, config_key(key))).fetchone()
        if row is None:
            return None
        self.hits += 1
        return Evaluation.from_json(json.loads(row[0]))

    def put_many(self, recs: Sequence[Evaluation]) -> None:
        """Store evaluations (their measured fields) in one committed transaction."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?)",
                                [(self.scope, config_key(r.key), json.dumps(r.measured())) for r in recs])

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM evaluations WHERE scope = ?", (self.scope,)).fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        self.db.close()
