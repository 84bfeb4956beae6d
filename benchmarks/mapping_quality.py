"""Mapping quality: naive vs spatial (hollow-aware) mapping on our models with varied-precision configs.

Usage: python benchmarks/mapping_quality.py [--images 32]
Per model and config: physical crossbars, the lower bound (crossbars needed to hold the non-zero cells if they
could be packed perfectly: ceil(non-zero (slice, sign) cells / cells per crossbar)), ADC energy (proportional to
conversions), total energy and cycles on the runtime, for naive, spatial (hollow-aware) and temporal (spatial plus
bit planes stacked on the rows of short blocks) mapping.
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
from models.datasets import load_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"mlp_digits": ("digits",), "lenet5_digits": ("digits32",), "resnet_digits": ("digits_image",)}
CONFIGS = {
    "uniform 8-bit": {"preset": "8bit"},
    "varied u8/u4/pot3": {"preset": "8bit", "default": {"w_scheme": "varied", "w_channels": [
        {"scheme": "uniform", "bits": 8}, {"scheme": "uniform", "bits": 4}, {"scheme": "pot", "bits": 3}]}},
    "varied all u4": {"preset": "8bit", "default": {"w_scheme": "varied", "w_channels": [
        {"scheme": "uniform", "bits": 4}]}},
    "16-bit": {"preset": "16bit"},
}


def lower_bound(cm) -> int:
    """Crossbars needed for the non-zero cells alone."""
    cells = 0
    for m in cm.program.mvmus:
        pos, neg = nx.weight_slices(m.weights, m.weight_bits, cm.hw.cell_bits, m.encoding)
        cells += int((pos != 0).sum() + (neg != 0).sum())
    return math.ceil(cells / (cm.hw.xbar_rows * cm.hw.xbar_cols))


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
            for mode in ("naive", "spatial", "temporal"):
                cm = compile_model(ROOT / "models" / f"{model}.onnx", cfg, mapping=mode)
                s = runner.run(cm, {cm.program.inputs[0].name: x}).stats
                res[mode] = (cm.mapping_report(), s, cm)
            bound = lower_bound(res["spatial"][2])
            (rn, sn, _), (rs, ss, _), (rt, st, _) = res["naive"], res["spatial"], res["temporal"]
            rows.append([model, label, rn["crossbars"], rs["crossbars"], rt["crossbars"], bound,
                         f"{rt['crossbars'] / max(1, bound):.2f}x",
                         f"{ss.per_component['adc'] / sn.per_component['adc']:.2f}",
                         f"{ss.energy_pj / sn.energy_pj:.2f}/{st.energy_pj / sn.energy_pj:.2f}",
                         f"{ss.cycles / sn.cycles:.2f}/{st.cycles / sn.cycles:.2f}"])
    print(table(rows, ["model", "config", "naive xbars", "spatial xbars", "temporal xbars", "lower bound",
                       "temporal/bound", "ADC energy s/n", "energy s/n t/n", "cycles s/n t/n"]))
    x, _ = load_dataset("digits32", "test")
    rows = []
    for n in (1, 2, 4, 7):
        cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit", replicate=n)
        s = runner.run(cm, {"input": x[:a.images]}).stats
        rows.append([n, cm.mapping.crossbars, f"{s.cycles:,}", f"{s.pipeline_interval:,}", f"{s.energy_pj / 1e6:.3f}"])
    print("\nLeNet-5 8-bit, conv weights replicated N times (each copy computes a band of output rows)")
    print(table(rows, ["N", "crossbars", "cycles (latency)", "pipeline interval", "energy uJ"]))
    from models import cnn_zoo
    from compiler.driver import import_graph
    from compiler.mapping import map_naive
    from compiler.quant import calibrate, quantize_layer, resolve_precision
    from isa.hardware import DEFAULT

    model = cnn_zoo.resnet50()
    g, _, _ = import_graph(model)
    hw = DEFAULT.with_changes(tiles=4096, tile_mem_words=1 << 24)
    ranges = calibrate(g, {g.inputs[0].name: np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224))}, 128)
    prec = resolve_precision(g, "16bit", ranges, hw)
    t0 = time.perf_counter()
    weights = {op.name: quantize_layer(op, prec[op.name]).weight for op in g.crossbar_ops()}
    mp = map_naive(g, prec, hw, weights, "spatial")
    print(f"\nResNet-50 224x224: spatial mapper (quantize + place + hollow count) {time.perf_counter() - t0:.1f} s, "
          f"{mp.crossbars:,} crossbars, {mp.mvmus:,} MVMUs")


if __name__ == "__main__":
    main()
