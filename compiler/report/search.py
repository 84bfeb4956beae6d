"""The search section: the seed's six curves over the episodes, the Pareto fronts of energy and latency against
accuracy with the chosen configuration marked, and the chosen per-layer precision."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..search.plots import CURVES, curves
from . import page
from .figures import new_figure, to_svg


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (accuracy, cost) no other point beats (accuracy at least as high and cost at most
    as low, one strictly), ordered by cost; one index per distinct point."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0], i))
    front, best = [], -np.inf
    for i in order:
        if points[i][0] > best:
            front.append(i)
            best = points[i][0]
    return front


def curves_figure(records: list[dict[str, Any]], baseline: dict[str, Any], fid: str) -> str:
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


def pareto_figure(records: list[dict[str, Any]], chosen: dict[str, Any], baseline: dict[str, Any], fid: str) -> str:
    """Energy and cycles against val accuracy: every evaluation, the front, the chosen and baseline points."""
    fig, axes = new_figure(11.0, 4.2, ncols=2)
    acc = [float(r["accuracy"]) for r in records]
    ok = [bool(r.get("feasible", True)) for r in records]
    for ax, key, label in ((axes[0, 0], "energy_pj", "energy per inference (pJ, estimate)"),
                           (axes[0, 1], "cycles", "latency (cycles, estimate)")):
        cost = [float(r[key]) for r in records]
        for feasible, style in ((True, {"color": "#78909c", "label": "evaluated, within the threshold"}),
                                (False, {"color": "#ef9a9a", "marker": "x", "label": "evaluated, over the threshold"})):
            idx = [i for i in range(len(records)) if ok[i] == feasible]
            if idx:
                ax.scatter([acc[i] for i in idx], [cost[i] for i in idx], s=14, zorder=2, **style)
        pool = [i for i in range(len(records)) if ok[i]] or list(range(len(records)))
        front = [pool[j] for j in pareto_front([(acc[i], cost[i]) for i in pool])]
        ax.plot([acc[i] for i in front], [cost[i] for i in front], "-o", ms=4, color="#00897b",
                label="Pareto front (within the threshold)", zorder=3)
        if baseline:
            ax.scatter([baseline["accuracy"]], [baseline[key]], marker="s", s=50, color="#37474f",
                       label="16-bit baseline", zorder=4)
        ax.scatter([chosen["accuracy"]], [chosen[key]], marker="*", s=160, color="#d84315", label="chosen",
                   zorder=5)
        ax.set_xlabel("accuracy (val images)")
        ax.set_ylabel(label)
        ax.set_yscale("log" if max(cost) > 20 * max(min(cost), 1e-12) else "linear")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_title("energy vs accuracy", fontsize=10)
    axes[0, 1].set_title("latency vs accuracy", fontsize=10)
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
             ("best_reward", "best reward", float(chosen["reward"])),
             ("chosen_accuracy", "chosen: accuracy (val)", chosen.get("accuracy")),
             ("chosen_energy_pj", "chosen: energy pJ (estimate)", chosen.get("energy_pj")),
             ("chosen_cycles", "chosen: cycles (estimate)", chosen.get("cycles")),
             ("baseline_accuracy", "16-bit baseline: accuracy (val)", base.get("accuracy")),
             ("baseline_energy_pj", "16-bit baseline: energy pJ", base.get("energy_pj")),
             ("baseline_cycles", "16-bit baseline: cycles", base.get("cycles")),
             ("preset", "chosen config's preset", sv.best_config.get("preset"))]
    keys, rows = config_rows(sv.best_config)
    parts = [page.pairs("search", facts),
             page.figure("fig-search-curves", curves_figure(sv.records, base, "search-curves"),
                         "The seed's six curves over the search's episodes."),
             page.figure("fig-search-pareto", pareto_figure(sv.records, chosen, base, "search-pareto"),
                         "Energy and latency (the search's cost-model estimates) against val accuracy."),
             "<h3>chosen per-layer precision</h3>", page.table("search-config", keys, keys, rows)]
    if sv.pareto is not None:
        parts.insert(1, page.note("pareto.json of the search read; the fronts below are computed from every "
                                  "evaluation in log.jsonl"))
    return "".join(parts)
