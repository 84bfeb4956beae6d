"""Runtime speed on the digits test split: onnxruntime float vs the functional model vs the reference runtime.

Usage: python benchmarks/runtime_speed.py [--precision 16bit] [--repeat 3]
Prints images/s of each and the ratios (goal: runtime within 3x of the functional model), and compile time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import best_time, table  # noqa: E402

from compiler import compile_model, runner  # noqa: E402
from models.datasets import load_for_shape, load_dataset  # noqa: E402
from runtime import Machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"mlp_digits": (ROOT / "models" / "mlp_digits.onnx", "digits"),
          "lenet5_digits": (ROOT / "models" / "lenet5_digits.onnx", "digits32"),
          "resnet_digits": (ROOT / "models" / "resnet_digits.onnx", "digits_image")}


def measure(name: str, path: Path, dataset: str, precision: str, repeat: int) -> list[object]:
    """One row: compile time and images/s of onnxruntime, functional model and runtime."""
    import onnxruntime as ort

    x, _ = load_dataset(dataset, "test")
    t0 = time.perf_counter()
    preset, _, adc = precision.partition("-adc")
    cfg = {"preset": preset, "default": {"adc_bits": int(adc)}} if adc else preset
    cm = compile_model(path, cfg, data=load_for_shape)
    compile_s = time.perf_counter() - t0
    feeds = {cm.program.inputs[0].name: x}
    q = runner.quantize_inputs(cm, feeds)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    t_ort = best_time(lambda: sess.run(None, {sess.get_inputs()[0].name: x}), repeat)
    t_fun = best_time(lambda: runner.functional_outputs(cm, feeds), repeat)
    machine = Machine(cm.program)
    t_rt = best_time(lambda: machine.run(q), repeat)
    n = len(x)
    return [name, precision, n, f"{compile_s:.2f}", f"{n / t_ort:,.0f}", f"{n / t_fun:,.0f}", f"{n / t_rt:,.0f}",
            f"{t_rt / t_fun:.2f}x", f"{t_rt / t_ort:,.0f}x"]


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--precision", nargs="+", default=["16bit", "8bit", "8bit-adc5"],
                    help="presets; NAME-adcB sets every layer's ADC to B bits (conversions clip)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=None)
    args = ap.parse_args()
    ap_models = args.models or list(MODELS)
    rows = [measure(name, *MODELS[name], p, args.repeat) for name in ap_models for p in args.precision]
    print(table(rows, ["model", "precision", "images", "compile s", "onnxruntime img/s", "functional img/s",
                       "runtime img/s", "runtime/functional time", "runtime/onnxruntime time"]))
    np.set_printoptions()


if __name__ == "__main__":
    main()
