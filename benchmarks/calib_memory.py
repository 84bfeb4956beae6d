"""Calibration memory at ImageNet size: the peak memory of `calibrate` on SqueezeNet- and VGG-size models.

Usage: python benchmarks/calib_memory.py [--models squeezenet vgg19] [--images 256] [--dtypes float32 float64]
                                         [--budget 2G] [--timeout 3600]

The models are onnx's light zoo files (``onnx/backend/test/data/light/light_*.onnx``, 224x224 inputs) with
He-initialized random weights (`real_models.randomized`), imported as `xbarc compile` imports them. Each row
calibrates, in its own subprocess, on the default calibration of a model without a data set: ``--images``
(default 256, `compiler.driver.CALIB_IMAGES`) uniform noise images drawn chunk by chunk, under the memory budget
(``XBARC_MEMORY_BUDGET``, default 2 GiB). It prints the peak of the bytes numpy allocated during calibration
(tracemalloc: numpy reports its buffers to it), the estimate the chunking planned with (`item_bytes` x images
per chunk), the images per chunk, the seconds, and the peak RSS of the process (the imported model included).
float64 (the float type calibration used before) is the baseline, measured in the same run: the budget bounds
both peaks, so float32's gain shows as twice the images per chunk (fewer, larger chunks: faster) and in the peak
per image of a chunk, whose ratio to the float64 row's of the same model is the last column but two. The machine is shared: seconds are noisy, bytes
are not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _table import table  # noqa: E402

MODELS = ("squeezenet", "vgg19")


def measure(name: str, images: int, dtype: str) -> dict[str, Any]:
    """Import one light model with random weights and calibrate it on ``images`` noise images in ``dtype``."""
    import tracemalloc

    import numpy as np
    import onnx

    from compiler.driver import import_graph
    from compiler.quant.calibrate import UniformInputs, calibrate, item_bytes
    from isa.hardware import DEFAULT
    from isa.memory import chunk_size, memory_budget
    from real_models import light_dir, randomized

    model = randomized(onnx.load(str(light_dir() / f"light_{name}.onnx")))
    g = import_graph(model)[0]
    inputs = UniformInputs({v.name: v.shape for v in g.inputs}, images)
    dt = np.dtype(dtype).type
    per, detail = item_bytes(g, dt)
    chunk = chunk_size("calibration", per, images, memory_budget(), detail)
    tracemalloc.start()
    t0 = time.perf_counter()
    calibrate(g, inputs, DEFAULT.xbar_rows, dtype=dt)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"model": name, "input": list(g.inputs[0].shape), "dtype": dtype, "images": images, "chunk": chunk,
            "estimate_mb": per * chunk / 2**20, "peak_mb": peak / 2**20, "seconds": seconds,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    """Measure every (model, dtype) in a subprocess and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--images", type=int, default=256, help="calibration images (the default calibration: 256)")
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per row")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(a.one[0], a.images, a.one[1])))
        return
    rows, base = [], {}
    for name in a.models:
        for dtype in a.dtypes:
            try:
                proc = subprocess.run([sys.executable, __file__, "--one", name, dtype, "--images", str(a.images)],
                                      capture_output=True, text=True, timeout=a.timeout)
                lines = proc.stdout.strip().splitlines()
                if proc.returncode != 0 or not lines:
                    raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
                r = json.loads(lines[-1])
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                rows.append([name, dtype, a.images, "-", "-", f"failed: {e}", "-", "-", "-", "-"])
                continue
            per_image = r["peak_mb"] / r["chunk"]
            if dtype == "float64":
                base[name] = per_image
            ratio = f"{per_image / base[name]:.2f}" if name in base else "-"
            rows.append([f"{name} {'x'.join(map(str, r['input']))}", dtype, r["images"], r["chunk"],
                         f"{r['estimate_mb']:,.0f}", f"{r['peak_mb']:,.0f}", f"{per_image:.1f}", ratio,
                         f"{r['seconds']:.0f}", f"{r['rss_mb']:,.0f}"])
            print(json.dumps(r), file=sys.stderr, flush=True)
    print("calibration on uniform noise images (the default without a data set), memory budget "
          "XBARC_MEMORY_BUDGET (default 2 GiB); shared machine: seconds are noisy")
    print(table(rows, ["model", "dtype", "images", "per chunk", "planned MB", "peak MB (tracemalloc)",
                       "MB per image", "vs float64", "seconds", "RSS MB"]))


if __name__ == "__main__":
    main()
