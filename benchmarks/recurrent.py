"""Recurrent layers: (1) cycles of a stacked LSTM when its layers run on one tile or on two (the second layer
on another tile receives h_t every step inside its own time loop, `codegen.recurrent.stepped`, so it runs step t
while the first runs step t+1), against one layer alone and against the path that sends Y after the first
layer's loop (taken when the layers run in opposite time orders, forward then reverse); (2) wall time of the
runtime (fast and reference modes) against the functional model on the bundled LSTM and GRU, at batch 1 and
on the whole test split. Every run is checked bit-exact against the functional model.

Usage: python benchmarks/recurrent.py [--steps 20] [--hidden 32] [--repeat 3]
Cycles are exact counts; the wall times are noisy on a loaded machine (compare the ratios of one run).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _table import best_time, table  # noqa: E402

from compiler import runner  # noqa: E402
from compiler.driver import compile_model  # noqa: E402
from isa.hardware import DEFAULT  # noqa: E402
from models.datasets import load_dataset, load_for_shape  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = {"lstm_italy_power": "italy_power", "gru_basic_motions": "basic_motions"}


def stacked_lstm(directions: list[str], steps: int, chans: int, hid: int, seed: int = 0) -> onnx.ModelProto:
    """A batch-first model of len(directions) stacked single-direction LSTMs (Y squeezed into the next layer's
    X), the last one's Y_h as the output; random weights."""
    rng = np.random.default_rng(seed)
    mk = lambda n, *s: numpy_helper.from_array(rng.uniform(-0.3, 0.3, s).astype(np.float32), n)  # noqa: E731
    nodes = [helper.make_node("Transpose", ["x"], ["s0"], perm=[1, 0, 2])]
    inits = [numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1")]
    cin = chans
    for k, d in enumerate(directions):
        inits += [mk(f"W{k}", 1, 4 * hid, cin), mk(f"R{k}", 1, 4 * hid, hid)]
        last = k == len(directions) - 1
        nodes.append(helper.make_node("LSTM", [f"s{k}", f"W{k}", f"R{k}"], ["", "Y_h"] if last else [f"Y{k}"],
                                      hidden_size=hid, direction=d, name=f"lstm{k}"))
        if not last:
            nodes.append(helper.make_node("Squeeze", [f"Y{k}", "ax1"], [f"s{k + 1}"]))
        cin = hid
    nodes.append(helper.make_node("Transpose", ["Y_h"], ["h"], perm=[1, 0, 2]))
    graph = helper.make_graph(nodes, "stacked", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                               ["N", steps, chans])],
                              [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["N", 1, hid])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def stacking_table(steps: int, hid: int) -> str:
    """Cycles per inference of 1 and 2 stacked layers, on one tile (8 cores) or one core per tile."""
    x = np.random.default_rng(1).uniform(-1, 1, (4, steps, 8)).astype(np.float32)
    rows, base = [], 0
    for what, dirs, cpt in [("1 layer", ["forward"], 8), ("2 layers, one tile", ["forward"] * 2, 8),
                            ("2 layers, two tiles: h_t every step", ["forward"] * 2, 1),
                            ("2 layers, two tiles, forward then reverse: Y after the loop", ["forward", "reverse"], 1)]:
        cm = compile_model(stacked_lstm(dirs, steps, 8, hid), "16bit", hw=replace(DEFAULT, cores_per_tile=cpt),
                           calib={"x": x})
        out = runner.run(cm, {"x": x})
        base = base or out.stats.cycles
        rows.append([what, f"{out.stats.cycles:,}", f"{out.stats.cycles / base:.2f}",
                     "yes" if runner.bit_exact(cm, {"x": x}, out) else "NO"])
    return table(rows, ["stacked LSTM (T = %d, H = %d)" % (steps, hid), "cycles", "vs 1 layer", "bit-exact"])


def speed_table(repeat: int) -> str:
    """Seconds per run of the functional model and the runtime on the bundled models."""
    rows = []
    for model, data in BUNDLED.items():
        cm = compile_model(ROOT / "models" / f"{model}.onnx", "16bit", data=load_for_shape)
        x, _ = load_dataset(data, "test")
        for n in (1, len(x)):
            feeds = {cm.program.inputs[0].name: x[:n]}
            func = best_time(lambda: runner.functional_outputs(cm, feeds), repeat)
            fast = best_time(lambda: runner.run(cm, feeds), repeat)
            ref = best_time(lambda: runner.run(cm, feeds, reference=True), 1 if n > 1 else repeat)
            exact = runner.bit_exact(cm, feeds, runner.run(cm, feeds))
            rows.append([model, n, f"{func:.3f}", f"{fast:.3f}", f"{ref:.3f}", f"{fast / func:.2f}",
                         f"{ref / fast:.2f}", "yes" if exact else "NO"])
    return table(rows, ["model", "series", "functional s", "runtime fast s", "runtime reference s",
                        "fast / functional", "reference / fast", "bit-exact"])


def main() -> None:
    """Print both tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(stacking_table(a.steps, a.hidden))
    print()
    print(speed_table(a.repeat))


if __name__ == "__main__":
    main()
