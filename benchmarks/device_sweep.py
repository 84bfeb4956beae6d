"""LeNet-MNIST accuracy against programming variation on non-ideal devices (runtime/devices.py, docs/devices.md).

Usage: python benchmarks/device_sweep.py [--images 500] [--trials 10] [--sigmas 0 0.025 0.05 0.1 0.15 0.2]
Compiles models/lenet5_mnist.onnx at two precision configs (8-bit and 4-bit weights and inputs, spatial
mapping) and runs the first N images of the mnist test split on the reference runtime: once exactly (the
reference), then ``--trials`` seeded trials per variation level, with programming variation relative to each
cell's target conductance (sigma x G) and absolute (sigma x G_on). Prints accuracy mean, standard deviation and
range over the trials, and agreement with the exact run, beside the named presets and the literature figures
that exist for a comparable experiment (docs/devices.md says which and how they differ).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import table  # noqa: E402

from compiler import compile_model, runner  # noqa: E402
from models.datasets import load_for_shape  # noqa: E402
from runtime.devices import PRESETS, DeviceModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "models" / "lenet5_mnist.onnx"
CONFIGS = {"8-bit": "8bit", "4-bit": "4bit"}

#: Published figures for a comparable sweep (none is LeNet-MNIST against Gaussian programming variation on a
#: bit-sliced crossbar; each is quoted as its paper gives it, see docs/devices.md).
LITERATURE = [
    ("Mehonic et al., Front. Neurosci. 13:593 (2019), SiOx RRAM, MNIST MLP", "ideal weights 97.3 %; measured "
     "devices with HRS/LRS ratio > 3: ~96.8 %"),
    ("Wan et al., Nature 608 (2022), NeuRRAM chip (the reram-wan2022 preset's data), MNIST CNN",
     "99.0 % measured on chip"),
]


def sweep(cm, feeds, labels, exact, mode: str, sigmas: list[float], trials: int) -> list[list[str]]:
    """One row per variation level: accuracy mean +- std, range, agreement with the exact run."""
    rows = []
    for s in sigmas:
        d = runner.device_trials(cm, feeds, exact, DeviceModel(prog_sigma=s, prog_mode=mode), trials, labels)
        rows.append([f"{100 * s:g} %", f"{d['accuracy_mean']:.4f} +- {d['accuracy_std']:.4f}",
                     f"[{d['accuracy_min']:.3f}, {d['accuracy_max']:.3f}]",
                     f"{d['agreement_with_exact_mean']:.4f}", f"{d['output_relative_rms_change']:.1%}"])
    return rows


def main() -> None:
    """Run the sweep and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.025, 0.05, 0.1, 0.15, 0.2])
    a = ap.parse_args()
    header = ["variation", "accuracy (mean +- std)", "range", "agreement w/ exact", "output RMS change"]
    t0 = time.perf_counter()
    for label, cfg in CONFIGS.items():
        cm = compile_model(LENET, cfg, data=load_for_shape)
        x, y = load_for_shape("mnist", "test", tuple(cm.program.inputs[0].shape))
        x, y = x[:a.images], y[:a.images]
        feeds = {cm.program.inputs[0].name: x}
        exact = runner.run(cm, feeds)
        name = cm.program.outputs[0].name
        acc = float((exact.device_float[name].reshape(len(x), -1).argmax(axis=1) == y).mean())
        print(f"\nLeNet-MNIST, {label} weights and inputs (spatial mapping), {a.images} test images, "
              f"{a.trials} trials per row; exact (bit-exact reference) accuracy {acc:.4f}")
        for mode in ("relative", "absolute"):
            print(f"programming variation {mode} ({'sigma x G_target' if mode == 'relative' else 'sigma x G_on'})")
            print(table(sweep(cm, feeds, y, exact, mode, a.sigmas, a.trials), header))
        rows = []
        for p in PRESETS.values():
            if p.name == "ideal":
                continue
            d = runner.device_trials(cm, feeds, exact, p, a.trials, y)
            rows.append([p.name, f"{d['accuracy_mean']:.4f} +- {d['accuracy_std']:.4f}",
                         f"[{d['accuracy_min']:.3f}, {d['accuracy_max']:.3f}]",
                         f"{d['agreement_with_exact_mean']:.4f}", f"{d['output_relative_rms_change']:.1%}"])
        print("named presets")
        print(table(rows, ["preset"] + header[1:]))
    print("\nliterature (not the same experiment; docs/devices.md):")
    print(table([list(r) for r in LITERATURE], ["source", "figure"]))
    print(f"\n{time.perf_counter() - t0:.0f} s (machine shared by other sessions)")


if __name__ == "__main__":
    main()
