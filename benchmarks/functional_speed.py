"""Speed of the layer-level functional model (`run_functional`) on LeNet-5, per evaluation of the calibration
images, against the previous straightforward crossbar path (kept below as `reference_crossbar_layer`: input
digits computed on the im2col rows, every (digit, slice) conversion made and clipped).

Usage: python benchmarks/functional_speed.py [--images 256] [--repeat 3]
Prints the seconds per evaluation of both, the ratio and whether the outputs are identical. On a loaded machine
multi-threaded BLAS makes the timings erratic; OPENBLAS_NUM_THREADS=1 gives steadier numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _table import best_time, table  # noqa: E402

from compiler.quant import functional  # noqa: E402
from compiler.quant.calibrate import layer_inputs, out_hw  # noqa: E402
from compiler.quant.formats import assign_formats  # noqa: E402
from compiler.quant.precision import LayerPrecision, resolve_precision  # noqa: E402
from compiler.driver import calibration_inputs, import_graph  # noqa: E402
from compiler.quant.calibrate import calibrate  # noqa: E402
from isa import numerics as nx  # noqa: E402
from isa.hardware import HardwareConfig, load_hardware  # noqa: E402
from models.datasets import load_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    (f"in {enc} {bits}b, w 16b, adc 5", {"in_bits": bits, "in_enc": enc, "adc_bits": 5})
    for enc in ("twos", "csd") for bits in (4, 8, 16)] + [
    ("in twos 16b, full adc", {}),
    ("in csd 8b, w 8b sce, adc 6, skip 4", {"in_bits": 8, "in_enc": "csd", "w_bits": 8, "w_enc": "sce",
                                             "adc_bits": 6, "skip": 4})]


def reference_crossbar_layer(rows: np.ndarray, q: functional.QuantizedLayer, p: LayerPrecision,
                             hw: HardwareConfig) -> np.ndarray:
    """The previous crossbar path on im2col rows (N, K): per block, the integer product when nothing can clip
    or be skipped, else the digits of every row and every (digit, slice) conversion."""
    acc = None
    for r0 in range(0, q.weight.shape[0], hw.xbar_rows):
        w = q.weight[r0:r0 + hw.xbar_rows]
        x, r = rows[:, r0:r0 + hw.xbar_rows], w.shape[0]
        pos, neg = nx.weight_slices(w, p.w_bits, hw.cell_bits, p.w_enc)
        n_s, _, c = pos.shape
        reach = int(np.abs(pos - neg).sum(axis=1).max(initial=0))
        fits = p.adc_bits >= functional.worst_case_adc_bits(r, hw.cell_bits) or reach <= nx.qmax(p.adc_bits)
        if fits and p.skip < 0 and float(1 << (p.in_bits - 1)) * float(1 << (p.w_bits - 1)) * r < 2.0**53:
            part = np.rint(x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
        else:
            diff = (pos - neg).astype(np.float32).transpose(1, 0, 2).reshape(r, n_s * c)
            digits, sig = nx.input_digits(x, p.in_bits, p.in_enc)
            v = digits.astype(np.float32).reshape(-1, r) @ diff
            np.clip(v, nx.qmin(p.adc_bits), nx.qmax(p.adc_bits), out=v)
            v = v.reshape(p.in_bits, len(x), n_s, c).transpose(0, 1, 3, 2)
            v = v * (~nx.skipped(p.in_bits, n_s, hw.cell_bits, p.skip))[:, None, None, :].astype(np.float32)
            slice_w = np.array([1 << (hw.cell_bits * i) for i in range(n_s)], dtype=np.float64)
            part = np.tensordot(sig, (v.astype(np.float64) @ slice_w).astype(np.int64), axes=1)
        out = nx.requantize(part, p.mvm_shift, p.acc_bits)
        acc = out if acc is None else nx.saturate(acc + out, p.acc_bits)
    assert acc is not None
    return acc if q.bias is None else nx.saturate(acc + q.bias, p.acc_bits)


def _reference_layer(g: Any, op: Any, xs: list[np.ndarray], prec: dict[str, LayerPrecision], fmt: Any,
                     hw: HardwareConfig) -> tuple[np.ndarray, int]:
    if not op.is_crossbar:
        return NEW_LAYER(g, op, xs, prec, fmt, hw)
    p, x = prec[op.name], xs[0]
    y = reference_crossbar_layer(layer_inputs(g, op, x), functional.quantize_layer(op, p), p, hw)
    shape = (len(x),) + ((out_hw(g, op) + (-1,)) if op.kind == "conv" else (-1,))
    return functional.activate(y.reshape(shape), op.attrs, p.acc_frac), p.acc_frac


NEW_LAYER = functional._layer


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    hw = load_hardware(None)
    g, _, proto = import_graph(ROOT / "models" / "lenet5_digits.onnx")
    ranges = calibrate(g, calibration_inputs(g, proto, "digits32")[0], hw.xbar_rows)
    inp = g.inputs[0]
    x = load_dataset("digits32", "calib")[0][:args.images].reshape((-1,) + inp.shape)
    rows = []
    for name, default in CONFIGS:
        prec = resolve_precision(g, {"preset": "16bit", "default": default}, ranges, hw)
        fmt = assign_formats(g, prec, ranges)
        feeds = {inp.name: nx.quantize(x, *fmt[inp.name])}

        def run() -> dict[str, np.ndarray]:
            return functional.run_functional(g, prec, feeds, hw, fmt)

        new_out, t_new = run(), best_time(run, args.repeat)
        functional._layer = _reference_layer
        try:
            ref_out, t_ref = run(), best_time(run, args.repeat)
        finally:
            functional._layer = NEW_LAYER
        same = all(np.array_equal(new_out[k], ref_out[k]) for k in ref_out)
        rows.append([name, f"{t_ref:.3f}", f"{t_new:.3f}", f"{t_ref / t_new:.1f}x", "yes" if same else "NO"])
    print(f"LeNet-5, {len(x)} images, best of {args.repeat}")
    print(table(rows, ["config", "reference s/eval", "new s/eval", "speed-up", "identical"]))


if __name__ == "__main__":
    main()
