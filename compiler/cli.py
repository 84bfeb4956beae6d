"""The ``xbarc`` command line: compile, run, inspect, asm, disasm."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from isa.errors import XbarcError
from isa.files import written_files
from isa.outputs import check_output_dir, check_output_file, read_bytes, read_json, read_text, write_file

EXIT_USAGE = 2       # bad input: a file, field, option or tensor named in the message
EXIT_INTERNAL = 70   # a bug in xbarc (EX_SOFTWARE): the traceback is shown with --debug
EXIT_INTERRUPTED = 130

from .data import DatasetLoader


def load_data(name: str, split: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """The `DatasetLoader` of the command line: a ``.npz``/``.npy`` file of the user's (`compiler.datafiles`)
    or a bundled data set (`models.datasets`, in the variant of the model's per-sample input shape). The CLI is
    where the compiler meets `models`; a module-level function, so search workers can take it."""
    from .datafiles import is_data_file, load_file

    if is_data_file(name):
        return load_file(name, split, shape)
    from models.datasets import DATASETS, load_for_shape

    try:
        return load_for_shape(name, split, shape)
    except ValueError as e:
        if name not in DATASETS:
            raise XbarcError(f"unknown data set {name!r}: give a .npz or .npy file of your own, or one of the "
                             f"bundled {', '.join(DATASETS)}") from None
        raise XbarcError(f"data set {name!r}: {e}") from None


def _data() -> DatasetLoader:
    """`load_data`, the loader every command passes to the compiler."""
    return load_data


def cmd_compile(a: argparse.Namespace) -> int:
    """xbarc compile MODEL -o OUT."""
    from .driver import compile_model

    check_output_dir(a.output, written_files)  # before any work: never after a long compile or search
    t0 = time.perf_counter()
    precision = a.precision
    if a.search:  # the precision search inside compilation (same as `xbarc search`)
        from .search import search_precision
        from .search.agent import stderr_progress

        r = search_precision(a.model, dataset=a.calib, budget=a.budget, seed=a.seed, method=a.search,
                             progress=stderr_progress, hardware=a.hardware, mapping=a.mapping, data=_data())
        precision = r.best_config
        print(f"{r.method} search: {r.evaluations} evaluations in {r.seconds:.1f} s, best reward {r.best_reward:.4f}")
    cm = compile_model(a.model, precision=precision, hw=a.hardware, calib=a.calib, mapping=a.mapping,
                       calib_images=a.calib_images, drop_lrn=a.drop_lrn,
                       crossbar_budget=a.crossbar_budget, replicate=a.replicate, input_shapes=dict(a.input_shape),
                       data=_data(), rounds=a.rounds)
    cm.save(a.output)
    secs = time.perf_counter() - t0
    rep = cm.mapping_report() if cm.mapping else {}
    print(f"compiled {a.model} -> {a.output} in {secs:.2f} s ({rep.get('mapping')} mapping)")
    print(f"  layers: {len(cm.precision)}  crossbars: {rep.get('crossbars')}  MVMUs: {rep.get('mvmus')}  "
          f"cores: {rep.get('cores')}  tiles: {rep.get('tiles')}  block utilization: {rep.get('utilization', 0):.1%}"
          f"  cell utilization: {rep.get('cell_utilization', 0):.1%}")
    print(f"  static instructions: {cm.program.static_instructions}  calibration: {cm.calibration}")
    if cm.rounds:
        print(f"  reprogramming rounds: {len(cm.rounds)} (the weights need more tiles than {cm.hw.name}'s "
              f"{cm.hw.tiles}; `xbarc inspect {a.output}` lists them)")
    _warn("compile", cm.warnings)
    if cm.graph.host_ops:
        print(f"  on the host after the program: {', '.join(cm.graph.host_ops)}")
    return 0


def cmd_search(a: argparse.Namespace) -> int:
    """xbarc search MODEL -o OUT: precision search (docs/search.md); best.json, log.jsonl and a summary."""
    from .search import search_precision
    from .search.agent import parse_rl_options, stderr_progress
    from .search.env import SUMMARY_HEADER, EnvConfig, SearchEnv, summary_rows, validate
    from .search.plots import report_plots

    out = _search_dir(a.output)
    env = SearchEnv(EnvConfig(a.model, a.dataset, a.hardware, val_images=a.val_images, mapping=a.mapping,
                              calibrated_ce=a.calibrated_ce, data=_data(),
                              **{k: v for k in ("threshold", "max_drop") if (v := getattr(a, k)) is not None}))
    try:
        rl = parse_rl_options(a.rl)
    except ValueError as e:
        raise XbarcError(str(e)) from None
    with _Checkpoint(out / "log.jsonl") as log:
        r = search_precision(a.model, budget=a.budget, seed=a.seed, method=a.method, workers=a.workers, env=env,
                             progress=stderr_progress, rl=rl, on_record=log.append)
    write_file(out / "best.json", json.dumps(r.best_config, indent=2) + "\n")
    write_file(out / "log.jsonl", "".join(json.dumps(x) + "\n" for x in r.records))
    print(f"{r.method}: {r.evaluations} evaluations in {r.seconds:.1f} s, best reward {r.best_reward:.4f} "
          f"-> {out / 'best.json'}")
    if r.interrupted:
        print(f"xbarc search: interrupted after {r.evaluations} evaluations; kept the best so far and every "
              f"evaluation in {out / 'log.jsonl'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    report_plots(r.records, r.baseline, out, r.method)
    base = validate(env, env.config(env.space.baseline()), a.test_images)
    best = validate(env, r.best_config, a.test_images)
    print(f"measured on the runtime, {best['images']} test images:")
    print(_table(summary_rows(base, {f"best ({r.method})": best}), SUMMARY_HEADER))
    return 0


def _warn(command: str, warnings: list[str]) -> None:
    for w in warnings:
        print(f"xbarc {command}: warning: {w}", file=sys.stderr)


def _search_dir(path: str) -> Path:
    """A search's output folder, checked before the search starts: absent or a folder, writable."""
    out = Path(path)
    if not path.strip():
        raise XbarcError("-o: the output path is empty")
    if out.exists() and not out.is_dir():
        raise XbarcError(f"{out}: exists and is not a directory; `xbarc search -o` needs a folder")
    check_output_file(out / "best.json")
    return out


class _Checkpoint:
    """``log.jsonl`` written as the search goes, one flushed line per evaluation, so that a killed search keeps
    what it evaluated; rewritten atomically at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: io.TextIOBase | None = None

    def __enter__(self) -> "_Checkpoint":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.f = self.path.open("w")
        except OSError as e:
            raise XbarcError(f"{self.path}: cannot write: {e.strerror}") from None
        return self

    def append(self, record: dict[str, Any]) -> None:
        """Write one evaluation's record."""
        assert self.f is not None
        try:
            self.f.write(json.dumps(record) + "\n")
            self.f.flush()
        except OSError as e:
            raise XbarcError(f"{self.path}: cannot write: {e.strerror}") from None

    def __exit__(self, *exc: object) -> None:
        if self.f is not None:
            self.f.close()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt = "  ".join("{:>%d}" % w if i else "{:<%d}" % w for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header)] + [fmt.format(*map(str, r)) for r in rows])


