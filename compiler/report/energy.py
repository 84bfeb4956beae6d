"""Energy and cycles of a run: per-layer energy stacked by component, energy per component, busy cycles per
layer, and a timeline of every core's busy intervals (`runtime.stats.busy_timeline`: where the pipeline waits)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import page
from .figures import new_figure, to_svg
from .placement import layer_colours

RASTER_BARS = 4000  # more timeline bars than this are drawn as an embedded image inside the SVG


def _components(run: dict[str, Any]) -> list[str]:
    """Components with energy, largest first (leakage included)."""
    return [k for k, v in sorted(run["per_component"].items(), key=lambda kv: (-kv[1], kv[0])) if v > 0]




def energy_figure(run: dict[str, Any], fid: str) -> str:
    """Left: energy per layer stacked by component; right: energy per component (leakage is the chip's, not a
    layer's)."""
    comps = _components(run)
    colours = layer_colours(comps)
    layers = [k for k in run["per_layer"] if k != "-" or run["per_layer"][k]["energy_pj"] > 0]
    per = run.get("per_layer_component", {})
    fig, axes = new_figure(11.0, 0.9 + 0.32 * max(len(layers), len(comps)) + 1.4, ncols=2,
                           gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0, 0]
    y = np.arange(len(layers))
    left = np.zeros(len(layers))
    for c in comps:
        if c == "leakage":
            continue
        vals = np.array([per.get(name, {}).get(c, 0.0) for name in layers]) / 1e3
        if vals.any():
            ax.barh(y, vals, left=left, color=colours[c], label=c)
            left += vals
    ax.set_yticks(y, layers, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("energy per inference (nJ)")
    ax.set_ylabel("layer")
    ax.set_title("energy per layer, by component", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right", title="component")
    ax.grid(axis="x", alpha=0.3)
    ax2 = axes[0, 1]
    total = run["energy_pj"] or 1.0
    nj = [run["per_component"][c] / 1e3 for c in comps]
    bars = ax2.barh(np.arange(len(comps)), nj, color=[colours[c] for c in comps])
    ax2.bar_label(bars, [f"{v * 1e3 / total:.1%}" for v in nj], fontsize=7, padding=2)
    ax2.set_yticks(np.arange(len(comps)), comps, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("energy per inference (nJ)")
    ax2.set_title(f"energy per component (total {total / 1e6:.4g} uJ)", fontsize=10)
    ax2.grid(axis="x", alpha=0.3)
    ax2.set_xlim(0, max(nj, default=1) * 1.25)
    fig.tight_layout()
    return to_svg(fig, fid)


def cycles_figure(run: dict[str, Any], fid: str) -> str:
    """Busy cycles per layer, and the span from its first issue to its last completion."""
    layers = [k for k in run["per_layer"] if k != "-"]
    rows = [run["per_layer"][k] for k in layers]
    fig, axes = new_figure(9.0, 1.0 + 0.3 * len(layers) + 0.8)
    ax = axes[0, 0]
    y = np.arange(len(layers))
    ax.barh(y - 0.2, [r["end"] - r["start"] for r in rows], 0.4, left=[r["start"] for r in rows], color="#b0bec5",
            label="first issue .. last completion")
    ax.barh(y + 0.2, [r["busy_cycles"] for r in rows], 0.4, color="#00897b", label="busy cycles (summed over cores)")
    ax.set_yticks(y, layers, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("cycles")
    ax.set_ylabel("layer")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"cycles per layer (latency {run['cycles']:,} cycles)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return to_svg(fig, fid)


def timeline_figure(run: dict[str, Any], held: dict[str, str], fid: str) -> str:
    """One row per core: its busy intervals, coloured by the layer it holds."""
    timeline = run["timeline"]
    cores = sorted(timeline, key=lambda k: tuple(int(v) for v in k.split(".")))
    colours = layer_colours([held.get(c, "-") for c in cores])
    fig, axes = new_figure(11.0, 1.2 + 0.22 * len(cores) + 0.6)
    ax = axes[0, 0]
    bars = sum(len(v) for v in timeline.values())
    for i, core in enumerate(cores):
        spans = [(s, e - s) for s, e in timeline[core]]
        colour = colours[held.get(core, "-")]
        coll = ax.broken_barh(spans, (i - 0.4, 0.8), facecolors=colour, edgecolors=colour, linewidth=0.6)  # thin
        # bars keep a visible width through their edge
        coll.set_rasterized(bars > RASTER_BARS)
    every = max(1, len(cores) // 40)
    ax.set_yticks(range(0, len(cores), every), [f"{c} {held.get(c, '')}" for c in cores[::every]], fontsize=7)
    ax.set_ylim(len(cores) - 0.5, -0.5)
    ax.set_xlim(0, max(1, run["cycles"]))
    ax.set_xlabel("cycle")
    ax.set_ylabel("core (tile.core) and its layer")
    res = run.get("timeline_resolution", 1)
    ax.set_title(f"busy intervals per core (gaps under {res} cycles merged); white: waiting", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return to_svg(fig, fid)


ROWS_HEADER = ["layer", "energy (pJ)", "share", "busy cycles", "first issue", "last completion", "instructions"]
ROWS_KEYS = ["layer", "energy_pj", "share", "busy_cycles", "start", "end", "instructions"]


def energy_section(view: Any, run: dict[str, Any] | None) -> str:
    """The energy-and-cycles section (a note when there is no run)."""
    if run is None:
        return page.note("no run: give the report a run (`xbarc run OUT --dataset D --report`, or `xbarc report "
                         "OUT --run run.json` with the JSON of `xbarc run --json`) to see energy and cycles")
    held = {f"{t}.{k}": name for (t, k), name in view.core_layers().items()}
    total = run["energy_pj"] or 1.0
    rows = [{"layer": k, "share": v["energy_pj"] / total} | v for k, v in run["per_layer"].items()]
    comp = [{"component": k, "energy_pj": v, "share": v / total} for k, v in run["per_component"].items()]
    pct = {"share": lambda v: f"{v:.1%}"}
    parts = [page.figure("fig-energy-breakdown", energy_figure(run, "energy-breakdown"),
                         "Energy per inference: per layer stacked by component, and per component."),
             page.figure("fig-energy-cycles", cycles_figure(run, "energy-cycles"), "Cycles per layer.")]
    if run.get("timeline"):
        parts.append(page.figure("fig-energy-timeline", timeline_figure(run, held, "energy-timeline"),
                                 "Timeline of each core's busy intervals (runtime counters)."))
    parts.append('<div class="row">' + page.table("energy-layers", ROWS_HEADER, ROWS_KEYS, rows, pct)
                 + page.table("energy-components", ["component", "energy (pJ)", "share"],
                              ["component", "energy_pj", "share"], comp, pct) + "</div>")
    return "".join(parts)
