"""Models larger than the chip: VGG-16 on the ISAAC preset through reprogramming rounds, beside the same model on
an ISAAC grown to hold every weight at once (docs/cost-model.md, "Reprogramming rounds").

Usage: python benchmarks/rounds.py [--resolution 32] [--batch 2] [--precision 8bit] [--mapping spatial]
                                  [--tile-mem-words N] [--compile-only] [--classifier HIDDEN]

At 224: ``--resolution 224 --tile-mem-words 16777216``, about 7 GB and half an hour on a loaded machine (run under
``ulimit -v 8000000``). ``--tile-mem-words 0`` runs on ISAAC's own 32,768-word tiles (both chips placed so that
each tile holds what it can, `compiler.mapping.fit`; VGG-16 at 64 fits them). The last table partitions and places
every round again on those tiles, as the compiler does, and says what the busiest tile holds. ``--classifier
1024`` runs VGG-16's classifier at 224 alone (fc1's 25,088 inputs, 1,024 hidden units) on those tiles beside tiles
grown to hold it packed; ``--classifier 4096`` (VGG-16's own) needs more than 6 GB to calibrate.

VGG-16 has random weights built in code (`models.cnn_zoo.vgg16`, torchvision topology). At a resolution other
than 224 its first Gemm takes 512 * (resolution/32)^2 inputs instead of 25,088 (the conv weights are VGG-16's);
the table says which resolution ran. Calibration uses 2 uniform [0, 1) images; the run uses ``--batch`` others.
Both chips run the same precision and formats, so their outputs must be identical (checked; the bit-exactness of
rounds against the functional model is tests/test_rounds.py's). Each round programs its crossbars once per batch:
the program energy per inference falls as 1/batch (the "per batch" columns are per batch). Endurance: batches until
the most-written crossbar reaches ``--endurance`` writes (ReRAM: 1e6 is a conservative figure).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import table  # noqa: E402


def compile_rounds(resolution: int, precision: str, mapping: str, mem: int) -> tuple[object, object, object]:
    """(VGG-16 compiled in rounds on ISAAC, the model, its calibration batch); tile memories of ``mem`` words."""
    from compiler import compile_model
    from isa.hardware import ISAAC as PRESET
    from models import cnn_zoo

    isaac = PRESET.with_changes(tile_mem_words=mem) if mem else PRESET
    model = cnn_zoo.vgg16(resolution=resolution)
    calib = {model.graph.input[0].name: np.random.default_rng(0).uniform(0, 1, (2, 3, resolution, resolution))}
    t0 = time.perf_counter()
    rounds = compile_model(model, precision, hw=isaac, calib=calib, mapping=mapping, rounds=True)
    print(f"compiled in rounds on isaac: {time.perf_counter() - t0:.1f} s, {len(rounds.rounds)} rounds", flush=True)
    return rounds, model, calib


def grown_tiles(cm: object) -> int:
    """Tiles of an ISAAC grown to hold every weight of ``cm``'s graph at once: its placement on a chip of
    `VIRTUAL_TILES` with ``cm``'s tile memory, bounded by it as the compiler places (`mapping.fit`; placement
    and memory plan only, no code)."""
    from functools import partial

    from compiler.codegen.memory import plan_memory
    from compiler.mapping.fit import place_to_fit
    from compiler.mapping.placement import place_layers
    from compiler.mapping.rounds import VIRTUAL_TILES, top_tile
    from compiler.quant import quantize_layer

    g, prec, fmt = cm.graph, cm.precision, cm.formats  # type: ignore[attr-defined]
    weights = {op.name: quantize_layer(op, prec[op.name]).weight for op in g.crossbar_ops()}
    hw = cm.hw.with_changes(tiles=VIRTUAL_TILES)  # type: ignore[attr-defined]
    place = partial(place_layers, g, prec, hw, weights, cm.mapping.mode)  # type: ignore[attr-defined]
    return top_tile(place_to_fit(lambda breaks: place(breaks=breaks),
                                 lambda m: plan_memory(g, prec, m, hw, fmt).top, hw.tile_mem_words))


def programming(cm: object) -> list[tuple[int, float]]:
    """Per round, from the compiled programs alone: (cycles of its programming: the slowest core's prog, energy of
    its writes per batch in pJ), as the runtime charges them (`isa.costs`)."""
    from isa.costs import CostContext, image_shape, instr_cost

    out = []
    for p in cm.rounds:  # type: ignore[attr-defined]
        shapes: dict[tuple[int, int], dict[int, object]] = {}
        for img in p.mvmus:
            shapes.setdefault((img.tile, img.core), {})[img.mvmu] = image_shape(img, p.hw)
        costs = [instr_cost(c.instrs[0], CostContext(p.hw, c.tile, shapes[c.tile, c.core]))  # type: ignore
                 for c in p.cores if (c.tile, c.core) in shapes]
        out.append((max(c.cycles for c in costs), sum(c.per_batch.get("program", 0.0) for c in costs)))
    return out


def tile_needs(cm: object, words: int) -> list[list[object]]:
    """Per round of ``cm`` (compiled in rounds), partitioned and placed again on ISAAC with ``words``-word tile
    memories as the compiler does (`mapping.rounds.partition` with the memory-aware placement,
    `mapping.fit`): its tiles, the busiest tile's words with every tensor whole, then with line buffers and the
    input port (`codegen.memory.plan_memory`), and what the busiest tile holds then."""
    from compiler.codegen.memory import describe, plan_memory
    from compiler.mapping.fit import tile_ops
    from compiler.mapping.rounds import partition
    from compiler.quant import quantize_layer
    from isa.hardware import ISAAC

    hw = ISAAC.with_changes(tile_mem_words=words)
    g, prec, fmt = cm.graph, cm.precision, cm.formats  # type: ignore[attr-defined]
    weights = {op.name: quantize_layer(op, prec[op.name]).weight for op in g.crossbar_ops()}
    plan = partition(g, prec, hw, weights, fmt, cm.mapping.mode,  # type: ignore[attr-defined]
                     memory=lambda sub, p, m, f: plan_memory(sub, p, m, hw, f).top)
    rows = []
    for r in plan.rounds:
        whole = plan_memory(r.graph, plan.prec, r.mapping, hw.with_changes(tile_mem_words=1 << 24), plan.fmt)
        mem = plan_memory(r.graph, plan.prec, r.mapping, hw, plan.fmt)
        st = mem.storage
        assert st is not None
        ends = [v.name for v in r.graph.inputs] + list(r.graph.outputs)
        tile = max(mem.top, key=lambda t: mem.top[t])
        banded = max(mem.top.values())
        rows.append([r.index, _span([op.name for op in r.graph.crossbar_ops()]), r.mapping.tiles,
                     f"{max(whole.top.values()):,}", f"{banded:,}", "fits" if banded <= words else "overflows",
                     sum(b.band > 0 for b in st.buffers.values()), sum(st.buffer(v).band > 0 for v in ends),
                     sum(lm.chain for lm in r.mapping.layers.values()),
                     f"{tile} ({', '.join(tile_ops(r.mapping)[tile][:3])}): {describe(mem, tile, 3)}"])
    return rows


def print_tile_needs(rows: list[list[object]], words: int) -> None:
    """The table of `tile_needs`."""
    print(f"\ntile memory each round needs on isaac ({words:,}-word tiles), re-planned:")
    print(table(rows, ["round", "crossbar layers", "tiles", "busiest tile, whole", "with line buffers + port", "",
                       "line buffers", "of them through the port", "chained layers",
                       "busiest tile (its ops): its largest holdings"]))


def compile_only(a: argparse.Namespace) -> None:
    """The rounds of VGG-16 on ISAAC and their write costs per batch, from the compiled programs (no run)."""
    cm, _, _ = compile_rounds(a.resolution, a.precision, a.mapping, a.tile_mem_words)
    table_ = cm.program.meta["rounds"]  # type: ignore[attr-defined]
    prog = programming(cm)
    rows = [[r["round"], _span(r["layers"]), r["tiles"], r["mvmus"], r["crossbars"], f"{r['cells_written']:,}",
             f"{pc:,}", f"{pj / 1e6:.1f}"] for r, (pc, pj) in zip(table_, prog)]
    print(f"\nVGG-16 (random weights) at {a.resolution}x{a.resolution}, {a.precision}, {a.mapping} mapping, on isaac "
          f"(tile memory {a.tile_mem_words or 32768:,} words), compiled only; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(table(rows, ["round", "crossbar layers", "tiles", "MVMUs", "crossbars", "cells written", "program cycles",
                       "program uJ/batch"]))
    print_tile_needs(tile_needs(cm, 32768), 32768)
    total = sum(pj for _, pj in prog)
    print(f"total per batch: {sum(r['cells_written'] for r in table_):,} cells, {sum(pc for pc, _ in prog):,} "
          f"cycles programming, {total / 1e6:.1f} uJ of writes ({total / 1e6 / a.batch:.1f} uJ per inference at "
          f"batch {a.batch})")


def classifier(hidden: int, seed: int = 0) -> object:
    """VGG-16's classifier at 224 alone: 25,088 -> ``hidden`` -> ``hidden`` -> 1,000 (Gemm, ReLU), He-initialized
    random weights (4,096: VGG-16's own; a smaller ``hidden`` keeps fc1's 196 row blocks per column block with
    fewer column blocks, so it compiles in less memory)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    dims, nodes, inits, h = [25088, hidden, hidden, 1000], [], [], "x"
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        w = rng.standard_normal((a, b), dtype=np.float32) * np.float32(np.sqrt(2.0 / a))
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}")]
        out = "logits" if i == 2 else f"fc{i}"
        nodes.append(helper.make_node("Gemm", [h, f"w{i}", f"b{i}"], [out], name=f"classifier.{3 * i}"))
        h = out
        if i < 2:
            nodes.append(helper.make_node("Relu", [h], [f"relu{i}"], name=f"classifier.{3 * i + 1}"))
            h = f"relu{i}"
    graph = helper.make_graph(nodes, "vgg16_classifier", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                           ["N", 25088])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def run_classifier(hidden: int, precision: str) -> None:
    """VGG-16's classifier at 224 (`classifier`) on ISAAC's own 32,768-word tiles (chained where fc1's partial
    sums overflow an owner's tile) beside the same on tiles grown to hold it packed: tiles, busiest tile and what
    it holds, cycles, energy, bit-exactness (one image; the rounds only if the weights need them)."""
    from compiler import compile_model, runner
    from compiler.codegen.memory import describe, plan_memory
    from isa.hardware import ISAAC

    model = classifier(hidden)
    rng = np.random.default_rng(1)
    x = np.maximum(rng.standard_normal((3, 25088)), 0).astype(np.float32)
    rows = []
    for label, words in (("isaac (32,768-word tiles)", 0), ("isaac, tiles of 2^20 words", 1 << 20)):
        t0 = time.perf_counter()
        cm = compile_model(model, precision, hw=ISAAC.with_changes(tile_mem_words=words or ISAAC.tile_mem_words),
                           calib={"x": x[:2]}, rounds=True)
        compile_s = time.perf_counter() - t0
        out = runner.run(cm, {"x": x[2:]})
        mem = plan_memory(cm.graph, cm.precision, cm.mapping, cm.hw, cm.formats)
        tile = max(mem.top, key=lambda t: mem.top[t])
        s = out.stats
        rows.append([label, len(cm.rounds) or 1, cm.mapping.tiles, f"{mem.top[tile]:,}",
                     ", ".join(n for n, lm in cm.mapping.layers.items() if lm.chain) or "-", f"{s.cycles:,}",
                     f"{s.energy_pj / 1e6:,.1f}", "yes" if runner.bit_exact(cm, {"x": x[2:]}, out) else "NO",
                     f"{compile_s:.0f}", describe(mem, tile, 3)])
        del cm, out
    print(f"\nVGG-16's classifier at 224 (25,088 -> {hidden:,} -> {hidden:,} -> 1,000), {precision}, one image; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(table(rows, ["chip", "rounds", "tiles", "busiest tile words", "chained layers", "cycles", "energy uJ",
                       "bit-exact", "compile s", "busiest tile holds"]))