def _print_report(r: dict[str, Any]) -> None:
    if r.get("accuracy") is not None:
        print(f"accuracy (xbarc runtime):     {r['accuracy']:.4f}  on {r['images']} images")
        print(f"accuracy (onnxruntime float): {r['reference_accuracy']:.4f}")
    else:
        print(f"accuracy: not measured ({r['images']} inputs without labels)")
    print(f"agreement with onnxruntime:   {r['agreement']:.4f}  (max |output error| {r['max_abs_error']:.4g})")
    print(f"energy: {r['energy_pj']:.1f} pJ per inference ({r['energy_pj'] / 1e6:.4f} uJ)")
    print(f"cycles: {r['cycles']} per inference (latency)   dynamic instructions: {r['dynamic_instructions']}")
    print(f"pipelined over a stream of inputs: one inference every {r['pipeline_interval_cycles']} cycles "
          f"(busiest core; {r['cycles'] / max(1, r['pipeline_interval_cycles']):.1f}x the latency-bound rate)")
    if r.get("bit_exact") is not None:
        print(f"bit-exact: {'yes' if r['bit_exact'] else 'NO'} (runtime vs functional model, every image)")
    total = r["energy_pj"] or 1.0
    rows = [[k, f"{v['energy_pj']:.1f}", f"{v['energy_pj'] / total:.1%}", v.get("busy_cycles", ""),
             v.get("instructions", "")] for k, v in r["per_layer"].items()]
    print("\nper layer:\n" + _table(rows, ["layer", "energy pJ", "share", "busy cycles", "instructions"]))
    rows = [[k, f"{v:.1f}", f"{v / total:.1%}"] for k, v in sorted(r["per_component"].items(), key=lambda kv: -kv[1])]
    print("\nper component:\n" + _table(rows, ["component", "energy pJ", "share"]))
    if r.get("reprogramming"):
        _print_reprogramming(r["reprogramming"], total)
    if r.get("host_ops"):
        print(f"\nevaluated on the host after the program: {', '.join(r['host_ops'])}")


