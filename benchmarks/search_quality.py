"""Precision search quality (seed 000): RL vs random vs greedy at an equal budget of distinct evaluations on
LeNet-5 / digits32; the best config of each run is compiled and run on the runtime (test split).

    python benchmarks/search_quality.py [--budget 300] [--seeds 5] [--workers 2] [--val-images 0]
        [--methods rl,random,greedy] [--json OUT.json] [--plots DIR]
    python benchmarks/search_quality.py --report A.json B.json   # one table from runs made separately
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.datasets import load_for_shape  # noqa: E402
from compiler.search import search_precision  # noqa: E402
from compiler.search.agent import parse_rl_options  # noqa: E402
from compiler.search.env import SUMMARY_HEADER, EnvConfig, SearchEnv, summary_rows, validate  # noqa: E402
from compiler.search.plots import report_plots  # noqa: E402


def _table(rows: list[list[str]], header: list[str]) -> str:
    w = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) for r in [header] + rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/lenet5_digits.onnx")
    ap.add_argument("--dataset", default="digits32")
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--val-images", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.02, help="T_t's t (nats of cross-entropy increase)")
    ap.add_argument("--max-drop", type=float, default=EnvConfig.max_drop, help="val accuracy drop allowed")
    ap.add_argument("--clamp-accuracy", action="store_true", help="count the accuracy term from 0")
    ap.add_argument("--calibrated-ce", action="store_true", help="both CEs at their best temperature")
    ap.add_argument("--methods", default="rl,random,greedy")
    ap.add_argument("--mapping", default="spatial", choices=["naive", "spatial", "temporal"])
    ap.add_argument("--rl", action="append", default=[], metavar="KEY=VALUE",
                    help="override an RL hyperparameter (agent.RL_DEFAULTS), e.g. --rl anchor=3 --rl lr=0.01")
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--plots", default=None, help="write each run's six curves (PNG) under this directory")
    ap.add_argument("--report", nargs="+", default=None, help="only print the tables of these --json files")
    a = ap.parse_args()
    if a.report:
        return report_files(a.report)
    t0 = time.perf_counter()
    cfg = EnvConfig(a.model, a.dataset, val_images=a.val_images, threshold=a.threshold, max_drop=a.max_drop,
                    clamp_accuracy=a.clamp_accuracy, calibrated_ce=a.calibrated_ce, mapping=a.mapping,
                    data=load_for_shape)
    env = SearchEnv(cfg)
    # the same reward on the test split: how much of a best reward was luck on the val images (winner's curse)
    test_env = SearchEnv(dataclasses.replace(cfg, split="test", val_images=0))
    base = validate(env, env.config(env.space.baseline()))
    print(f"16-bit baseline on the runtime: {base}", flush=True)
    out: dict[str, list[dict]] = {}
    for method in a.methods.split(","):
        seeds = 1 if method == "greedy" else a.seeds  # greedy is deterministic
        for seed in range(seeds):
            env.cache.clear()
            t = time.perf_counter()
            r = search_precision(a.model, a.dataset, a.budget, seed, method, workers=a.workers, env=env,
                                 rl=parse_rl_options(a.rl))
            v = validate(env, r.best_config)
            row = {"method": method, "seed": seed, "seconds": time.perf_counter() - t, "reward": r.best_reward,
                   "test_reward": test_env.evaluate(r.best_actions)["reward"],
                   "estimate": {k: r.best_record.get(k) for k in ("energy_ratio", "latency_ratio", "accuracy",
                                                                   "cost_accuracy")},
                   "energy_less": base["energy_pj"] / v["energy_pj"], "latency_less": base["cycles"] / v["cycles"],
                   "accuracy_diff": v["accuracy"] - base["accuracy"], "runtime": v, "actions": r.best_actions}
            out.setdefault(method, []).append(row)
            if a.plots:
                report_plots(r.records, r.baseline, Path(a.plots) / f"{method}-seed{seed}", f"{method} seed {seed}")
            print(json.dumps({k: row[k] for k in ("method", "seed", "seconds", "reward", "test_reward", "energy_less",
                                                   "latency_less", "accuracy_diff")}), flush=True)
    report(base, out, a.budget)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"budget": a.budget, "baseline": base, "runs": out}, indent=2,
                                           default=str))
    return 0


def report(base: dict, out: dict[str, list[dict]], budget: int) -> None:
    """The medians table and the measured summary of each method's median-reward run."""
    rows = []
    for method, rs in out.items():
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        test = f"{med('test_reward'):.4f}" if all("test_reward" in r for r in rs) else "-"
        rows.append([method, len(rs), f"{med('reward'):.4f}", test, f"{med('energy_less'):.2f}x",
                     f"{med('latency_less'):.2f}x", f"{100 * med('accuracy_diff'):+.2f}%",
                     f"{sum(r['accuracy_diff'] >= -0.01 for r in rs)}/{len(rs)}",
                     f"{med('seconds'):.0f} s", all(r["runtime"]["bit_exact"] for r in rs)])
    print(f"\nLeNet-5/digits32, budget {budget} distinct evaluations, medians over seeds (runtime, test split):")
    print(_table(rows, ["method", "seeds", "best reward", "its test reward", "energy less", "latency less", "accuracy diff",
                        "<= 1% loss", "time/run", "bit-exact"]))
    pick = {m: sorted(rs, key=lambda r: r["reward"])[len(rs) // 2] for m, rs in out.items()}
    best = {f"{m} (seed {r['seed']}, median reward)": r["runtime"] for m, r in pick.items()}
    print("\n" + _table(summary_rows(base, best), SUMMARY_HEADER))


def report_files(paths: list[str]) -> int:
    """One report from the JSON files of runs made separately (same budget and baseline)."""
    data = [json.loads(Path(p).read_text()) for p in paths]
    if len({d["budget"] for d in data}) > 1:
        raise SystemExit(f"runs of different budgets: {[d['budget'] for d in data]}")
    out: dict[str, list[dict]] = {}
    for d in data:
        for m, rs in d["runs"].items():
            out.setdefault(m, []).extend(rs)
    report(data[0]["baseline"], out, data[0]["budget"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
