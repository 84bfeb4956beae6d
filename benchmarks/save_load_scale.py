"""A large compiled model on disk: VGG-16 at 224x224 compiled, saved and loaded, with the time, the peak memory
of each step and the size of its output directory (issue 18: the whole-layer hollows OOM'd saving VGG-16's fc1,
image.npz held int64 weights uncompressed).

Usage: ulimit -v 8000000; python benchmarks/save_load_scale.py [--resolution 224] [--precision 8bit]
                                                               [--out /tmp/vgg16-out] [--fc1-only]

``--synthetic`` skips the compiler: a program holding VGG-16's 138 M 8-bit weights as 8,448 random 128 x 128 MVMU
images (every core halts at once) is saved, loaded and given a `Machine`, which isolates the storage and the
runtime's load from the compiler's own memory. ``--fc1-only`` compiles VGG-16's fc1 alone (a 25,088 x 4,096 Gemm with random weights): the layer whose whole-layer
hollows needed > 24 GB, without the convolutions' calibration and activations.

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


def fc1() -> object:
    """VGG-16's first fully connected layer as a one-Gemm model (He-initialized random weights), with ReLU."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((25088, 4096)) * np.sqrt(2 / 25088)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "vgg16_fc1", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 25088])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def synthetic(out: Path, images: int = 8448) -> None:
    """Save, load and load into a `Machine` a program of ``images`` random 8-bit 128 x 128 MVMU images."""
    from isa import DEFAULT, CoreCode, Instr, MvmuImage, Program
    from isa.files import load_program, save_program
    from runtime import Machine

    per_core = 4
    cores = -(-images // per_core)
    hw = DEFAULT.with_changes(tiles=-(-cores // DEFAULT.cores_per_tile), name="default-grown")
    rng = np.random.default_rng(0)
    mvmus = [MvmuImage(k // per_core // hw.cores_per_tile, k // per_core % hw.cores_per_tile, k % per_core,
                       rng.integers(-127, 128, (128, 128)).astype(np.int8), 8, f"block{k}") for k in range(images)]
    code = [CoreCode(t, c, [Instr.of("halt", ())]) for t, c in sorted({(m.tile, m.core) for m in mvmus})]
    prog = Program(hw, code, mvmus, [], [], [])
    rows = []
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    save_program(prog, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    rows.append(["save", f"{time.perf_counter() - t0:.1f}", f"{_peak_mb():,.0f}", f"{size / 2**20:,.0f} MB on disk "
                 f"({images * 128 * 128 / 2**20:,.0f} MB of int8 weights)"])
    del prog, mvmus
    t0 = time.perf_counter()
    back = load_program(out)
    rows.append(["load", f"{time.perf_counter() - t0:.1f}", f"{_peak_mb():,.0f}", ""])
    t0 = time.perf_counter()
    Machine(back)
    rows.append(["Machine()", f"{time.perf_counter() - t0:.1f}", f"{_peak_mb():,.0f}", f"{images:,} MVMU images"])
    print(table(rows, ["step", "seconds", "peak RSS MB (so far)", "notes"]))


def main() -> None:
    """Compile, save, load and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--precision", default="8bit")
    ap.add_argument("--tile-mem-words", type=int, default=1 << 24)
    ap.add_argument("--out", default="/tmp/xbarc-vgg16-out")
    ap.add_argument("--fc1-only", action="store_true", help="VGG-16's fc1 alone")
    ap.add_argument("--synthetic", action="store_true", help="VGG-16-sized random MVMU images, no compiler")
    a = ap.parse_args()
    if a.synthetic:
        synthetic(Path(a.out))
        return
    from compiler import compile_model
    from compiler.driver import load_compiled
    from compiler.mapping.rounds import VIRTUAL_TILES
    from isa.hardware import ISAAC
    from models import cnn_zoo
    from runtime import Machine

    rows = []
    model = fc1() if a.fc1_only else cnn_zoo.vgg16(resolution=a.resolution)
    shape = (25088,) if a.fc1_only else (3, a.resolution, a.resolution)
    calib = {model.graph.input[0].name: np.random.default_rng(0).uniform(0, 1, (2,) + shape)}
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
