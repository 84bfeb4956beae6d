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
from typing import Callable

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


class Phases:
    """CPU and wall seconds of named phases: functions wrapped in the modules that call them (exclusive time: a
    phase nested in another is subtracted from it), so the compiler itself is unchanged."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.order: list[str] = []
        self._stack: list[list[float]] = []

    def wrap(self, module: object, name: str, label: str) -> None:
        """Time every call of ``module.name`` as phase ``label``."""
        fn = getattr(module, name)

        def timed(*args: object, **kwargs: object) -> object:
            if label not in self.cpu:
                self.cpu[label] = self.wall[label] = 0.0
                self.order.append(label)
            self._stack.append([0.0, 0.0])
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dc, dw = time.process_time() - c0, time.perf_counter() - w0
                inner = self._stack.pop()
                self.cpu[label] += dc - inner[0]
                self.wall[label] += dw - inner[1]
                if self._stack:
                    self._stack[-1][0] += dc
                    self._stack[-1][1] += dw

        setattr(module, name, timed)

    def rows(self, step: str, cpu: float, wall: float) -> list[list[str]]:
        """Table rows of the phases recorded since the last call, then the rest of ``step``."""
        out = [[f"  {k}", f"{self.cpu[k]:.1f}", f"{self.wall[k]:.1f}"] for k in self.order]
        rest_c, rest_w = cpu - sum(self.cpu.values()), wall - sum(self.wall.values())
        out.append([f"  (rest of {step})", f"{rest_c:.1f}", f"{rest_w:.1f}"])
        self.cpu, self.wall, self.order = {}, {}, []
        return out


def instrument(ph: Phases) -> None:
    """Wrap the phases of compile, save, load and Machine() (see the module docstring)."""
    import compiler.driver as drv
    import isa.files as files
    import runtime.machine as machine

    for name, label in [("import_graph", "frontend (ONNX -> IR)"), ("check_reference", "onnxruntime check"),
                        ("calibration_inputs", "calibration"), ("calibrate", "calibration"),
                        ("resolve_precision", "precision"), ("assign_formats", "precision"),
                        ("quantized", "quantize weights"), ("place_layers", "mapping"), ("generate", "codegen"),
                        ("quantization_warnings", "health checks"), ("fidelity_warning", "health: fidelity"),
                        ("load_program", "load: program files")]:
        ph.wrap(drv, name, label)
    for name, label in [("format_program", "assembly text"), ("encode_program", "binary encoding"),
                        ("image_bytes", "image.npz"), ("write_checksums", "checksums"),
                        ("verify_checksums", "verify checksums"), ("_read_arrays", "read image.npz"),
                        ("_load_code", "decode program")]:
        ph.wrap(files, name, label)
    ph.wrap(drv.CompiledModel, "mapping_report", "mapping report")
    ph.wrap(machine, "prepare_kernels", "prepare MVMU kernels")
    ph.wrap(machine.Machine, "_compile", "decode, costs, loops")


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def main() -> None:
    """Compile, save, load and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--precision", default="8bit")
    ap.add_argument("--tile-mem-words", type=int, default=1 << 24)
    ap.add_argument("--out", default="/tmp/xbarc-vgg16-out")
    ap.add_argument("--fc1-only", action="store_true", help="VGG-16's fc1 alone")
    ap.add_argument("--synthetic", action="store_true", help="VGG-16-sized random MVMU images, no compiler")
    ap.add_argument("--before", action="store_true", help="also time the previous load paths in the same run")
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

    ph = Phases()
    instrument(ph)
    rows: list[list[str]] = []
    model = fc1() if a.fc1_only else cnn_zoo.vgg16(resolution=a.resolution)
    shape = (25088,) if a.fc1_only else (3, a.resolution, a.resolution)
    calib = {model.graph.input[0].name: np.random.default_rng(0).uniform(0, 1, (2,) + shape)}
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    src = out.parent / (out.name + "-model.onnx")
    src.write_bytes(model.SerializeToString())  # compiled from a file, as `xbarc compile model.onnx` does
    del model
    total_c, total_w = _clock()
    hw = ISAAC.with_changes(tiles=VIRTUAL_TILES, tile_mem_words=a.tile_mem_words, name="isaac-grown")
    steps: list[tuple[str, str]] = []

    def step(name: str, note: str, fn: Callable[[], object]) -> object:
        c0, w0 = _clock()
        result = fn()
        c1, w1 = _clock()
        rows.append([name, f"{c1 - c0:.1f}", f"{w1 - w0:.1f}", f"{_peak_mb():,.0f}", ""])
        rows.extend(r + ["", ""] for r in ph.rows(name, c1 - c0, w1 - w0))
        steps.append((name, note))
        return result

    held = {"cm": step("compile", "", lambda: compile_model(src, a.precision, hw=hw, calib=calib))}
    step("save", "", lambda: held["cm"].save(out))  # type: ignore[attr-defined]
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    held.clear()
    back = step("load", "", lambda: load_compiled(out))
    progs = back.rounds or [back.program]  # type: ignore[attr-defined]
    step("Machine()", "", lambda: [Machine(p) for p in progs])
    total_c, total_w = time.process_time() - total_c, time.perf_counter() - total_w
    rows.append(["total", f"{total_c:.1f}", f"{total_w:.1f}", f"{_peak_mb():,.0f}", ""])
    print(table(rows, ["step / phase", "CPU s", "wall s", "peak RSS MB", ""]))
    mvmus = sum(len(p.mvmus) for p in progs)
    print(f"\noutput directory {size / 2**20:,.0f} MB: " + ", ".join(
        f"{p.name} {p.stat().st_size / 2**20:,.1f}" for p in sorted(out.iterdir(), key=lambda p: -p.stat().st_size)
        if p.is_file()) + f"; {mvmus:,} MVMU images")
    if a.before:
        before(out, progs[0])


def before(out: Path, program: object) -> None:
    """The previous load paths on the same directory: program.s parsed by the assembler, one kernel per image."""
    from isa.assembler import assemble
    from runtime.state import MvmuKernel

    rows = []
    c0, w0 = _clock()
    assemble((out / "program.s").read_text(), str(out / "program.s"), program.hw)  # type: ignore[attr-defined]
    c1, w1 = _clock()
    rows.append(["program.s parsed (before)", f"{c1 - c0:.1f}", f"{w1 - w0:.1f}"])
    for img in program.mvmus:  # type: ignore[attr-defined]
        MvmuKernel.from_image(img, program.hw)  # type: ignore[attr-defined]
    c2, w2 = _clock()
    rows.append(["MvmuKernel.from_image per image (before)", f"{c2 - c1:.1f}", f"{w2 - w1:.1f}"])
    print()
    print(table(rows, ["previous path", "CPU s", "wall s"]))


if __name__ == "__main__":
    main()
