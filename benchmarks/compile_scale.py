"""Compile-time scale: ResNet-18, ResNet-50 and VGG-16 at 224x224 with random weights generated in code.

Usage: python benchmarks/compile_scale.py [--models resnet18 resnet50 vgg16] [--resolution 224]
Each model is built and compiled in its own subprocess so its peak memory (max RSS) is its own. The chip grows
to fit: the hardware is the default with as many tiles as the mapping needs and tile memory large enough for
the biggest activation (printed), since a 224x224x64 activation alone exceeds a 64K-word tile memory.
Goals (2-core machine): ResNet-50 under 60 s and 4 GB; VGG-16 under 120 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import table  # noqa: E402

HW = {"tiles": 4096, "tile_mem_words": 1 << 24}


def measure(name: str, resolution: int) -> dict[str, object]:
    """Build and compile one zoo model in this process; return the figures."""
    import numpy as np

    from compiler import compile_model
    from isa.hardware import DEFAULT
    from models import cnn_zoo

    t0 = time.perf_counter()
    model = getattr(cnn_zoo, name)(resolution=resolution)
    build_s = time.perf_counter() - t0
    calib = {model.graph.input[0].name: np.random.default_rng(0).uniform(0, 1, (1, 3, resolution, resolution))}
    t0 = time.perf_counter()
    cm = compile_model(model, "16bit", hw=DEFAULT.with_changes(**HW), calib=calib)
    compile_s = time.perf_counter() - t0
    rep = cm.mapping.report(cm.precision)
    return {"model": name, "build_s": build_s, "compile_s": compile_s,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "crossbars": rep["crossbars"],
            "mvmus": rep["mvmus"], "tiles": rep["tiles"], "cores": rep["cores"],
            "static": cm.program.static_instructions, "layers": len(cm.precision)}


def main() -> None:
    """Run every model in a subprocess and print the table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "vgg16"])
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(a.one, a.resolution)))
        return
    rows = []
    for name in a.models:
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--resolution", str(a.resolution)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append([r["model"], r["layers"], f"{r['build_s']:.1f}", f"{r['compile_s']:.1f}", f"{r['peak_mb']:,.0f}",
                     f"{r['crossbars']:,}", f"{r['mvmus']:,}", r["cores"], r["tiles"], f"{r['static']:,}"])
    print(f"hardware: default preset with {HW}")
    print(table(rows, ["model", "crossbar layers", "build s", "compile s", "peak MB", "crossbars", "MVMUs", "cores",
                       "tiles", "static instructions"]))


if __name__ == "__main__":
    main()
