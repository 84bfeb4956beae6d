"""Placement: the chip's used tiles and their cores with the layer each holds, and the words sent between tiles
(from the run's counters: every executed ``send``; without a run, the static ``send`` instructions)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from isa import ops
from . import page
from .figures import new_figure, to_svg

LABELLED_CORES = 64  # more cores than this: a legend instead of a name on every core


def layer_colours(names: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """A fixed colour per layer name, in order of first appearance (tab20, repeating)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]  # its ten dark colours first, then the light ones
    return {n: cmap((2 * i) % 20 + (i // 10) % 2) for i, n in enumerate(dict.fromkeys(names))}


def static_traffic(prog: Any) -> dict[str, int]:
    """Words of the ``send`` instructions in the code, each counted once ("S->D"), for a report without a run."""
    words: dict[tuple[int, int], int] = {}
    for cc in prog.cores:
        for i in cc.instrs:
            if isinstance(i, ops.Send):
                words[(cc.tile, i.tile)] = words.get((cc.tile, i.tile), 0) + i.n
    return {f"{s}->{d}": n for (s, d), n in sorted(words.items())}


def chip_figure(held: dict[tuple[int, int], str], hw: Any, traffic: dict[str, int], fid: str) -> str:
    """Tiles as boxes on a grid, each holding its cores coloured by layer; arrows for the traffic between tiles
    (width by words) when there are few tiles."""
    from matplotlib.patches import FancyArrowPatch, Rectangle

    tiles = sorted({t for t, _ in held} | {int(k.split("->")[j]) for k in traffic for j in (0, 1)})
    per_row = max(1, math.ceil(math.sqrt(len(tiles))))
    cw = max(1, math.ceil(math.sqrt(hw.cores_per_tile)))
    ch = math.ceil(hw.cores_per_tile / cw)
    grid = {t: (i % per_row, i // per_row) for i, t in enumerate(tiles)}
    colours = layer_colours(list(held.values()))
    n_rows = math.ceil(len(tiles) / per_row)
    fig, axes = new_figure(min(10.0, 3.0 + 1.9 * per_row), min(10.0, 1.0 + 1.9 * n_rows))
    ax = axes[0, 0]
    label = len(held) <= LABELLED_CORES
    for t, (gx, gy) in grid.items():
        x0, y0 = gx * (cw + 1), -gy * (ch + 1.4)
        ax.add_patch(Rectangle((x0 - 0.15, y0 - ch - 0.15), cw + 0.3, ch + 0.3, fill=False, lw=1.5, ec="#37474f"))
        ax.text(x0 + cw / 2, y0 + 0.3, f"tile {t}", ha="center", fontsize=8, weight="bold")
        for k in range(hw.cores_per_tile):
            cx, cy = x0 + k % cw, y0 - 1 - k // cw
            name = held.get((t, k))
            ax.add_patch(Rectangle((cx + 0.05, cy + 0.05), 0.9, 0.9, fc=colours[name] if name else "white",
                                   ec="#90a4ae", lw=0.6))
            if name and label:
                ax.text(cx + 0.5, cy + 0.5, f"core {k}\n{name}", ha="center", va="center",
                        fontsize=7 if len(held) <= 16 else 5.5, color="white")
    centre = {t: (gx * (cw + 1) + cw / 2, -gy * (ch + 1.4) - ch / 2) for t, (gx, gy) in grid.items()}
    if traffic and len(tiles) <= 16:
        top = max(traffic.values())
        for key, words in traffic.items():
            s, d = (int(v) for v in key.split("->"))
            ax.add_patch(FancyArrowPatch(centre[s], centre[d], connectionstyle="arc3,rad=0.25", arrowstyle="-|>",
                                         mutation_scale=12, lw=0.6 + 3.0 * words / top, color="#d84315",
                                         alpha=0.75))
    if not label:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=c, label=n) for n, c in colours.items()][:40], fontsize=6, ncol=2,
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), title="layer")
    ax.set_xlim(-0.5, per_row * (cw + 1))
    ax.set_ylim(-n_rows * (ch + 1.4) + 0.6, 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{len(tiles)} tile(s), {len(held)} core(s) in use", fontsize=9)
    fig.tight_layout()
    return to_svg(fig, fid)


def traffic_figure(traffic: dict[str, int], fid: str, per_inference: bool) -> str:
    """The tile-to-tile words as a matrix (source tile x destination tile)."""
    pairs = [(int(k.split("->")[0]), int(k.split("->")[1]), v) for k, v in traffic.items()]
    tiles = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    at = {t: i for i, t in enumerate(tiles)}
    mat = np.zeros((len(tiles), len(tiles)))
    for s, d, v in pairs:
        mat[at[s], at[d]] = v
    size = min(8.0, 2.5 + 0.25 * len(tiles))
    fig, axes = new_figure(size + 1.2, size)
    ax = axes[0, 0]
    shown = np.ma.masked_equal(mat, 0)
    im = ax.imshow(shown, cmap="Oranges", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="words per inference" if per_inference else "words (static sends)")
    every = max(1, len(tiles) // 16)
    ax.set_xticks(range(0, len(tiles), every), [str(t) for t in tiles[::every]], fontsize=7)
    ax.set_yticks(range(0, len(tiles), every), [str(t) for t in tiles[::every]], fontsize=7)
    ax.set_xlabel("destination tile")
    ax.set_ylabel("source tile")
    ax.set_title("send/receive traffic between tiles", fontsize=10)
    fig.tight_layout()
    return to_svg(fig, fid)


def placement_section(view: Any, run: dict[str, Any] | None) -> str:
    """The placement section: chip map, traffic matrix and table."""
    prog = view.program
    held = view.core_layers()
    measured = run is not None and "traffic" in run
    traffic = dict(run["traffic"]) if measured and run is not None else static_traffic(prog)
    rows = [{"core": f"{t}.{k}", "tile": t, "layer": name} for (t, k), name in held.items()]
    hw = prog.hw
    parts = [page.figure("fig-placement-chip", chip_figure(held, hw, traffic, "placement-chip"),
                         f"Tiles and cores in use on the {hw.name} chip ({hw.tiles} tiles x {hw.cores_per_tile} "
                         f"cores), each core coloured and labelled by the layer it holds; arrows: words sent from "
                         f"tile to tile (width by words).")]
    if traffic:
        parts.append(page.figure("fig-placement-traffic", traffic_figure(traffic, "placement-traffic", measured),
                                 "Words sent from each tile (rows) to each tile (columns)."))
    else:
        parts.append(page.note("no tile sends to another tile: every layer's data stays in its tile's memory"))
    pairs = [{"pair": k, "words": v} for k, v in sorted(traffic.items(), key=lambda kv: (-kv[1], kv[0]))]
    parts.append('<div class="row">' + page.table("cores", ["core", "tile", "layer"], ["core", "tile", "layer"], rows)
                 + page.table("traffic", ["tiles", "words per inference" if measured else "words (static)"],
                              ["pair", "words"], pairs) + "</div>")
    return "".join(parts)
