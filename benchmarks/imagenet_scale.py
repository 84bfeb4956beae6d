"""ImageNet-size CNNs (224x224) on the published-chip presets: do they compile, and how do they run?

Usage: python benchmarks/imagenet_scale.py [--models resnet18 resnet50] [--presets default puma isaac puma-chip]
                                          [--resolution 224] [--no-run] [--speed] [--line-buffers]
                                          [--variants '' +mem +lb] [--timeout 1800]

``run s`` is the runtime's fast mode (`runtime.loops`) on a fresh `Machine` (its build included); ``--speed``
also times, in the same subprocess, the `Machine` build, the replay of a recorded schedule on this image
(`runtime.replay`: the machine ran another image first; ``--batch N`` also N images per run, one process), the
reference interpreter and the functional model, and checks that every runtime mode's outputs and counters agree.

Per (model, preset), in its own subprocess (``ulimit -v`` applies to it: prefix the command with
``ulimit -v 8000000;``), calibrating on 2 random images and running one:

1. the preset as published (`isa.hardware.PRESETS`): compile, or the first error that stops it;
2. the same preset with only ``tile_mem_words`` grown to what the largest tile needs ("+mem"), the only change,
   so the crossbars, cores, tiles, registers and cost table are the chip's: compile, run one image, check it bit
   for bit against the functional model. Its "tile mem" column is that need (the words one tile holds with
   every tensor whole); on the preset rows it is the need with line buffers (docs/design-notes.md, "Activations
   larger than a tile");
3. with ``--line-buffers``, also the preset grown only to that line-buffered need ("+lb"): the same model compiled
   with line buffers wherever whole tensors overflow, run and checked the same way;
4. "+fit": placed so that each tile's holdings fit the preset's tile memory where spreading ops over more tiles
   can (`compiler.mapping.fit`), then grown only to what that placement still needs (the busiest tile then
   holds one op), run and checked the same way. The preset row (1.) is placed the same way; its "tile mem" is
   this need.

After the table, the busiest tile of each row: its ops and its holdings, words each (`compiler.codegen.memory`).

ResNet-18 is `models.cnn_zoo.resnet18` (torchvision topology, He-initialized weights, BN folded), ResNet-50 the
onnx zoo's ``light_resnet50.onnx`` with He-initialized random weights (`real_models.randomized`; its own constant
weights make activations overflow any fixed-point format). Precision: ``16bit`` on ``puma-chip``; ``8bit`` on
``isaac``, whose cores hold 8 crossbars while a 16-bit (+)/(-) block needs 16 (docs/cost-model.md, "Chip presets").
Timings are wall-clock seconds of one process on a shared, loaded machine (compare rows of one run only).
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

MODELS = ("resnet18", "resnet50")
PRESETS = ("isaac", "puma-chip")
PRECISION = {"default": "16bit", "puma": "16bit", "isaac": "8bit", "puma-chip": "16bit"}
GROWN = 1 << 24  # tile_mem_words of the "+mem" variant
VARIANTS = {"0": "", "1": "+mem", "2": "+lb", "3": "+fit"}  # the preset; grown to whole tensors, to line buffers,
# to what the placement bounded by the preset's tile memory still needs


def load(name: str, resolution: int) -> Any:
    """The ONNX model ``name`` at ``resolution`` (the light ResNet-50 exists at 224 only; other resolutions use
    `models.cnn_zoo.resnet50`)."""
    from models.cnn_zoo import resnet18, resnet50

    if name == "resnet18":
        return resnet18(resolution=resolution)
    if resolution != 224:
        return resnet50(resolution=resolution)
    import onnx

    from real_models import light_dir, randomized

    return randomized(onnx.load(str(light_dir() / "light_resnet50.onnx")))


def tile_memory_needed(cm: Any, hw: Any = None) -> tuple[int, int, str]:
    """(largest words any tile needs, tiles holding data, what the busiest tile holds) of a compiled model's plan
    redone on ``hw`` (default: its own): with line buffers for what can have them when whole tensors overflow
    ``hw``'s tiles (`compiler.codegen.memory`)."""
    from compiler.codegen.memory import describe, plan_memory

    mem = plan_memory(cm.graph, cm.precision, cm.mapping, hw or cm.hw, cm.formats)
    busiest = max(mem.top, key=lambda t: mem.top[t])
    ops = ", ".join(mem.placed.get(busiest, []))
    return mem.top[busiest], len(mem.top), f"tile {busiest} ({ops}): {describe(mem, busiest, 6)}"


