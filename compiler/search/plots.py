"""The seed's six search curves as PNG files (optional: needs matplotlib, ``pip install 'xbarc[plot]'``).

One curve per file, over the episodes of the search log: best reward so far, last reward (each episode's),
accuracy on the reward's val images, accuracy difference to the 16-bit baseline, and, for the actor-critic,
the policy and value losses of the update that followed each episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: (file stem, y-axis label) of the six curves, in the seed's order.
CURVES = (("best_reward", "best reward"), ("last_reward", "last reward"), ("accuracy", "accuracy (val)"),
          ("accuracy_diff", "accuracy diff vs 16-bit"), ("policy_loss", "policy loss"),
          ("value_loss", "value loss"))

SKIP_MESSAGE = "plots skipped: matplotlib is not installed (pip install 'xbarc[plot]' to get the six PNG curves)"


def curves(records: Sequence[dict[str, Any]], baseline: dict[str, Any]) -> dict[str, np.ndarray]:
    """The six curves (one value per episode; NaN where an episode has no value, e.g. losses of random search)."""
    get = lambda k: np.array([float(r.get(k, np.nan)) for r in records])  # noqa: E731
    reward, acc = get("reward"), get("accuracy")
    return {"best_reward": np.maximum.accumulate(reward) if len(reward) else reward, "last_reward": reward,
            "accuracy": acc, "accuracy_diff": acc - float(baseline.get("accuracy", np.nan)),
            "policy_loss": get("policy_loss"), "value_loss": get("value_loss")}


def _save_atomic(fig: Any, path: Path) -> None:
    import io

    from isa.outputs import write_file

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_file(path, buf.getvalue())


def write_plots(records: Sequence[dict[str, Any]], baseline: dict[str, Any], out_dir: str | Path,
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


def report_plots(records: Sequence[dict[str, Any]], baseline: dict[str, Any], out_dir: str | Path,
                 title: str = "", echo: Callable[[str], None] = print) -> list[Path] | None:
    """`write_plots`, then one line: the files written, or that plots were skipped and how to get them."""
    files = write_plots(records, baseline, out_dir, title)
    if files is None:
        echo(SKIP_MESSAGE)
    else:
        echo(f"plots: {', '.join(f.name for f in files)} in {Path(out_dir)}")
    return files
