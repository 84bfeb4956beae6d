"""A large compiled model on disk: VGG-16 at 224x224 compiled, saved and loaded, with the time, the peak memory
of each step and the size of its output directory (issue 18: the whole-layer hollows OOM'd saving VGG-16's fc1,
image.npz held int64 weights uncompressed).

Usage: ulimit -v 8000000; python benchmarks/save_load_scale.py [--resolution 224] [--precision 8bit]
                                                               [--out /tmp/vgg16-out]

VGG-16 is `models.cnn_zoo.vgg16` (random weights, torchvision topology) on the ISAAC preset grown to hold every
weight at once (its fc1 alone needs 544 ISAAC tiles at 8 bits, so it cannot run in rounds of 168), tile memories
grown to ``--tile-mem-words``, calibrated on 2 uniform [0, 1) images. Then ``CompiledModel.save`` (program, image.npz, mapping report), ``load_compiled`` and one
`runtime.Machine` per round (what ``xbarc run`` builds). Wall-clock seconds on a shared, loaded machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _table import table  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Compile, save, load and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--precision", default="8bit")
    ap.add_argument("--tile-mem-words", type=int, default=1 << 22)
    ap.add_argument("--out", default="/tmp/xbarc-vgg16-out")
    a = ap.parse_args()
    from compiler import compile_model
    from compiler.driver import load_compiled
    from compiler.mapping.rounds import VIRTUAL_TILES
    from isa.hardware import ISAAC
    from models import cnn_zoo
    from runtime import Machine

    rows = []
    model = cnn_zoo.vgg16(resolution=a.resolution)
    calib = {model.graph.input[0].name: np.random.default_rng(0).uniform(0, 1, (2, 3, a.resolution, a.resolution))}
    t0 = time.perf_counter()
    hw = ISAAC.with_changes(tiles=VIRTUAL_TILES, tile_mem_words=a.tile_mem_words, name="isaac-grown")
    cm = compile_model(model, a.precision, hw=hw, calib=calib)
    rows.append(["compile", f"{time.perf_counter() - t0:.1f}", f"{_peak_mb():,.0f}",
                 f"{len(cm.rounds) or 1} round(s)"])
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    cm.save(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    rows.append(["save", f"{time.perf_counter() - t0:.1f}", f"{_peak_mb():,.0f}", f"{size / 2**20:,.0f} MB on disk"])
    del cm
    t0 = time.perf_counter()
    back = load_compiled(out)
    rows.append(["load", f"{time.perf_counter() - t0:.1f}", f"{_peak_mb():,.0f}", ""])
    t0 = time.perf_counter()
    machines = [Machine(p) for p in (back.rounds or [back.program])]
    mvmus = sum(len(p.mvmus) for p in (back.rounds or [back.program]))
    rows.append(["Machine()", f"{time.perf_counter() - t0:.1f}", f"{_peak_mb():,.0f}",
                 f"{len(machines)} machine(s), {mvmus:,} MVMU images"])
    print(table(rows, ["step", "seconds", "peak RSS MB (so far)", "notes"]))


if __name__ == "__main__":
    main()