def main() -> None:
    """Compile, run both chips on one batch, print the comparison and the rounds."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--precision", default="8bit")
    ap.add_argument("--mapping", default="spatial", choices=["spatial", "temporal"])
    ap.add_argument("--endurance", type=float, default=1e6)
    ap.add_argument("--tile-mem-words", type=int, default=1 << 18,
                    help="tile memory of both chips (0: the preset's 32,768 words)")
    ap.add_argument("--compile-only", action="store_true",
                    help="compile in rounds on isaac and print the rounds and their write costs per batch (no run)")
    ap.add_argument("--classifier", type=int, default=0, metavar="HIDDEN",
                    help="only VGG-16's classifier at 224 with HIDDEN units (4096: VGG-16's), on isaac's own tiles "
                         "beside tiles grown to hold it packed (`run_classifier`)")
    a = ap.parse_args()
    if a.classifier:
        run_classifier(a.classifier, a.precision)
        return
    if a.compile_only:
        compile_only(a)
        return
    from compiler import compile_model, runner
    from isa.hardware import ISAAC as PRESET_HW

    rounds, model, calib = compile_rounds(a.resolution, a.precision, a.mapping, a.tile_mem_words)
    tiles = grown_tiles(rounds)
    name = rounds.program.inputs[0].name  # type: ignore[attr-defined]
    x = {name: np.random.default_rng(1).uniform(0, 1, (a.batch, 3, a.resolution, a.resolution))}
    results, wall = {}, {}
    label = "isaac, rounds"
    t0 = time.perf_counter()
    results[label] = runner.run(rounds, x)  # type: ignore[arg-type]
    wall[label] = time.perf_counter() - t0
    print(f"ran {label}: {wall[label]:.1f} s", flush=True)
    table_ = rounds.program.meta["rounds"]  # type: ignore[attr-defined]
    s, w = results[label].stats, results[label].stats.write_summary()
    print(f"isaac in rounds: {s.energy_pj / 1e6:.2f} uJ/inf (program {s.per_component.get('program', 0.0) / 1e6:.2f}, "
          f"spill {s.per_component.get('spill', 0.0) / 1e6:.2f}), {s.cycles:,} cycles ({s.program_cycles:,} "
          f"programming), {w['cells_written']:,} cells written per batch, max/mean writes per crossbar "
          f"{w['max_writes_per_crossbar']}/{w['mean_writes_per_crossbar']:.2f}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
    print_round_table(results[label], table_)
    needs = tile_needs(rounds, 32768) if a.tile_mem_words != 32768 else []
    if needs:
        print_tile_needs(needs, 32768)
    sys.stdout.flush()
    del rounds  # one compiled VGG-16 in memory at a time
    t0 = time.perf_counter()
    grown = compile_model(model, a.precision, hw=PRESET_HW.with_changes(tiles=tiles, name=f"isaac-{tiles}",
                                                                        tile_mem_words=a.tile_mem_words or 32768),
                          calib=calib, mapping=a.mapping)
    print(f"compiled on isaac grown to {tiles} tiles: {time.perf_counter() - t0:.1f} s", flush=True)
    label = f"isaac grown to {tiles} tiles"
    t0 = time.perf_counter()
    results[label] = runner.run(grown, x)
    wall[label] = time.perf_counter() - t0
    print(f"ran {label}: {wall[label]:.1f} s", flush=True)
    del grown
    (r_label, r), (g_label, g) = results.items()
    same = all(np.array_equal(r.device_int[k], g.device_int[k]) for k in g.device_int)
    base = g.stats
    rows = []
    for label, out in results.items():
        s = out.stats
        w = s.write_summary()
        per_batch = s.cycles + (a.batch - 1) * sum(x["pipeline_interval"] for x in s.rounds) if s.rounds else \
            s.cycles + (a.batch - 1) * s.pipeline_interval
        rows.append([label, len(s.rounds) or 1, f"{s.energy_pj / 1e6:.2f}", f"{s.energy_pj / base.energy_pj:.2f}x",
                     f"{s.per_component.get('program', 0.0) / 1e6:.2f}",
                     f"{s.per_component.get('program', 0.0) * a.batch / 1e6:.1f}",
                     f"{s.per_component.get('spill', 0.0) / 1e6:.2f}",
                     f"{s.cycles:,}", f"{s.cycles / base.cycles:.2f}x", f"{s.program_cycles:,}", f"{per_batch:,}",
                     f"{w['cells_written']:,}", w["max_writes_per_crossbar"], f"{w['mean_writes_per_crossbar']:.2f}",
                     f"{a.endurance / w['max_writes_per_crossbar']:.3g}" if w["max_writes_per_crossbar"] else "-",
                     f"{wall[label]:.0f}"])
    print(f"\nVGG-16 (random weights) at {a.resolution}x{a.resolution}, {a.precision}, {a.mapping} mapping, batch "
          f"{a.batch}, tile memory {a.tile_mem_words or 32768:,} words; outputs identical on both chips: {'yes' if same else 'NO'}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(table(rows, ["chip", "rounds", "uJ/inf", "vs grown", "program uJ/inf", "program uJ/batch", "spill uJ/inf",
                       "latency cycles",
                       "vs grown", "program cycles/batch", "cycles/batch (est.)", "cells written/batch",
                       "max writes/xbar/batch", "mean writes/xbar", "batches to endurance", "run wall s"]))
    print("\ncycles/batch (est.) = latency + (batch - 1) x the sum of the rounds' pipeline intervals (each round "
          "streams the batch through its cores before the next is programmed); the grown chip pipelines the "
          "whole model")


def print_round_table(r: object, table_: list[dict[str, object]]) -> None:
    """Per round of a run in rounds: its cycles, programming and spill cycles and energies, cells written."""
    rows = [[x["round"], _span(table_[x["round"]]["layers"]),  # type: ignore[arg-type]
             f"{x['cycles']:,}", f"{x['program_cycles']:,}", f"{x['spill_cycles']:,}",
             f"{x['program_pj'] / 1e6:.2f}", f"{x['spill_pj'] / 1e6:.2f}", f"{x['cells_written']:,}"]
            for x in r.stats.rounds]  # type: ignore[attr-defined]
    print("\nrounds on isaac:")
    print(table(rows, ["round", "crossbar layers", "cycles", "program cycles", "spill cycles", "program uJ/inf",
                       "spill uJ/inf", "cells written"]), flush=True)


def _span(layers: list[str]) -> str:
    """``first .. last (n)`` of a round's crossbar layers."""
    if len(layers) <= 2:
        return " ".join(layers) or "-"
    return f"{layers[0]} .. {layers[-1]} ({len(layers)})"


if __name__ == "__main__":
    main()
