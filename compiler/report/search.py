"""The search section: the seed's six curves over the episodes, the Pareto front of energy and latency (and area,
when the search counted it) against the selection split's accuracy with the chosen configuration marked
(pareto.json), and the chosen per-layer precision."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..search.plots import CURVES, curves
from . import page
from .figures import new_figure, to_svg

AXES = (("energy_pj", "energy per inference (pJ, estimate)", "energy"),
        ("cycles", "latency (cycles, estimate)", "latency"), ("area_mm2", "chip area used (mm2)", "area"))


def curves_figure(records: list[Any], baseline: Any, fid: str) -> str:
    """The six curves, two rows of three."""
    data = curves(records, baseline)
    fig, axes = new_figure(11.0, 5.6, ncols=3, nrows=2)
    for ax, (stem, label) in zip(axes.flat, CURVES):
        y = data[stem]
        if np.isfinite(y).any():
            ax.plot(np.arange(len(y)), y, lw=1.2, marker="." if len(y) < 60 else None, color="#00897b")
        else:
            ax.text(0.5, 0.5, "no data (not an actor-critic search)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="#777")
        ax.set_xlabel("episode")
        ax.set_ylabel(label)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_svg(fig, fid)


def pareto_figure(records: list[Any], pareto: dict[str, Any], chosen: dict[str, Any], baseline: Any,
                  fid: str) -> str:
    """Each cost against the selection-split accuracy: every evaluation, the points of pareto.json's front (no
    other beats them in every cost and accuracy at once, so a 2-D view need not show them as a staircase), the
    chosen and the baseline's point."""
    rs = [r for r in records if r.error is None]
    points = pareto["points"]
    axes_used = [a for a in AXES if a[0] != "area_mm2" or any(p.get("area_mm2") for p in points)]
    fig, axes = new_figure(11.0, 4.2 if len(axes_used) < 3 else 3.9, ncols=len(axes_used))
    split = pareto.get("select_split", "selection split")
    for ax, (key, label, title) in zip(axes[0], axes_used):
        ax.scatter([r.select_accuracy for r in rs], [getattr(r, key) for r in rs], s=14, color="#b0bec5",
                   label="evaluated configuration", zorder=2)
        ax.scatter([p["select_accuracy"] for p in points], [p[key] for p in points], s=30, color="#00897b",
                   label="Pareto point (pareto.json)", zorder=3)
        if baseline is not None:
            ax.scatter([baseline.select_accuracy], [getattr(baseline, key)], marker="s", s=50, color="#37474f",
                       label="16-bit baseline", zorder=4)
        pick = next((p for p in points if p.get("chosen")), None)
        if pick is not None:
            ax.scatter([pick["select_accuracy"]], [pick[key]], marker="*", s=180, color="#d84315", label="chosen",
                       zorder=5)
        values = [v for v in [getattr(r, key) for r in rs] + [p[key] for p in points] if v]
        if values and max(values) > 20 * min(values):
            ax.set_yscale("log")
        ax.set_xlabel(f"accuracy ({split} split)")
        ax.set_ylabel(label)
        ax.set_title(f"{title} vs accuracy", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return to_svg(fig, fid)


def config_rows(config: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(keys, rows) of a precision config's per-layer options (the preset's defaults are not repeated)."""
    layers = config.get("layers", {})
    keys = list(dict.fromkeys(k for opts in layers.values() for k in opts))
    return ["layer"] + keys, [{"layer": name} | dict(opts) for name, opts in layers.items()]


def search_section(sv: Any) -> str:
    """The search section of a `SearchView`."""
    chosen, base = sv.chosen, sv.baseline
    facts = [("method", "method", sv.method), ("evaluations", "evaluations", len(sv.records)),
             ("best_reward", "best search reward", max(float(r.reward) for r in sv.records)),
             ("chosen_reward", "chosen: search reward", chosen["reward"]),
             ("chosen_select_accuracy", "chosen: accuracy (selection split)", chosen["select_accuracy"]),
             ("chosen_select_bound", "chosen: accuracy drop bound", chosen["select_bound"]),
             ("chosen_meets_max_drop", "chosen: meets the allowed drop", chosen["meets_max_drop"]),
             ("chosen_energy_pj", "chosen: energy pJ (estimate)", chosen["energy_pj"]),
             ("chosen_cycles", "chosen: cycles (estimate)", chosen["cycles"])]
    if base is not None:
        facts += [("baseline_select_accuracy", "16-bit baseline: accuracy (selection split)", base.select_accuracy),
                  ("baseline_energy_pj", "16-bit baseline: energy pJ", base.energy_pj),
                  ("baseline_cycles", "16-bit baseline: cycles", base.cycles)]
    if sv.pareto is not None:
        facts += [("max_drop", "allowed accuracy drop", sv.pareto.get("max_drop")),
                  ("confidence", "confidence of the bound", sv.pareto.get("confidence")),
                  ("pareto_points", "Pareto points", len(sv.pareto["points"]))]
    keys, rows = config_rows(sv.best_config)
    parts = [page.pairs("search", facts),
             page.figure("fig-search-curves", curves_figure(sv.records, base, "search-curves"),
                         "The seed's six curves over the search's episodes.")]
    if sv.pareto is not None:
        parts.append(page.figure("fig-search-pareto", pareto_figure(sv.records, sv.pareto, chosen, base,
                                                                    "search-pareto"),
                                 "Energy and latency (the search's cost-model estimates) against accuracy on the "
                                 "selection split: every evaluation, the front, the chosen configuration."))
    else:
        parts.append(page.note("no pareto.json in this search's output: the Pareto chart is left out"))
    parts += ["<h3>chosen per-layer precision</h3>", page.table("search-config", keys, keys, rows)]
    return "".join(parts)
