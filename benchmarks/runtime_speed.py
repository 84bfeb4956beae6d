"""Runtime speed on the bundled models: onnxruntime float vs the functional model vs the runtime's reference
interpreter, its fast mode (static loops batched: a machine's first run at a batch size) and the trace replay
(`runtime.replay`: its later runs at that batch size), at batch 1, 64 and 360 (the digits test split).

Usage: python benchmarks/runtime_speed.py [--precision 16bit 8bit 8bit-adc5] [--batch 1 64 360] [--repeat 2]
                                          [--models ...] [--workers 2] [--cpu]

Prints images/s of each, replay time over the functional model's (the goal: within 1.5x) and the fast mode's and
the replay's speed-ups over the reference interpreter, all measured in the same run, interleaved (best of
``--repeat``; the replay on other data than the run it replays), and checks that every runtime mode gives the
functional model's outputs bit for bit and equal counters. With
``--workers N`` the largest batch also runs sharded over N processes (one BLAS thread each). The machine these
figures come from is shared: compare ratios within one run; ``--cpu`` times this process's CPU time instead of
wall time (single-threaded work: less inflated by the other processes' load; not with ``--workers``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _table import best_time, table  # noqa: E402

from compiler import compile_model, runner  # noqa: E402
from models.datasets import load_for_shape, load_dataset  # noqa: E402
from runtime import Machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"mlp_digits": (ROOT / "models" / "mlp_digits.onnx", "digits"),
          "lenet5_digits": (ROOT / "models" / "lenet5_digits.onnx", "digits32"),
          "lenet5_mnist": (ROOT / "models" / "lenet5_mnist.onnx", "mnist"),
          "resnet_digits": (ROOT / "models" / "resnet_digits.onnx", "digits_image")}


def _config(precision: str) -> object:
    preset, _, adc = precision.partition("-adc")
    return {"preset": preset, "default": {"adc_bits": int(adc)}} if adc else preset


def measure(name: str, precision: str, batches: list[int], repeat: int, workers: int,
            clock: Any = time.perf_counter) -> list[list[object]]:
    """Rows for one model and precision: one per batch size (times by ``clock``)."""
    import onnxruntime as ort

    path, dataset = MODELS[name]
    x_all, _ = load_dataset(dataset, "test")
    cm = compile_model(path, _config(precision), data=load_for_shape)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref_m, fast_m, rep_m = Machine(cm.program, reference=True), Machine(cm.program, replay=False), Machine(cm.program)
    rows = []
    for batch in batches:
        x = np.concatenate([x_all] * (1 + batch // len(x_all)))[:batch]
        feeds = {cm.program.inputs[0].name: x}
        q = runner.quantize_inputs(cm, feeds)
        t_ort = best_time(lambda: sess.run(None, {sess.get_inputs()[0].name: x}), repeat, clock)
        t_fun = best_time(lambda: runner.functional_outputs(cm, feeds), repeat, clock)
        t_ref = best_time(lambda: ref_m.run(q), repeat, clock)
        t_fast = best_time(lambda: fast_m.run(q), repeat, clock)
        rep_m.run({k: v[::-1] + 0 for k, v in q.items()})  # records the schedule on other data
        t_rep = best_time(lambda: rep_m.run(q), repeat, clock)
        a, b, r = ref_m.run(q), fast_m.run(q), rep_m.run(q)
        fun = runner.functional_outputs(cm, feeds)
        name0 = cm.program.outputs[0].name
        exact = (np.array_equal(a.outputs[name0], b.outputs[name0]) and a.stats.to_dict() == b.stats.to_dict()
                 and rep_m.replayed and np.array_equal(a.outputs[name0], r.outputs[name0])
                 and a.stats.to_dict() == r.stats.to_dict()
                 and all(np.array_equal(runner.run(cm, feeds).device_int[k], v.reshape(len(x), -1))
                         for k, v in fun.items()))
        par = "-"
        if workers > 1 and batch == max(batches):
            t0 = time.perf_counter()
            c = fast_m.run(q, workers=workers)
            par = f"{batch / (time.perf_counter() - t0):,.0f}"
            exact = exact and c.stats.to_dict() == b.stats.to_dict()
        rows.append([name, precision, batch, f"{batch / t_ort:,.0f}", f"{batch / t_fun:,.0f}",
                     f"{batch / t_ref:,.0f}", f"{batch / t_fast:,.0f}", f"{batch / t_rep:,.0f}", par,
                     f"{t_rep / t_fun:.2f}x", f"{t_ref / t_fast:.1f}x", f"{t_ref / t_rep:.1f}x",
                     "yes" if exact else "NO"])
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", nargs="+", default=["16bit", "8bit", "8bit-adc5"],
                    help="presets; NAME-adcB sets every layer's ADC to B bits (conversions clip)")
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 64, 360])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="also run the largest batch over N processes")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=None)
    ap.add_argument("--cpu", action="store_true", help="time CPU time of this process, not wall time")
    args = ap.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    rows = [r for name in (args.models or list(MODELS)) for p in args.precision
            for r in measure(name, p, args.batch, args.repeat, args.workers, clock)]
    print(table(rows, ["model", "precision", "batch", "onnxruntime img/s", "functional img/s", "reference img/s",
                       "fast img/s", "replay img/s", f"fast x{args.workers} workers img/s",
                       "replay/functional time", "fast speed-up", "replay speed-up", "bit-exact, counters equal"]))


if __name__ == "__main__":
    main()