def _print_reprogramming(p: dict[str, Any], total: float) -> None:
    """The rounds of a run: writes and spills per round, endurance."""
    w = p["writes"]
    print(f"\nreprogramming: {w['cells_written']:,} cells written per batch of {p['batch']} on "
          f"{w['crossbars_written']:,} crossbars (writes per crossbar: max {w['max_writes_per_crossbar']}, mean "
          f"{w['mean_writes_per_crossbar']:.2f}); {p['program_cycles']:,} cycles programming per batch")
    rows = [[r["round"], r["cycles"], r["program_cycles"], r["spill_cycles"], f"{r['program_pj']:.1f}",
             f"{r['spill_pj']:.1f}", f"{r['energy_pj'] / total:.1%}", f"{r['cells_written']:,}"]
            for r in p["rounds"]]
    print(_table(rows, ["round", "cycles", "program cycles", "spill cycles", "program pJ", "spill pJ", "share",
                        "cells written"]))


def _load_inputs(path: str, names: list[str]) -> dict[str, np.ndarray]:
    """The arrays of ``path`` (.npy: the one input; .npz: arrays named like the inputs) by input name."""
    from .datafiles import NPY, read_arrays

    arrays = read_arrays(path)
    if NPY in arrays:
        return {names[0]: arrays[NPY]}
    missing = [n for n in names if n not in arrays]
    if missing and len(names) == 1 and len(arrays) == 1:
        return {names[0]: next(iter(arrays.values()))}
    if missing:
        raise XbarcError(f"{path}: missing input array(s) {missing}; it has {sorted(arrays)}")
    return {n: arrays[n] for n in names}


