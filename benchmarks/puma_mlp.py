"""PUMA's 784-1024-512-200-10 sigmoid MLP on the `puma` hardware preset, beside PUMA's own simulator.

Usage: python benchmarks/puma_mlp.py
PUMA's simulator on this machine (../shared/design/PUMA_NOTES.md): 17,002 cycles, 7.04 uJ (5.71 dynamic + 1.33
leakage), 20.2 s of wall time per inference. Goals: >= 10,000x faster per inference; cycles and energy within 2x.
A machine's first run at a batch size records its schedule (fast mode); the timed runs replay it
(`runtime.replay`) on other inputs than the recorded ones; both times are printed.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import table  # noqa: E402

from models.datasets import load_for_shape  # noqa: E402
from compiler import compile_model, runner  # noqa: E402
from models.puma_mlp import build_puma_mlp, puma_input  # noqa: E402
from runtime import Machine  # noqa: E402

PUMA = {"cycles": 17002, "energy_uj": 7.04, "dynamic_uj": 5.71, "leakage_uj": 1.33, "wall_s": 20.2}


def batched(cm: object, machine: Machine, sizes: tuple[int, ...] = (64, 1000)) -> list[list[object]]:
    """Per-inference wall time of runs over batches of different inputs (best of 3), with their counters and
    the bit-exact check against the functional model."""
    rows: list[list[object]] = []
    for n in sizes:
        xs = np.random.RandomState(2).uniform(0, 1, size=(n, 784)).astype(np.float32)
        feeds = {"input": xs}
        q = runner.quantize_inputs(cm, feeds)
        other = np.random.RandomState(3).uniform(0, 1, size=(n, 784)).astype(np.float32)
        t0 = time.perf_counter()
        machine.run(runner.quantize_inputs(cm, {"input": other}))  # records the schedule at this batch size
        first = time.perf_counter() - t0
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            result = machine.run(q)
            best = min(best, time.perf_counter() - t0)
        s = result.stats
        exact = runner.bit_exact(cm, feeds, runner.run(cm, feeds))
        assert machine.replayed
        rows.append([n, f"{first:.3f}", f"{best:.3f}", f"{best / n:.5f}", f"{PUMA['wall_s'] * n / best:,.0f}x faster",
                     f"{s.cycles:,}", f"{s.energy_pj / 1e6:.3f}", exact])  # Stats are per inference
    return rows


def main() -> None:
    """Compile, run once (and time the run over repeats), print the comparison."""
    t0 = time.perf_counter()
    # PUMA allocates every crossbar
    cm = compile_model(build_puma_mlp(), "puma", hw="puma", mapping="naive", data=load_for_shape)
    compile_s = time.perf_counter() - t0
    x = puma_input()
    feeds = {"input": x}
    q = runner.quantize_inputs(cm, feeds)
    machine = Machine(cm.program)
    t0 = time.perf_counter()
    machine.run(runner.quantize_inputs(cm, {"input": puma_input() * 0.5}))  # records the schedule (other input)
    first = time.perf_counter() - t0
    walls = []
    for _ in range(5):
        t0 = time.perf_counter()
        result = machine.run(q)
        walls.append(time.perf_counter() - t0)
    s = result.stats
    wall = min(walls)
    leak = s.per_component.get("leakage", 0.0) / 1e6
    total = s.energy_pj / 1e6
    outcome = runner.run(cm, feeds)
    exact = runner.bit_exact(cm, feeds, outcome)
    ref = runner.reference_outputs(cm.model, feeds, ["output"])["output"]
    err = float(abs(outcome.device_float["output"] - ref).max())
    rep = cm.mapping.report(cm.precision) if cm.mapping else {}
    rows = [
        ["cycles per inference", f"{s.cycles:,}", f"{PUMA['cycles']:,}", f"{s.cycles / PUMA['cycles']:.2f}"],
        ["energy per inference (uJ)", f"{total:.3f}", f"{PUMA['energy_uj']:.2f}", f"{total / PUMA['energy_uj']:.2f}"],
        ["  dynamic (uJ)", f"{total - leak:.3f}", f"{PUMA['dynamic_uj']:.2f}",
         f"{(total - leak) / PUMA['dynamic_uj']:.2f}"],
        ["  leakage (uJ)", f"{leak:.3f}", f"{PUMA['leakage_uj']:.2f}", f"{leak / PUMA['leakage_uj']:.2f}"],
        ["wall time per inference (s)", f"{wall:.4f}", f"{PUMA['wall_s']:.1f}", f"{PUMA['wall_s'] / wall:,.0f}x faster"],
        ["  first run (records the schedule)", f"{first:.4f}", f"{PUMA['wall_s']:.1f}",
         f"{PUMA['wall_s'] / first:,.0f}x faster"],
    ]
    print(table(rows, ["PUMA MLP 784-1024-512-200-10", "xbarc", "PUMA simulator", "ratio"]))
    print("\nThroughput: a batch of N different random inputs (same distribution) through one run; the program,")
    print("cycles per inference (latency) and energy model are the same, the interpreter's cost is spread over N")
    print(table(batched(cm, machine), ["batch N", "first run s", "wall s per run", "wall s per inference",
                                       "vs PUMA simulator",
                                       "cycles per inference", "mean uJ per inference", "bit-exact"]))
    print(f"\ncompile time {compile_s:.2f} s; {rep.get('mvmus')} MVMUs, {rep.get('crossbars')} crossbars, "
          f"{rep.get('cores')} cores, {rep.get('tiles')} tiles; static instructions {cm.program.static_instructions}")
    print(f"bit-exact vs functional model: {exact}; max |output - onnxruntime| = {err:.2e} (Q4.12 outputs)")
    comps = sorted(s.per_component.items(), key=lambda kv: -kv[1])
    print("\n" + table([[k, f"{v / 1e6:.4f}", f"{v / s.energy_pj:.1%}"] for k, v in comps],
                       ["component", "uJ", "share"]))
    rows = []
    for label, cfg, mode in (("(+)/(-) pairs, naive (above)", "puma", "naive"),
                             ("(+)/(-) pairs, spatial", "puma", "spatial"),
                             ("two's complement (w_enc tc), spatial", {"preset": "puma", "default": {"w_enc": "tc"}},
                              "spatial")):
        other = compile_model(build_puma_mlp(), cfg, hw="puma", mapping=mode, data=load_for_shape)
        r = runner.run(other, feeds)
        rows.append([label, f"{other.mapping.crossbars:,}", f"{r.stats.cycles:,}", f"{r.stats.energy_pj / 1e6:.3f}",
                     f"{r.stats.per_component['crossbar'] / 1e6:.3f}", runner.bit_exact(other, feeds, r)])
    print("\nWeight storage and mapping (PUMA: 98 MVMUs x 8 crossbars = 784, 17,002 cycles, 7.04 uJ)")
    print(table(rows, ["storage, mapping", "crossbars", "cycles", "energy uJ", "crossbar uJ", "bit-exact"]))


if __name__ == "__main__":
    main()
