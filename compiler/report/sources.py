"""What a report is drawn from: a compiled output directory (through `xbarc inspect --json`'s code path, the
manifest, mapping.json, precision.json and the MVMU images), a run's JSON (`compiler.runner.evaluate`, what
``xbarc run --json`` prints) and a search's output directory (log.jsonl, best.json, pareto.json if present)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isa import Program
from isa.errors import XbarcError
from isa.files import load_program
from isa.outputs import read_json, read_text

#: Keys a run's JSON must have to be drawn (`compiler.runner.evaluate`).
RUN_KEYS = ("images", "energy_pj", "cycles", "per_layer", "per_component")


@dataclass
class CompileView:
    """A compiled output directory: the loaded program, `inspect_info`, mapping.json and precision.json."""

    path: Path
    program: Program
    info: dict[str, Any]
    mapping: dict[str, Any]
    precision: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, outdir: str | Path) -> "CompileView":
        """Read ``outdir`` (checksums verified by `load_program`)."""
        from ..cli import inspect_info

        out = Path(outdir)
        program = load_program(out)
        info = inspect_info(out, prog=program)
        mapping = read_json(out / "mapping.json") if (out / "mapping.json").exists() else {}
        prec = read_json(out / "precision.json") if (out / "precision.json").exists() else {}
        if not isinstance(mapping, dict) or not isinstance(prec, dict):
            raise XbarcError(f"{out}: mapping.json and precision.json must be JSON objects")
        return cls(out, program, info, mapping, dict(prec.get("layers", {})))

    @property
    def model(self) -> str:
        """The model's name (manifest metadata), else the directory's."""
        return str(self.program.meta.get("model") or self.path.name)

    def layer_rows(self) -> list[dict[str, Any]]:
        """Mapping rows of the crossbar layers (inspect's rows that have a mapping)."""
        return [lay for lay in self.info["layers"] if "crossbars" in lay]

    def core_layers(self) -> dict[tuple[int, int], str]:
        """The layer each used core holds: its MVMUs' layer, a vector op's name, else its instructions' most
        frequent node."""
        held: dict[tuple[int, int], str] = {}
        for m in self.program.mvmus:
            held.setdefault((m.tile, m.core), m.node)
        for name, (tile, core) in sorted(self.mapping.get("vector_ops", {}).items()):
            held.setdefault((int(tile), int(core)), name)
        for cc in self.program.cores:
            nodes = [i.node for i in cc.instrs if i.node]
            if nodes:
                held.setdefault((cc.tile, cc.core), max(sorted(set(nodes)), key=nodes.count))
        return dict(sorted(held.items()))


def load_run(path: str | Path) -> dict[str, Any]:
    """A run's JSON (``xbarc run OUT --dataset D --json > run.json``), checked for the keys the report draws."""
    data = read_json(Path(path))
    if not isinstance(data, dict) or any(k not in data for k in RUN_KEYS):
        raise XbarcError(f"{path}: not the JSON of `xbarc run --dataset ... --json` (needs {', '.join(RUN_KEYS)})")
    return data


@dataclass
class SearchView:
    """A search's output: every evaluation's record (`compiler.search.record.Evaluation`), the chosen precision
    config and its record, the 16-bit baseline's record, and the Pareto front (pareto.json) when there is one."""

    path: Path | None
    records: list[Any]
    best_config: dict[str, Any]
    baseline: Any
    chosen: dict[str, Any]
    method: str = ""
    pareto: dict[str, Any] | None = field(default=None)

    @classmethod
    def load(cls, outdir: str | Path) -> "SearchView":
        """Read log.jsonl, best.json and pareto.json (if the search wrote one) from ``outdir``."""
        from ..search.record import Evaluation

        out = Path(outdir)
        records = []
        for n, line in enumerate(read_text(out / "log.jsonl").splitlines(), 1):
            try:
                records.append(Evaluation.from_json(json.loads(line)))
            except (json.JSONDecodeError, TypeError, ValueError) as e:
                raise XbarcError(f"{out / 'log.jsonl'}:{n}: not a search record ({e})") from None
        if not records:
            raise XbarcError(f"{out / 'log.jsonl'}: no evaluations")
        best = read_json(out / "best.json")
        pareto = read_json(out / "pareto.json") if (out / "pareto.json").exists() else None
        if not isinstance(best, dict):
            raise XbarcError(f"{out / 'best.json'}: not a precision config (a JSON object)")
        if pareto is not None and not (isinstance(pareto, dict) and isinstance(pareto.get("points"), list)):
            raise XbarcError(f"{out / 'pareto.json'}: not a search's Pareto front (no points)")
        base = baseline_record(records)
        return cls(out, records, best, base, chosen_record(records, pareto, base), records[-1].method, pareto)


def search_view(r: Any) -> SearchView:
    """The `SearchView` of a `compiler.search.SearchResult` in memory (``compile --search --report``: no files, no
    front)."""
    c = r.chosen
    chosen = {"actions": c.actions, "energy_pj": c.energy_pj, "cycles": c.cycles,
              "select_accuracy": c.select_accuracy, "select_bound": c.select_bound, "reward": c.reward,
              "meets_max_drop": r.met}
    return SearchView(None, list(r.records), r.config, r.baseline, chosen, r.method)


def baseline_record(records: list[Any]) -> Any:
    """The 16-bit baseline's record: every hardware cost term is over the baseline's own, so its terms are all
    exactly 1; None if the log has none."""
    return next((r for r in records if r.cost_terms and all(v == 1.0 for v in r.cost_terms.values())), None)


def chosen_record(records: list[Any], pareto: dict[str, Any] | None, baseline: Any) -> dict[str, Any]:
    """What the report shows of the configuration the search delivered (actions, estimated energy and cycles,
    selection-split accuracy and drop bound, search reward): pareto.json's chosen point; without a front, the
    record of the highest search reward."""
    point = next((p for p in (pareto or {}).get("points", []) if p.get("chosen")), None)
    if point is not None:
        return {"actions": point["actions"], "energy_pj": point["energy_pj"], "cycles": point["cycles"],
                "select_accuracy": point["select_accuracy"], "select_bound": point["select_bound"],
                "reward": point["search_reward"], "meets_max_drop": point["meets_max_drop"]}
    r = max(records, key=lambda r: float(r.reward))
    return {"actions": r.actions, "energy_pj": r.energy_pj, "cycles": r.cycles, "select_accuracy": r.select_accuracy,
            "select_bound": r.select_bound, "reward": r.reward, "meets_max_drop": None}


def is_search_dir(path: str | Path) -> bool:
    """Whether ``path`` is a search's output directory (log.jsonl and best.json, no compiled program)."""
    p = Path(path)
    return (p / "log.jsonl").is_file() and (p / "best.json").is_file() and not (p / "manifest.json").exists()