def cmd_run(a: argparse.Namespace) -> int:
    """xbarc run OUT (--dataset NAME | --inputs FILE -o OUT.npy)."""
    from . import runner
    from .driver import load_compiled

    if a.output:
        check_output_file(a.output)
    cm = load_compiled(a.outdir)
    _warn("run", cm.warnings)
    if a.inputs:
        feeds = _load_inputs(a.inputs, [i.name for i in cm.program.inputs])
        outcome = runner.run(cm, feeds)
        outputs = outcome.host or outcome.device_float
        first = next(iter(outputs.values()))
        if a.output:
            buf = io.BytesIO()
            np.save(buf, first)
            write_file(a.output, buf.getvalue())
        summary = {"outputs": {k: list(np.shape(v)) for k, v in outputs.items()}, "energy_pj": outcome.stats.energy_pj,
                   "cycles": outcome.stats.cycles, "saved": a.output}
        if a.check:
            summary["bit_exact"] = runner.bit_exact(cm, feeds, outcome)
        print(json.dumps(summary, indent=2) if a.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
        return 0 if summary.get("bit_exact", True) else 1
    x, y = load_data(a.dataset, a.split, tuple(cm.program.inputs[0].shape))
    if a.limit:
        x, y = x[:a.limit], (None if y is None else y[:a.limit])
    report = runner.evaluate(cm, x, y, check=a.check)
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0 if report["bit_exact"] in (True, None) else 1


def cmd_adc_profile(a: argparse.Namespace) -> int:
    """xbarc adc-profile MODEL: bit-line value distribution per layer and the ADC resolution covering a fraction."""
    from isa import numerics as nx

    from .driver import compile_model, model_dataset
    from .quant.adc_profile import profile_bitlines

    if a.write_config:
        check_output_file(a.write_config, "--write-config")
    cm = compile_model(a.model, precision=a.precision, hw=a.hardware, calib=a.dataset, data=_data())
    name = a.dataset or model_dataset(cm.model)
    if not name:
        raise XbarcError("no data set: pass --dataset (the model declares none in its xbarc.dataset metadata)")
    loc = cm.program.inputs[0]
    x, _ = load_data(name, a.split, tuple(loc.shape))
    x = x[:a.limit] if a.limit else x
    q = {loc.name: nx.quantize(x.reshape((len(x),) + tuple(loc.shape)), loc.bits, loc.frac)}
    profiles = profile_bitlines(cm.graph, cm.precision, q, cm.hw, cm.formats)
    full = cm.hw.full_adc_bits
    rows = [{"layer": p.layer, "values": p.total, "coverage": {b: p.coverage(b) for b in range(1, full + 1)},
             "suggested_adc_bits": p.suggest(a.coverage, full)} for p in profiles]
    if a.write_config:
        cfg = {"preset": a.precision if a.precision in ("16bit", "8bit", "4bit", "puma") else "16bit",
               "layers": {r["layer"]: {"adc_bits": r["suggested_adc_bits"]} for r in rows}}
        write_file(a.write_config, json.dumps(cfg, indent=2) + "\n")
    if a.json:
        print(json.dumps({"coverage_target": a.coverage, "images": len(x), "layers": rows}, indent=2))
        return 0
    shown = list(range(max(1, full - 6), full + 1))
    table = [[r["layer"], f"{r['values']:,}"] + [f"{r['coverage'][b]:.2%}" for b in shown] + [r["suggested_adc_bits"]]
             for r in rows]
    print(f"bit-line values on {len(x)} images of {name}/{a.split}; coverage = fraction inside a signed b-bit ADC")
    print(_table(table, ["layer", "values"] + [f"{b} bits" for b in shown] + [f"bits for {a.coverage:.0%}"]))
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    """xbarc inspect OUT."""
    from isa.files import load_program

    out = Path(a.outdir)
    prog = load_program(out)
    mapping: Any = read_json(out / "mapping.json") if (out / "mapping.json").exists() else {}
    if not isinstance(mapping, dict):
        raise XbarcError(f"{out / 'mapping.json'}: not a mapping report (a JSON object)")
    per_layer: dict[str, dict[str, Any]] = {}
    for c in prog.cores:
        for ins in c.instrs:
            entry = per_layer.setdefault(ins.node or "-", {"static_instructions": 0})
            entry["static_instructions"] += 1
    if a.dynamic:  # execute one all-zero input to count executed instructions (loops run their full trip)
        from runtime import Machine

        zeros = {loc.name: np.zeros((1, loc.length), dtype=np.int64) for loc in prog.inputs}
        stats = Machine(prog).run(zeros).stats
        for name, row in stats.per_layer.items():
            per_layer.setdefault(name, {"static_instructions": 0})["dynamic_instructions"] = row["instructions"]
    layers = []
    for lay in mapping.get("layers", []):
        layers.append(lay | per_layer.get(lay["layer"], {}))
    for name, row in per_layer.items():  # vector ops and transfers have no mapping row
        if name not in {lay["layer"] for lay in layers}:
            layers.append({"layer": name} | row)
    info = {"crossbars": mapping.get("crossbars"), "mvmus": mapping.get("mvmus"), "tiles": mapping.get("tiles"),
            "cores": len(prog.cores), "static_instructions": prog.static_instructions,
            "dynamic_instructions": sum(x.get("dynamic_instructions", 0) for x in per_layer.values()) or None,
            "utilization": mapping.get("utilization"), "hardware": prog.hw.name,
            "inputs": [vars(i) | {"shape": list(i.shape)} for i in prog.inputs],
            "outputs": [vars(o) | {"shape": list(o.shape)} for o in prog.outputs], "layers": layers}
    if a.mvmus:
        info["mvmu_images"] = _mvmu_rows(prog)
    if prog.meta.get("rounds"):
        info["rounds"] = prog.meta["rounds"]
    if a.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{out}: {info['static_instructions']} instructions on {info['cores']} cores, {info['tiles']} tiles, "
          f"{info['crossbars']} crossbars ({info['mvmus']} MVMUs, utilization {info['utilization'] or 0:.1%})")
    rows = [[lay["layer"], lay.get("mvmus", "-"), lay.get("crossbars", "-"), lay.get("steps", "-"),
             lay.get("cores", "-"), f"{lay['utilization']:.1%}" if "utilization" in lay else "-",
             f"{lay['cell_utilization']:.1%}" if "cell_utilization" in lay else "-",
             lay.get("static_instructions", 0), lay.get("dynamic_instructions", "-")] for lay in layers]
    print(_table(rows, ["layer", "MVMUs", "crossbars", "steps", "cores", "block util", "cell util", "static instr",
                        "dynamic instr"]))
    if info.get("rounds"):
        rows = [[r["round"], " ".join(r["ops"]), r["tiles"], r["mvmus"], r["crossbars"], f"{r['cells_written']:,}",
                 " ".join(r["outputs"])] for r in info["rounds"]]
        print(f"\n{len(rows)} reprogramming rounds (each programs its crossbars, then runs over the whole batch; "
              f"round k >= 1 in {out}/roundk):")
        print(_table(rows, ["round", "ops", "tiles", "MVMUs", "crossbars", "cells written", "spills"]))
    if a.mvmus:
        keys = ["mvmu", "node", "rows", "cols", "slices", "encoding", "live_lines", "crossbars", "steps",
                "conversions_per_digit"]
        print("\nper MVMU (from image.npz; conversions per input digit before SKIP):")
        print(_table([[m[k] for k in keys] for m in info["mvmu_images"]], keys))
    return 0


