"""Mapping quality: naive vs spatial (hollow-aware, bit lines packed) vs temporal mapping on our models with
varied-precision configs.

Usage: python benchmarks/mapping_quality.py [--images 32]
Per model and config: physical crossbars under naive, spatial, temporal (energy-delay optimum: stacked only
where it costs no cycles) and densest (temporal with --crossbar-budget 0) mapping; two lower bounds (the non-zero
cells packed perfectly; the live bit lines with their rows packed perfectly); physical cell utilization; ADC
energy (proportional to conversions), energy and cycles on the runtime, each as a ratio to naive.
Also LeNet-5 with its conv weights replicated (--replicate), and the mapper alone on ResNet-50 at 224x224.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import table  # noqa: E402

from compiler import compile_model, runner  # noqa: E402
from isa import numerics as nx  # noqa: E402
from models.datasets import load_for_shape, load_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"mlp_digits": ("digits",), "lenet5_digits": ("digits32",), "resnet_digits": ("digits_image",)}
CONFIGS = {
    "uniform 8-bit": {"preset": "8bit"},
    "varied u8/u4/pot3": {"preset": "8bit", "default": {"w_scheme": "varied", "w_channels": [
        {"scheme": "uniform", "bits": 8}, {"scheme": "uniform", "bits": 4}, {"scheme": "pot", "bits": 3}]}},
    "varied all u4": {"preset": "8bit", "default": {"w_scheme": "varied", "w_channels": [
        {"scheme": "uniform", "bits": 4}]}},
    "16-bit": {"preset": "16bit"},
    "uniform 8-bit, tc": {"preset": "8bit", "default": {"w_enc": "tc"}},
    "16-bit, tc": {"preset": "16bit", "default": {"w_enc": "tc"}},
}


def lower_bounds(cm) -> tuple[int, int]:
    """Crossbars needed (1) for the non-zero cells alone, packed perfectly, and (2) for the live bit lines (any
    non-zero cell) of every block with their rows, packed perfectly: what any mapping that keeps a bit line's
    cells on one physical bit line can reach."""
    cells = line_cells = 0
    for m in cm.program.mvmus:
        pos, neg = nx.weight_slices(m.weights, m.weight_bits, cm.hw.cell_bits, m.encoding)
        cells += int((pos != 0).sum() + (neg != 0).sum())
        line_cells += int(pos.any(axis=1).sum() + neg.any(axis=1).sum()) * m.weights.shape[0]
    per = cm.hw.xbar_rows * cm.hw.xbar_cols
    return math.ceil(cells / per), math.ceil(line_cells / per)


def main() -> None:
    """Print the table and the mapper timing."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=32)
    a = ap.parse_args()
    rows = []
    for model, (data,) in MODELS.items():
        x, _ = load_dataset(data, "test")
        x = x[:a.images]
        for label, cfg in CONFIGS.items():
            res = {}
            for mode, budget in (("naive", None), ("spatial", None), ("temporal", None), ("densest", 0)):
                cm = compile_model(ROOT / "models" / f"{model}.onnx", cfg,
                                   mapping="temporal" if budget == 0 else mode, crossbar_budget=budget,
                                   data=load_for_shape)
                s = runner.run(cm, {cm.program.inputs[0].name: x}).stats
                res[mode] = (cm.mapping_report(), s, cm)
            bound, line_bound = lower_bounds(res["spatial"][2])
            n_, s_, t_, d_ = (res[m] for m in ("naive", "spatial", "temporal", "densest"))

            def ratio(key: str) -> str:
                return "/".join(f"{getattr(r[1], key) / getattr(n_[1], key):.2f}" for r in (s_, t_, d_))

            rows.append([model, label] + [r[0]["crossbars"] for r in (n_, s_, t_, d_)] + [
                bound, line_bound, f"{t_[0]['crossbars'] / max(1, bound):.2f}x",
                f"{t_[0]['crossbars'] / max(1, line_bound):.2f}x", f"{d_[0]['crossbars'] / max(1, line_bound):.2f}x",
                "/".join(f"{r[0]['cell_utilization']:.0%}" for r in (n_, s_, t_, d_)),
                f"{s_[1].per_component['adc'] / n_[1].per_component['adc']:.2f}", ratio("energy_pj"),
                ratio("cycles")])
    print(table(rows, ["model", "config", "naive", "spatial", "temporal", "densest", "cell bound", "line bound",
                       "temporal/cell", "temporal/line", "densest/line", "cell util n/s/t/d", "ADC s/n",
                       "energy s/n t/n d/n", "cycles s/n t/n d/n"]))
    print("crossbars per mode; densest = temporal with --crossbar-budget 0 (every block stacked as far as its rows "
          "allow);\nbounds: non-zero cells / cells per crossbar, and live bit lines x their block's rows / cells "
          "per crossbar")
    rows = []
    for model, (data,) in list(MODELS.items())[:2]:
        x, y = load_dataset(data, "test")
        for adc in (10, 6):
            res = {}
            for enc in ("twos", "tc"):
                cm = compile_model(ROOT / "models" / f"{model}.onnx",
                                   {"preset": "8bit", "default": {"w_enc": enc, "adc_bits": adc}}, data=load_for_shape)
                ev = runner.evaluate(cm, x, y, check=False)
                res[enc] = (cm.mapping.crossbars, ev, ev["accuracy"])
            (xa, sa, aa), (xb, sb, ab) = res["twos"], res["tc"]
            rows.append([model, adc, f"{xa} -> {xb}"] + [
                f"{sb['per_component'][k] / sa['per_component'][k]:.2f}" for k in ("crossbar", "adc")] + [
                f"{sb['energy_pj'] / sa['energy_pj']:.2f}", f"{sb['cycles'] / sa['cycles']:.2f}",
                f"{100 * aa:.2f}% -> {100 * ab:.2f}%"])
    print("\n8-bit weights, plain (+)/(-) slicing -> two's complement on one crossbar per slice (w_enc tc), spatial "
          "mapping, whole test split")
    print(table(rows, ["model", "ADC bits", "crossbars", "crossbar energy", "ADC energy", "energy", "cycles",
                       "accuracy"]))
    x, _ = load_dataset("digits32", "test")
    rows = []
    for n in (1, 2, 4, 7):
        cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit", replicate=n, data=load_for_shape)
        s = runner.run(cm, {"input": x[:a.images]}).stats
        rows.append([n, cm.mapping.crossbars, f"{s.cycles:,}", f"{s.pipeline_interval:,}", f"{s.energy_pj / 1e6:.3f}"])
    print("\nLeNet-5 8-bit, conv weights replicated N times (each copy computes a band of output rows)")
    print(table(rows, ["N", "crossbars", "cycles (latency)", "pipeline interval", "energy uJ"]))
    from models import cnn_zoo
    from compiler.driver import import_graph
    from compiler.mapping import place_layers
    from compiler.quant import calibrate, quantize_layer, resolve_precision
    from isa.hardware import DEFAULT

    model = cnn_zoo.resnet50()
    g, _, _ = import_graph(model)
    hw = DEFAULT.with_changes(tiles=4096, tile_mem_words=1 << 24)
    ranges = calibrate(g, {g.inputs[0].name: np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224))}, 128)
    rows = []
    for label in ("16-bit", "uniform 8-bit", "varied all u4", "uniform 8-bit, tc"):
        cfg = CONFIGS[label]
        t0 = time.perf_counter()
        prec = resolve_precision(g, cfg.get("preset", "16bit") if "default" not in cfg else cfg, ranges, hw)
        weights = {op.name: quantize_layer(op, prec[op.name]).weight for op in g.crossbar_ops()}
        tq = time.perf_counter() - t0
        for pool in (0, 32):
            for mode in ("naive", "spatial", "temporal"):
                t0 = time.perf_counter()
                mp = place_layers(g, prec, hw.with_changes(xbars_per_core=pool), weights, mode)
                rows.append([label, pool or "unlimited", mode, f"{tq:.1f} s", f"{time.perf_counter() - t0:.1f} s",
                             f"{mp.crossbars:,}", f"{mp.mvmus:,}", f"{mp.cores:,}", f"{mp.tiles:,}"])
    print("\nResNet-50 224x224 (random weights), the mapper alone")
    print(table(rows, ["config", "crossbars per core", "mapping", "quantize", "map (place + pack + schedule)",
                       "crossbars", "MVMUs", "cores", "tiles"]))


if __name__ == "__main__":
    main()
