"""A search's front (`pareto.json`): the evaluated configurations that no other beats in energy, cycles and
area and selection-split accuracy at once, each written as a precision file `xbarc compile --precision` takes, the point
delivered (`selection.choose`) marked, and a plot when matplotlib is installed (docs/search.md, "Pareto front")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from isa.outputs import write_file

from .env import SearchEnv
from .record import Evaluation
from .selection import pareto_front


def front_points(env: SearchEnv, records: Sequence[Evaluation], chosen: Evaluation) -> list[Evaluation]:
    """The front of ``records`` and the 16-bit baseline, plus ``chosen`` if it is not on it, ordered by energy."""
    pts = pareto_front(list(records) + ([env.baseline] if env.baseline else []))
    if all(p.key != chosen.key for p in pts):
        pts = sorted(pts + [chosen], key=lambda r: (r.energy_pj, r.cycles, -r.select_accuracy))
    return pts


def point_row(env: SearchEnv, r: Evaluation, file: str, chosen: Evaluation, bound: float) -> dict[str, Any]:
    """One point of `pareto.json`: its precision file, estimated costs and ratios, selection-split scores
    (``bound``: the choice's bound, `SearchEnv.choice_bound`)."""
    base = env.baseline
    assert base is not None
    return {"file": file, "chosen": r.key == chosen.key, "meets_max_drop": bound <= env.cfg.max_drop,
            "choice_bound": bound,
            "energy_pj": r.energy_pj, "cycles": r.cycles, "energy_less": base.energy_pj / r.energy_pj,
            "latency_less": base.cycles / r.cycles, "area_mm2": r.area_mm2,
            "area_less": base.area_mm2 / r.area_mm2 if r.area_mm2 else None, "select_accuracy": r.select_accuracy,
            "select_drop": r.select_drop, "select_bound": r.select_bound, "cost_hardware": r.cost_hardware,
            "search_reward": r.reward, "actions": r.actions}


def write_pareto(out: str | Path, env: SearchEnv, records: Sequence[Evaluation], chosen: Evaluation
                 ) -> dict[str, Any]:
    """Write ``out/pareto.json`` and ``out/pareto/point-NN.json`` (one precision config per point), each
    atomically; returns the document."""
    out = Path(out)
    pts = front_points(env, records, chosen)
    at = env.choice_bound(list(records) + ([env.baseline] if env.baseline else []))
    rows = []
    for i, r in enumerate(pts):
        name = f"pareto/point-{i:02d}.json"
        write_file(out / name, json.dumps(env.config(r.actions), indent=2) + "\n")
        rows.append(point_row(env, r, name, chosen, at(r)))
    c = env.cfg
    doc = {"objectives": ["energy_pj (min)", "cycles (min)", "area_mm2 (min)", f"accuracy on '{c.select_split}' (max)"],
           "max_drop": c.max_drop, "confidence": c.confidence, "select_split": c.select_split,
           "select_correction": c.select_correction,
           "select_images": len(env.select.x), "float_select_accuracy": env.select.accuracy, "points": rows}
    write_file(out / "pareto.json", json.dumps(doc, indent=2) + "\n")
    return doc