def _mvmu_rows(prog: Any) -> list[dict[str, Any]]:
    """One row per programmed MVMU: its block, slices, and what its layout (or the naive allocation) uses."""
    from isa import numerics as nx
    from isa.layout import naive_arrays, summarize

    rows = []
    for m in prog.mvmus:
        r, c = m.weights.shape
        s = nx.n_slices(m.weight_bits, prog.hw.cell_bits, m.encoding)
        pos, neg = nx.weight_slices(m.weights, m.weight_bits, prog.hw.cell_bits, m.encoding)
        live = int(pos.any(axis=1).sum() + neg.any(axis=1).sum())
        if m.layout is None:
            arrays, steps, conv = naive_arrays(s), 1, s * c
        else:
            summ = summarize(m.layout)
            arrays, steps, conv = summ.arrays, summ.steps, sum(map(sum, summ.step_counts))
        rows.append({"mvmu": f"{m.tile}.{m.core}.{m.mvmu}", "node": m.node, "rows": r, "cols": c, "slices": s,
                     "encoding": m.encoding, "live_lines": live, "crossbars": arrays, "steps": steps,
                     "conversions_per_digit": conv})
    return rows


def cmd_asm(a: argparse.Namespace) -> int:
    """xbarc asm FILE.s -o FILE.bin."""
    from isa.assembler import assemble
    from isa.encoding import encode_program
    from isa.hardware import load_hardware

    check_output_file(a.output)
    data = encode_program(assemble(read_text(a.source), a.source, load_hardware(a.hardware)))
    write_file(a.output, data)
    print(f"{a.source} -> {a.output} ({len(data)} bytes)")
    return 0


def cmd_disasm(a: argparse.Namespace) -> int:
    """xbarc disasm FILE.bin [-o FILE.s]."""
    from isa.encoding import decode_program
    from isa.hardware import load_hardware

    from isa.printer import format_program

    if a.output:
        check_output_file(a.output)
    text = format_program(decode_program(read_bytes(a.binary), load_hardware(a.hardware), a.binary),
                          provenance=False)
    if a.output:
        write_file(a.output, text)
    else:
        sys.stdout.write(text)
    return 0


