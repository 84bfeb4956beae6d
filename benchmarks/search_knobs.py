"""The search's latency and width knobs and its runtime-free cost model (issue 20, parts 4 and 6).

Usage: python benchmarks/search_knobs.py [--images 360] [--search-budget 0]
1. Conv replication per layer on LeNet-5 / digits32 (every layer 4-bit, spatial mapping), measured on the
   runtime over the test images: crossbars, MVMUs, tiles, cycles and energy, each against no replication.
2. The cost model's precision-independent part: the static profile of the baseline program (`static_costs`)
   against the runtime run of the baseline it replaces (wall time of each, best of 3), and the estimate's
   agreement with the runtime on random configs with and without the knobs.
3. With --search-budget N: the same RL search (seed 0, --max-drop 2 %) without and with
   --replicas 1,2,4,8 --narrow 0,1,2, the chosen configs measured on the runtime.
Timings are wall clock on whatever else the machine runs: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import best_time, table  # noqa: E402

from compiler import compile_model  # noqa: E402
from compiler.runner import evaluate, run  # noqa: E402
from compiler.search import EnvConfig, SearchEnv, search_precision  # noqa: E402
from compiler.search.env import validate  # noqa: E402
from compiler.search.static_costs import program_profile  # noqa: E402
from models.datasets import load_for_shape  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "models" / "lenet5_digits.onnx")
REPLICAS = [{}, {"conv1": 2}, {"conv1": 4}, {"conv1": 4, "conv2": 2}, {"conv1": 8, "conv2": 4}]


def replication(images: int) -> None:
    """Part 1."""
    x, y = load_for_shape("digits32", "test", (1, 32, 32))
    x, y = x[:images].reshape(-1, 1, 32, 32), y[:images]
    rows, base = [], None
    for reps in REPLICAS:
        cfg = {"preset": "4bit", "layers": {n: {"replicate": r} for n, r in reps.items()}}
        cm = compile_model(LENET, cfg, data=load_for_shape)
        r = evaluate(cm, x, y)
        base = base or r
        m = cm.mapping
        assert m is not None
        rows.append([", ".join(f"{n} {k}" for n, k in reps.items()) or "none", m.crossbars, m.mvmus, m.tiles,
                     f"{r['cycles']} ({base['cycles'] / r['cycles']:.2f}x)",
                     f"{r['energy_pj'] / 1e6:.4f} ({base['energy_pj'] / r['energy_pj']:.2f}x)",
                     f"{100 * r['accuracy']:.2f} %", "yes" if r["bit_exact"] else "NO"])
    print(f"\nLeNet-5 / digits32, 4-bit, spatial, {len(x)} test images (runtime)")
    print(table(rows, ["replicas", "crossbars", "MVMUs", "tiles", "cycles (less)", "energy uJ (less)", "accuracy",
                       "bit-exact"]))


def _env(model: str, dataset: str, **kw: object) -> SearchEnv:
    return SearchEnv(EnvConfig(model, dataset, search_split="val", search_images=8, select_split="calib",
                               select_images=8, data=load_for_shape, **kw))  # type: ignore[arg-type]


def cost_model() -> None:
    """Part 2."""
    rows = []
    for name, model, dataset in (("MLP", "mlp_digits", "digits"), ("LeNet-5", "lenet5_digits", "digits32"),
                                 ("residual net", "resnet_digits", "digits32")):
        env = _env(str(ROOT / "models" / f"{model}.onnx"), dataset)
        cm = env.compile(env.config(env.space.baseline()))
        x = env.x[:4]
        t_static = best_time(lambda: program_profile(cm.program))
        t_run = best_time(lambda: run(cm, {cm.program.inputs[0].name: x}))
        rows.append([name, f"{1e3 * t_static:.1f}", f"{1e3 * t_run:.1f}", f"{t_run / t_static:.0f}x"])
    print("\nprecision-independent costs: static profile vs the runtime run of the baseline on 4 images (ms)")
    print(table(rows, ["model", "static profile", "runtime run", "ratio"]))
    rows = []
    for name, model, dataset, kw in (("LeNet-5", "lenet5_digits", "digits32", {}),
                                     ("LeNet-5, replicas 1-8, narrow 0-2", "lenet5_digits", "digits32",
                                      {"replicas": (1, 2, 4, 8), "narrow": (0, 1, 2)}),
                                     ("MLP", "mlp_digits", "digits", {}),
                                     ("residual net", "resnet_digits", "digits32", {})):
        env = _env(str(ROOT / "models" / f"{model}.onnx"), dataset, **kw)
        rng = np.random.default_rng(0)
        errs = []
        while len(errs) < 6:
            acts = tuple(tuple(int(rng.integers(k)) for k in env.space.sizes) for _ in env.space.layers)
            rec = env.evaluate(acts)
            if rec.error:
                continue
            cm = env.compile(env.config(acts))
            st = run(cm, {cm.program.inputs[0].name: env.x}).stats
            errs.append((rec.energy_pj / st.energy_pj - 1, rec.cycles / st.cycles - 1))
        e = np.array(errs)
        rows.append([name, len(errs), f"{100 * np.abs(e[:, 0]).max():.2f} %", f"{100 * np.abs(e[:, 1]).max():.2f} %"])
    print("\nestimate vs runtime, random configs (seed 0), same 8 images")
    print(table(rows, ["model", "configs", "max |energy error|", "max |cycles error|"]))


def search(budget: int) -> None:
    """Part 3."""
    rows, base = [], None
    for name, kw in (("11 knobs", {}), ("+ replicas 1,2,4,8, narrow 0,1,2",
                                        {"replicas": (1, 2, 4, 8), "narrow": (0, 1, 2)})):
        env = SearchEnv(EnvConfig(LENET, "digits32", max_drop=0.02, data=load_for_shape, **kw))  # type: ignore[arg-type]
        r = search_precision(LENET, budget=budget, seed=0, env=env)
        v = validate(env, r.config)
        base = base or validate(env, env.config(env.space.baseline()))
        rows.append([name, f"{r.seconds:.0f}", f"{base['energy_pj'] / v['energy_pj']:.2f}x",
                     f"{base['cycles'] / v['cycles']:.2f}x", f"{100 * (v['accuracy'] - base['accuracy']):+.2f} %",
                     "yes" if v["bit_exact"] else "NO"])
    print(f"\nRL search, LeNet-5 / digits32, budget {budget}, seed 0, --max-drop 2 %; chosen config on the runtime, "
          f"test split, against the 16-bit baseline")
    print(table(rows, ["knobs", "search s", "energy less", "latency less", "accuracy diff", "bit-exact"]))


def main() -> None:
    """Run the parts asked for."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=360)
    ap.add_argument("--search-budget", type=int, default=0)
    a = ap.parse_args()
    replication(a.images)
    cost_model()
    if a.search_budget:
        search(a.search_budget)


if __name__ == "__main__":
    main()
