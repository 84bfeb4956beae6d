"""Crossbar occupancy: the bit-line layouts of each layer's MVMUs as cell maps, naive against spatial against
temporal (the seed-003 picture), with the utilization figures beside them.

A cell map has one row per (physical array, row-group step) and one column per physical bit line; a cell is
coloured by the weight slice of the (slice, sign, column) line it holds -- dark for the (+) line, light for the
(-) one -- dark grey where the naive mapping gives a physical bit line to a dead (all-zero) line, the *hollows*,
and white where the array's bit line is free. Spatial and temporal layouts leave the hollows out. A layer is
drawn through one representative MVMU (the one with the most live lines), so a VGG-size layer costs one small
picture, not one per block; the per-layer totals count every MVMU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from isa import MvmuImage, Program
from isa import numerics as nx
from isa.layout import SIGNS, naive_arrays, summarize

from ..mapping.packing import live_lines, max_steps, pack
from . import page
from .figures import new_figure, to_svg

FREE, HOLLOW = (1.0, 1.0, 1.0), (0.33, 0.33, 0.33)
MODES = ("naive", "spatial", "temporal")


@dataclass
class MvmuLayouts:
    """One MVMU's live lines and its layout under each mode (naive: None)."""

    image: MvmuImage
    live: np.ndarray  # (S, 2, C) bool
    layouts: dict[str, np.ndarray | None]

    def arrays(self, mode: str) -> int:
        """Physical crossbars under ``mode``."""
        lay = self.layouts[mode]
        return naive_arrays(self.live.shape[0]) if lay is None else summarize(lay).arrays

    @property
    def compiled(self) -> str | None:
        """The mode whose layout equals the programmed one (None if none does)."""
        if self.image.layout is None:
            return "naive"
        return next((m for m in MODES[1:] if np.array_equal(np.asarray(self.layouts[m]), self.image.layout)), None)


def mvmu_layouts(img: MvmuImage, prog: Program) -> MvmuLayouts:
    """The live lines of ``img`` and its naive, spatial (one step) and temporal (densest: as many row-group
    steps as its rows allow, ``--crossbar-budget 0``) layouts (`compiler.mapping.packing`)."""
    hw = prog.hw
    live = live_lines(img.weights, img.weight_bits, hw.cell_bits, img.encoding)
    rows = img.weights.shape[0]
    return MvmuLayouts(img, live, {"naive": None, "spatial": pack(live, rows, hw, 1),
                                   "temporal": pack(live, rows, hw, max_steps(rows, hw))})


HUES = (0, 1, 2, 3, 4, 5, 6, 8, 9)  # tab20's hue pairs without its greys (grey is the hollows' colour)


def _colour(slice_: int, sign: int) -> tuple[float, float, float]:
    """Slice ``slice_``'s colour: dark for the (+) line, light for the (-) one."""
    from matplotlib import colormaps

    r, g, b, _ = colormaps["tab20"](2 * HUES[slice_ % len(HUES)] + sign)
    return (r, g, b)


def cell_map(m: MvmuLayouts, mode: str, cols: int) -> tuple[np.ndarray, list[str]]:
    """(RGB image, row labels) of ``m`` under ``mode``; ``cols`` physical bit lines per array."""
    live, lay = m.live, m.layouts[mode]
    s, _, c = live.shape
    if lay is None:
        img = np.ones((SIGNS * s, cols, 3))
        for sl in range(s):
            for sign in range(SIGNS):
                row = img[SIGNS * sl + sign]
                row[:c] = HOLLOW
                row[:c][live[sl, sign]] = _colour(sl, sign)
        return img, [f"s{sl}{'+-'[sign]}" for sl in range(s) for sign in range(SIGNS)]
    placed = lay[..., 0] >= 0
    arrays, steps = (int(lay[..., 0].max()) + 1, int(lay[..., 1].max()) + 1) if placed.any() else (0, 1)
    img = np.ones((max(1, arrays * steps), cols, 3))
    for sl, sign, col in np.argwhere(placed):
        a, g, x = (int(v) for v in lay[sl, sign, col])
        img[a * steps + g, x] = _colour(int(sl), int(sign))
    labels = [f"a{a}" + (f" step {g}" if steps > 1 else "") for a in range(arrays) for g in range(steps)]
    return img, labels or ["(none)"]