# ---- option values: each checked at parse time, with the option named (argparse adds it) --------------------------
def _int_at_least(lo: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    parse.__name__ = f"integer >= {lo}"
    return parse


def _float_in(lo: float, hi: float, lo_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"must be a number in {'(' if lo_open else '['}{lo:g}, {hi:g}], "
                                             f"got {text}")
        return v
    parse.__name__ = "number"
    return parse


POSITIVE, NONNEG = _int_at_least(1), _int_at_least(0)
FRACTION, OPEN_FRACTION = _float_in(0.0, 1.0), _float_in(0.0, 1.0, lo_open=True)
NONNEG_FLOAT = _float_in(0.0, math.inf)
def _input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    from .driver import parse_input_shape

    return parse_input_shape(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show Python tracebacks (also XBARC_DEBUG=1)")
    p = argparse.ArgumentParser(prog="xbarc", description="Compiler toolchain for ReRAM crossbar DNN accelerators",
                                parents=[debug])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[debug], **kw)

    c = command("compile", help="compile an ONNX model into an output directory")
    c.add_argument("model")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--precision", default=None, help="preset (16bit, 8bit, 4bit, puma), JSON config file, or qdq "
                   "(the model's own QuantizeLinear/DequantizeLinear quantizers; the default for a QDQ model, "
                   "else 16bit)")
    c.add_argument("--hardware", default=None, help="hardware preset (default, puma, puma-chip, isaac) or JSON file")
    c.add_argument("--calib", default=None, metavar="DATA",
                   help="activation-range calibration data: a .npz/.npy file of inputs as the model takes them "
                        "(docs/user-guide.md, 'Your own data'), a bundled data set, or 'noise' (uniform [0, 1), "
                        "with a warning); default: the model's xbarc.dataset metadata, else noise with a warning")
    c.add_argument("--calib-images", type=POSITIVE, default=256, metavar="N",
                   help="calibrate on the first N images of the calibration data (default 256)")
    c.add_argument("--drop-lrn", action="store_true",
                   help="compile LRN (local response normalization) as an identity, with a warning: the run's "
                        "agreement with onnxruntime shows what that costs (AlexNet, ZFNet, Inception v1)")
    c.add_argument("--replicate", type=POSITIVE, default=1,
                   help="copy each conv layer's weights N times; each copy computes a band of output rows")
    c.add_argument("--crossbar-budget", type=NONNEG, default=None,
                   help="with --mapping temporal: trade cycles for crossbars until this many fit (0: the fewest "
                        "crossbars the rows allow)")
    c.add_argument("--search", default=None, choices=["rl", "random", "greedy"],
                   help="choose the precision by searching (docs/search.md) instead of --precision")
    c.add_argument("--budget", type=POSITIVE, default=100, help="with --search: evaluations")
    c.add_argument("--seed", type=NONNEG, default=0, help="with --search: random seed")
    c.add_argument("--mapping", default="spatial", choices=["naive", "spatial", "temporal"],
                   help="naive: every block and crossbar allocated; spatial (default): all-zero blocks and "
                        "crossbars (hollows) leave the data path; temporal: spatial, plus bit planes of blocks "
                        "with few rows stacked on one crossbar's rows and driven in successive steps")
    c.add_argument("--rounds", action="store_true",
                   help="when the weights need more tiles than the chip has, run the layers in reprogramming "
                        "rounds (docs/cost-model.md, 'Reprogramming rounds') instead of failing")
    c.add_argument("--input-shape", action="append", default=[], type=_input_shape, metavar="NAME:D0,D1,...",
                   help="shape of a graph input with dynamic dims, e.g. x:1,3,224,224 (dim 0, the batch, is "
                        "ignored); repeatable")
    c.set_defaults(fn=cmd_compile)
    se = command("search", help="search a per-layer precision config (RL, random or greedy)")
    se.add_argument("model")
    se.add_argument("-o", "--output", required=True)
    se.add_argument("--dataset", default=None, metavar="DATA",
                    help="labelled data: a .npz file of yours (x, y; optional x_val/y_val, x_test/y_test, ...) or a "
                         "bundled data set (default: the model's metadata)")
    se.add_argument("--hardware", default=None)
    se.add_argument("--method", default="rl", choices=["rl", "random", "greedy"])
    se.add_argument("--budget", type=POSITIVE, default=100, help="distinct configurations to evaluate")
    se.add_argument("--seed", type=NONNEG, default=0)
    se.add_argument("--workers", type=POSITIVE, default=1)
    se.add_argument("--val-images", type=NONNEG, default=0,
                    help="images of the held-out val split that score candidates (0: all 256)")
    se.add_argument("--rl", action="append", default=[], metavar="KEY=VALUE",
                    help="override an actor-critic hyperparameter (docs/search.md), e.g. --rl anchor=0")
    se.add_argument("--threshold", type=NONNEG_FLOAT, default=None,
                    help="T_t's t: cross-entropy increase allowed (nats; default 0.02)")
    se.add_argument("--max-drop", type=FRACTION, default=None,
                    help="accuracy drop allowed on the val images (fraction; default 1.0: no limit)")
    se.add_argument("--calibrated-ce", action="store_true",
                    help="score both cross-entropies at their best temperature (logit scale does not count)")
    se.add_argument("--test-images", type=NONNEG, default=0, help="test images for the final check (0: all)")
    se.add_argument("--mapping", default="spatial", choices=["naive", "spatial", "temporal"],
                    help="the mapping whose energy and latency the search optimizes (compile's default: spatial)")
    se.set_defaults(fn=cmd_search)
    r = command("run", help="run a compiled model on the reference runtime")
    r.add_argument("outdir")
    r.add_argument("--dataset", default=None, metavar="DATA",
                   help="a .npz (x and optional labels y, or per split x_test/y_test, ...) or .npy (inputs only: "
                        "agreement with onnxruntime, no accuracy) file of yours, or a bundled data set")
    r.add_argument("--split", default="test")
    r.add_argument("--limit", type=NONNEG, default=0, help="first N images only")
    r.add_argument("--inputs", default=None, help=".npy or .npz of float inputs")
    r.add_argument("-o", "--output", default=None, help=".npy file for the outputs (with --inputs)")
    r.add_argument("--check", action="store_true", help="also compare with the functional model bit for bit")
    r.add_argument("--json", action="store_true")
    r.set_defaults(fn=cmd_run)
    ap = command("adc-profile", help="bit-line value distribution and the ADC resolution that covers it")
    ap.add_argument("model")
    ap.add_argument("--dataset", default=None, metavar="DATA", help="a .npz/.npy file of yours or a bundled data set")
    ap.add_argument("--split", default="calib")
    ap.add_argument("--limit", type=NONNEG, default=0)
    ap.add_argument("--precision", default="16bit")
    ap.add_argument("--hardware", default=None)
    ap.add_argument("--coverage", type=OPEN_FRACTION, default=0.99)
    ap.add_argument("--write-config", default=None, help="write a precision config with the suggested ADC bits")
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(fn=cmd_adc_profile)
    i = command("inspect", help="summarize a compiled output directory")
    i.add_argument("outdir")
    i.add_argument("--json", action="store_true")
    i.add_argument("--dynamic", action="store_true", help="also count executed instructions (runs one input)")
    i.add_argument("--mvmus", action="store_true", help="also a table of every programmed MVMU and its layout")
    i.set_defaults(fn=cmd_inspect)
    s = command("asm", help="assemble text into binary")
    s.add_argument("source")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--hardware", default=None, help="the chip the program is for (preset or JSON; default: default)")
    s.set_defaults(fn=cmd_asm)
    d = command("disasm", help="disassemble binary into text")
    d.add_argument("binary")
    d.add_argument("-o", "--output", default=None)
    d.add_argument("--hardware", default=None, help="the chip the program is for (preset or JSON; default: default)")
    d.set_defaults(fn=cmd_disasm)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xbarc`` console script: exit 0 on success, 1 when a check failed (``--check``), 2 on
    bad input (the message names the file, field, option or tensor), 70 on an internal error, 130 on Ctrl-C."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("XBARC_DEBUG", "") not in ("", "0")
    if args.fn is cmd_run and not (args.dataset or args.inputs):
        print("xbarc run: give --dataset NAME or --inputs FILE", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.fn(args))
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly, as coreutils do
        try:  # keep the interpreter's final flush from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except Exception as e:
        if debug:
            raise
        code, message = _describe(e)
        print(f"xbarc {args.command}: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\nxbarc {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _describe(e: Exception) -> tuple[int, str]:
    """Exit code and message for an exception that reached the command line."""
    if isinstance(e, XbarcError):
        return EXIT_USAGE, f"error: {e}"
    if isinstance(e, MemoryError):
        return EXIT_USAGE, "error: not enough memory for this request (try a smaller batch: --limit)"
    if isinstance(e, OSError) and e.filename:  # a file-system error the command did not name itself
        return EXIT_USAGE, f"error: {e.filename}: {e.strerror or e}"
    return EXIT_INTERNAL, (f"internal error: {type(e).__name__}: {e}\nthis is a bug in xbarc; rerun with --debug "
                           f"(or XBARC_DEBUG=1) for the traceback and report it")


if __name__ == "__main__":
    sys.exit(main())