def measure(name: str, preset: str, grown: str, run: bool, resolution: int = 224,
            speed: bool = False, batch: int = 0) -> dict[str, Any]:
    """Compile (and run) one model on one preset; the figures or the first error."""
    import numpy as np

    from compiler import runner
    from compiler.driver import compile_model
    from isa.hardware import PRESETS as HW

    hw = HW[preset]
    model = load(name, resolution)
    inp = model.graph.input[0].name
    x = np.random.default_rng(0).random((3, 3, resolution, resolution)).astype(np.float32)
    r: dict[str, Any] = {"model": name, "preset": preset + VARIANTS[grown], "precision": PRECISION[preset]}
    fit = hw.tile_mem_words if grown in ("0", "3") else None  # the placement bounds tiles by the preset's memory
    try:
        if grown != "0":  # first with 2^24 words to learn the need, then with exactly the need (the runtime's memory)
            cm = compile_model(model, PRECISION[preset], hw=hw.with_changes(tile_mem_words=GROWN),
                               calib={inp: x[:2]}, calib_images=2, fit_words=fit)
            need = tile_memory_needed(cm)[0] if grown == "1" else tile_memory_needed(cm, hw)[0]
            hw = hw.with_changes(tile_mem_words=max(need, hw.tile_mem_words))
        t0 = time.perf_counter()
        cm = compile_model(model, PRECISION[preset], hw=hw, calib={inp: x[:2]}, calib_images=2, fit_words=fit)
        r["compile_s"] = time.perf_counter() - t0
        rep = cm.mapping.report(cm.precision) if cm.mapping is not None else {}
        r.update(tiles=rep.get("tiles"), crossbars=rep.get("crossbars"))
        r["mem_words"], _, r["busiest"] = tile_memory_needed(cm)
        if run:
            t1 = time.perf_counter()
            out = runner.run(cm, {inp: x[2:]})
            r["run_s"] = time.perf_counter() - t1
            r.update(energy_uj=out.stats.energy_pj / 1e6, cycles=out.stats.cycles,
                     bit_exact=runner.bit_exact(cm, {inp: x[2:]}, out))
            if speed:  # the same image on the reference interpreter and the functional model (issue 18)
                _replay_times(r, cm, inp, x, out, batch)
                t1 = time.perf_counter()
                ref = runner.run(cm, {inp: x[2:]}, reference=True)
                r["reference_s"] = time.perf_counter() - t1
                r["same_counters"] = ref.stats.to_dict() == out.stats.to_dict()
                t1 = time.perf_counter()
                runner.functional_outputs(cm, {inp: x[2:]})
                r["functional_s"] = time.perf_counter() - t1
    except Exception as e:  # noqa: BLE001 - the benchmark reports whatever stops a model
        r["error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        if grown == "0":  # what a tile needs with line buffers, placed for the preset's tile memory
            big = compile_model(model, PRECISION[preset], hw=hw.with_changes(tile_mem_words=GROWN),
                                calib={inp: x[:2]}, calib_images=2, fit_words=fit)
            r["mem_words"], _, r["busiest"] = tile_memory_needed(big, hw)
    r["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return r


def _replay_times(r: dict[str, Any], cm: Any, inp: str, x: Any, out: Any, batch: int) -> None:
    """Into ``r``: a one-run machine's build and run (``once=True``, no trace), the `Machine` build, a recording run on another image and the replay of image ``x[2:]``
    (CPU seconds of this process), whether the replay equals ``out`` (`runner.run`'s fresh fast run) integer for integer
    and counter for counter; with ``batch``, the record and replay of ``batch`` other images per image."""
    import numpy as np

    from compiler import runner
    from runtime import Machine

    other = runner.quantize_inputs(cm, {inp: x[:1]})
    t0 = time.process_time()  # a machine for one run (`runner.run`): it records no trace it would not replay
    Machine(cm.program, once=True).run(other)
    r["once_s"] = time.process_time() - t0
    t0 = time.process_time()
    m = Machine(cm.program)
    r["machine_s"] = time.process_time() - t0
    t0 = time.process_time()
    m.run(other)
    r["record_s"] = time.process_time() - t0
    q = runner.quantize_inputs(cm, {inp: x[2:]})
    t0 = time.process_time()
    rep = m.run(q)
    r["replay_s"] = time.process_time() - t0
    r["replay_same"] = bool(m.replayed and rep.stats.to_dict() == out.stats.to_dict() and set(rep.outputs) ==
                            set(out.device_int) and all(np.array_equal(v.reshape(-1), out.device_int[k].reshape(-1))
                                                        for k, v in rep.outputs.items()))
    if batch:
        xs = np.random.default_rng(1).random((2 * batch,) + x.shape[1:]).astype(np.float32)
        first, second = (runner.quantize_inputs(cm, {inp: xs[i * batch:(i + 1) * batch]}) for i in (0, 1))
        t0 = time.process_time()
        m.run(first)
        r["batch_record_s"] = (time.process_time() - t0) / batch
        t0 = time.process_time()
        m.run(second)
        r["batch_replay_s"] = (time.process_time() - t0) / batch
        r["batch"] = batch


def _row(r: dict[str, Any]) -> list[object]:
    def f(key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r else "-"

    exact = {True: "yes", False: "NO"}.get(r.get("bit_exact"), "-")  # type: ignore[call-overload]
    err = r.get("error", "")
    same = {True: "yes", False: "NO"}.get(r.get("same_counters"), "-")  # type: ignore[call-overload]
    return [r["model"], r["preset"], r["precision"], f("tiles", ","), f("crossbars", ","), f("mem_words", ","),
            f("compile_s", ".1f"), f("run_s", ".1f"), f("once_s", ".2f"), f("machine_s", ".2f"), f("record_s", ".2f"),
            f("replay_s", ".2f"), {True: "yes", False: "NO"}.get(r.get("replay_same"), "-"),  # type: ignore[call-overload]
            f("batch_record_s", ".2f"), f("batch_replay_s", ".2f"), f("reference_s", ".1f"), f("functional_s", ".1f"),
            same,
            f("energy_uj", ",.1f"), f("cycles", ","), exact, f"{r['peak_mb']:,.0f}",
            err[:150] + ("..." if len(err) > 150 else "")]


HEADER = ["model", "preset", "precision", "tiles", "crossbars", "tile mem", "compile s", "run s", "once cpu s",
          "Machine() cpu s",
          "record cpu s", "replay cpu s", "replay = run", "batch record cpu s/img", "batch replay cpu s/img",
          "reference run s", "functional s", "counters equal", "energy uJ", "cycles", "bit-exact", "peak MB",
          "stopped by"]


def main() -> None:
    """Measure every (model, preset, variant) in a subprocess and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRECISION))
    ap.add_argument("--no-run", action="store_true", help="compile only")
    ap.add_argument("--speed", action="store_true",
                    help="also time the image on the reference interpreter and the functional model")
    ap.add_argument("--batch", type=int, default=0, help="with --speed: also record and replay N images per run")
    ap.add_argument("--resolution", type=int, default=224, help="input height and width (a multiple of 32)")
    ap.add_argument("--line-buffers", action="store_true",
                    help="also the preset grown only to the line-buffered need (+lb)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS.values()), default=None,
                    help="only these variants ('' the preset, +mem, +lb)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per subprocess")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        name, preset, grown = a.one
        print(json.dumps(measure(name, preset, grown, not a.no_run, a.resolution, a.speed, a.batch)))
        return
    rows, results = [], []
    variants = [k for k, v in VARIANTS.items() if (v in a.variants if a.variants is not None else
                                                   k != "2" or a.line_buffers)]
    for name in a.models:
        for preset in a.presets:
            for grown in variants:
                cmd = [sys.executable, __file__, "--one", name, preset, grown, "--resolution", str(a.resolution)] + \
                    (["--no-run"] if a.no_run else []) + (["--speed"] if a.speed else []) + ["--batch", str(a.batch)]
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
                    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
                    r = json.loads(line) if line.startswith("{") else {
                        "error": f"subprocess exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}"}
                except subprocess.TimeoutExpired:
                    r = {"error": f"timeout after {a.timeout:.0f} s"}
                r = {"model": name, "preset": preset + VARIANTS[grown],
                     "precision": PRECISION[preset], "peak_mb": 0.0} | r
                rows.append(_row(r))
                results.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    print(table(rows, HEADER))
    print("\nThe busiest tile of each row (its ops; what it holds, words each):")
    for r in results:
        if "busiest" in r:
            print(f"- {r['model']} {r['preset']}: {r['busiest']}")


if __name__ == "__main__":
    main()
