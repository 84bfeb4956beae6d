"""The seed's six search curves as PNG files (optional: needs matplotlib, ``pip install 'xbarc[plot]'``).

One curve per file, over the episodes of the search log: best reward so far, last reward (each episode's),
accuracy on the reward's (search split) images, accuracy difference to the 16-bit baseline, and, for the actor-critic,
the policy and value losses of the update that followed each episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: (file stem, y-axis label) of the six curves, in the seed's order.
CURVES = (("best_reward", "best reward"), ("last_reward", "last reward"), ("accuracy", "accuracy (search split)"),
          ("accuracy_diff", "accuracy diff vs 16-bit"), ("policy_loss", "policy loss"),
          ("value_loss", "value loss"))

SKIP_MESSAGE = "plots skipped: matplotlib is not installed (pip install 'xbarc[plot]' to get the six PNG curves)"


def curves(records: Sequence[Any], baseline: Any) -> dict[str, np.ndarray]:
    """The six curves of `Evaluation` records (one value per episode; NaN where an episode has no value, e.g.
    losses of random search)."""
    def get(k: str) -> np.ndarray:
        return np.array([np.nan if getattr(r, k, None) is None else float(getattr(r, k)) for r in records])

    reward, acc = get("reward"), get("accuracy")
    base = getattr(baseline, "accuracy", None)
    return {"best_reward": np.maximum.accumulate(reward) if len(reward) else reward, "last_reward": reward,
            "accuracy": acc, "accuracy_diff": acc - (np.nan if base is None else float(base)),
            "policy_loss": get("policy_loss"), "value_loss": get("value_loss")}


def _save_atomic(fig: Any, path: Path) -> None:
    import io

    from isa.outputs import write_file

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_file(path, buf.getvalue())


def write_plots(records: Sequence[Any], baseline: Any, out_dir: str | Path,
                title: str = "") -> list[Path] | None:
    """Write the curves that have data as ``out_dir/<stem>.png`` (each atomically: a temp file, then
    `os.replace`); None when matplotlib is not importable. Returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, label in CURVES:
        y = curves(records, baseline)[stem]
        if not np.isfinite(y).any():
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        try:
            ax.plot(np.arange(len(y)), y, lw=1.2)
            ax.set_xlabel("episode")
            ax.set_ylabel(label)
            ax.set_title(f"{title} {label}".strip())
            ax.grid(alpha=0.3)
            fig.tight_layout()
            _save_atomic(fig, out / f"{stem}.png")
        finally:
            plt.close(fig)
        written.append(out / f"{stem}.png")
    return written


def report_plots(records: Sequence[Any], baseline: Any, out_dir: str | Path,
                 title: str = "", echo: Callable[[str], None] = print) -> list[Path] | None:
    """`write_plots`, then one line: the files written, or that plots were skipped and how to get them."""
    files = write_plots(records, baseline, out_dir, title)
    if files is None:
        echo(SKIP_MESSAGE)
    else:
        echo(f"plots: {', '.join(f.name for f in files)} in {Path(out_dir)}")
    return files


def write_front_plot(doc: dict[str, Any], evaluated: Sequence[Any], path: str | Path) -> Path | None:
    """The Pareto front of `pareto.write_pareto`'s document ``doc`` over every evaluated configuration
    (``evaluated``: `Evaluation` records): energy against selection accuracy, front points joined, the chosen one
    ringed; None when matplotlib is not importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    pts = [r for r in evaluated if r.error is None and not r.stopped_at]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.scatter([r.energy_pj / 1e6 for r in pts], [100 * r.select_accuracy for r in pts], s=6, c="0.6",
                   label="evaluated")
        front = doc["points"]
        ax.plot([p["energy_pj"] / 1e6 for p in front], [100 * p["select_accuracy"] for p in front], "o-", ms=4,
                label="Pareto front")
        for p in front:
            if p["chosen"]:
                ax.plot(p["energy_pj"] / 1e6, 100 * p["select_accuracy"], "o", ms=12, mfc="none", mec="r",
                        label="chosen")
        floor = 100 * (doc["float_select_accuracy"] - doc["max_drop"])
        ax.axhline(floor, ls="--", c="r", lw=0.8, label="float - max drop")
        ax.set_xscale("log")
        ax.set_xlabel("energy per inference (uJ, estimated)")
        ax.set_ylabel(f"accuracy on {doc['select_split']} (%)")
        ax.set_ylim(max(0.0, floor - 10), 100.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        _save_atomic(fig, Path(path))
    finally:
        plt.close(fig)
    return Path(path)