def layer_figure(m: MvmuLayouts, prog: Program, layer: str, fid: str) -> str:
    """The three cell maps of one MVMU stacked (height proportional to the rows drawn), as inline SVG."""
    maps = {mode: cell_map(m, mode, prog.hw.xbar_cols) for mode in MODES}
    heights = [len(maps[mode][1]) for mode in MODES]
    slices = m.live.shape[0]
    legend_rows = -(-(2 * slices + 2) // 9)
    height = 1.0 + 0.16 * sum(heights) + 0.55 * len(MODES) + 0.2 * legend_rows
    fig, axes = new_figure(9.0, height, nrows=len(MODES), gridspec_kw={"height_ratios": [h + 2 for h in heights]})
    rows, cols = m.image.weights.shape
    done = m.compiled
    for ax, mode in zip(axes[:, 0], MODES):
        img, labels = maps[mode]
        ax.imshow(img, aspect="auto", interpolation="nearest", extent=(-0.5, img.shape[1] - 0.5, len(labels) - 0.5,
                                                                        -0.5))
        every = max(1, len(labels) // 12)
        ax.set_yticks(range(0, len(labels), every), labels[::every], fontsize=7)
        lines = int(m.live.sum())
        extra = " (this compile)" if mode == done else ""
        desc = (f"{m.arrays(mode)} arrays, {SIGNS * slices * cols - lines} hollow lines allocated"
                if mode == "naive" else f"{m.arrays(mode)} arrays, {len(labels) // max(1, m.arrays(mode))} "
                f"step(s), hollows left out")
        ax.set_title(f"{mode}{extra}: {desc}", fontsize=9, loc="left")
        ax.set_ylabel("array / step" if mode != "naive" else "slice, sign", fontsize=8)
    axes[-1, 0].set_xlabel("physical bit line (column)")
    from matplotlib.patches import Patch

    handles = [Patch(color=_colour(sl, 0), label=f"slice {sl} (+)") for sl in range(slices)]
    handles += [Patch(color=_colour(sl, 1), label=f"slice {sl} (-)") for sl in range(slices)]
    handles += [Patch(color=HOLLOW, label="hollow (dead line)"), Patch(facecolor=FREE, edgecolor="#999",
                                                                       label="free bit line")]
    fig.legend(handles=handles, loc="lower center", ncol=9, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"{layer}: MVMU {m.image.tile}.{m.image.core}.{m.image.mvmu}, block of {rows} rows x {cols} "
                 f"columns, {slices} slices ({m.image.encoding})", fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0.0, (0.05 + 0.17 * legend_rows) / height, 1.0, 1.0 - 0.3 / height))
    return to_svg(fig, fid)


def totals_figure(rows: list[dict[str, Any]], fid: str) -> str:
    """Crossbars per layer under each mode (grouped bars)."""
    fig, axes = new_figure(9.0, 3.2)
    ax = axes[0, 0]
    x = np.arange(len(rows))
    width = 0.8 / len(MODES)
    for i, mode in enumerate(MODES):
        vals = [r[f"{mode}_crossbars"] for r in rows]
        bars = ax.bar(x + (i - 1) * width, vals, width, label=mode, color=("#90a4ae", "#26a69a", "#5c6bc0")[i])
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(x, [r["layer"] for r in rows], rotation=30 if len(rows) > 8 else 0, ha="right" if len(rows) > 8
                  else "center")
    ax.set_ylabel("physical crossbars")
    ax.set_xlabel("layer")
    ax.set_yscale("log" if max((r["naive_crossbars"] for r in rows), default=1) > 50 else "linear")
    ax.legend(title="mapping", fontsize=8)
    ax.set_title("crossbars per layer: naive vs spatial (hollow-aware) vs temporal (densest)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return to_svg(fig, fid)


def layer_totals(view_rows: list[dict[str, Any]], per_layer: dict[str, list[MvmuLayouts]], prog: Program
                 ) -> list[dict[str, Any]]:
    """Per layer: crossbars as compiled (mapping.json) and under each mode over its MVMUs (naive also counts
    the all-zero blocks a packed mapping left out), live and hollow bit lines, utilization figures."""
    out = []
    for lay in view_rows:
        ms = per_layer.get(lay["layer"], [])
        s = nx.n_slices(ms[0].image.weight_bits, prog.hw.cell_bits, ms[0].image.encoding) if ms else lay["slices"]
        left_out = max(0, lay["row_blocks"] * lay["col_blocks"] - len(ms))
        lines = sum(int(m.live.sum()) for m in ms)
        allocated = sum(SIGNS * m.live.shape[0] * m.image.weights.shape[1] for m in ms)
        out.append({"layer": lay["layer"], "crossbars": lay["crossbars"], "mvmus": lay["mvmus"],
                    "naive_crossbars": sum(m.arrays("naive") for m in ms) + left_out * naive_arrays(s),
                    "spatial_crossbars": sum(m.arrays("spatial") for m in ms),
                    "temporal_crossbars": sum(m.arrays("temporal") for m in ms),
                    "live_bit_lines": lines, "hollow_bit_lines": allocated - lines, "steps": lay["steps"],
                    "utilization": lay["utilization"], "cell_utilization": lay.get("cell_utilization")})
    return out


HEADER = ["layer", "crossbars (this compile)", "MVMUs", "naive", "spatial", "temporal", "live bit lines",
          "hollow bit lines", "steps", "block utilization", "cell utilization"]
KEYS = ["layer", "crossbars", "mvmus", "naive_crossbars", "spatial_crossbars", "temporal_crossbars",
        "live_bit_lines", "hollow_bit_lines", "steps", "utilization", "cell_utilization"]
PCT = {"utilization": lambda v: f"{v:.1%}", "cell_utilization": lambda v: f"{v:.1%}"}


def occupancy_section(view: Any) -> str:
    """The occupancy section of a `CompileView`."""
    prog = view.program
    per_layer: dict[str, list[MvmuLayouts]] = {}
    for img in prog.mvmus:
        per_layer.setdefault(img.node, []).append(mvmu_layouts(img, prog))
    rows = layer_totals(view.layer_rows(), per_layer, prog)
    parts = [page.note(f"mapping of this compile: {view.mapping.get('mapping', '?')}; crossbars under each mode "
                       f"are counted for the same weights (temporal: as densely as the rows allow, "
                       f"--crossbar-budget 0)"),
             page.table("occupancy", HEADER, KEYS, rows, PCT)]
    if rows:
        parts.append(page.figure("fig-occupancy-totals", totals_figure(rows, "occupancy-totals"),
                                 "Physical crossbars per layer under the three mapping modes."))
    for i, lay in enumerate(rows):
        ms = per_layer.get(lay["layer"], [])
        if not ms:
            continue
        rep = max(ms, key=lambda m: int(m.live.sum()))
        fid = f"fig-occupancy-{i}"
        parts.append(f'<div class="layer" data-layer="{page.esc(lay["layer"])}"><h3>{page.esc(lay["layer"])}</h3>'
                     + page.figure(fid, layer_figure(rep, prog, lay["layer"], fid[4:]),
                                   f"{lay['layer']}: bit-line layout of its MVMU with the most live lines "
                                   f"({len(ms)} MVMU(s) in the layer).") + "</div>")
    return "".join(parts)
