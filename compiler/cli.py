"""The ``xbarc`` command line: compile, run, inspect, report, asm, disasm."""

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
    report = _report_path(a, "report.html")
    t0 = time.perf_counter()
    precision = a.precision
    r = None
    if a.search:  # the precision search inside compilation (same as `xbarc search`)
        from .search import search_precision
        from .search.methods import stderr_progress

        r = search_precision(a.model, dataset=a.calib, budget=a.budget, seed=a.seed, method=a.search,
                             progress=stderr_progress, hardware=a.hardware, mapping=a.mapping, data=_data())
        precision = r.config
        print(f"{r.method} search: {r.evaluations} evaluations in {r.seconds:.1f} s, chosen config's search reward "
              f"{r.chosen.reward:.4f}")
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
    static = sum(p.static_instructions for p in cm.rounds or [cm.program])
    print(f"  static instructions: {static}  calibration: {cm.calibration}")
    if cm.rounds:
        print(f"  reprogramming rounds: {len(cm.rounds)} (the weights need more tiles than {cm.hw.name}'s "
              f"{cm.hw.tiles}; `xbarc inspect {a.output}` lists them)")
    _warn("compile", cm.warnings)
    if cm.graph.host_ops:
        print(f"  on the host after the program: {', '.join(cm.graph.host_ops)}")
    if report:
        from .report import CompileView
        from .report.sources import search_view

        search = None if r is None else search_view(r)
        _write_report(report, CompileView.load(a.output), search=search)
    return 0


def cmd_search(a: argparse.Namespace) -> int:
    """xbarc search MODEL -o OUT: precision search (docs/search.md); best.json, log.jsonl, pareto.json and a
    summary measured on the runtime."""
    from .search import search_precision
    from .search.methods import stderr_progress
    from .search.session import Checkpoint, check_resume, resumed_agrees, write_outputs

    out = _search_dir(a.output)
    report = _report_path(a, str(out / "report.html"))
    env, rl = _search_env(a)
    settings = _search_settings(a, env)
    old = check_resume(out, settings, a.resume)
    cache = a.cache or out / "evaluations.sqlite"
    with Checkpoint(out / "log.jsonl") as log:
        r = search_precision(a.model, budget=a.budget, seed=a.seed, method=a.method, workers=a.workers, env=env,
                             progress=stderr_progress, rl=rl, on_record=log.append, backend=a.backend,
                             address=a.address, cache=cache)
    doc = write_outputs(out, env, r)
    if old:
        resumed_agrees(old, r, lambda m: print(f"xbarc search: {m}", file=sys.stderr))
    print(f"{r.method}: {r.evaluations} evaluations ({r.reused} from {cache}) in {r.seconds:.1f} s, best search "
          f"reward {r.best.reward:.4f}")
    if r.interrupted:
        print(f"xbarc search: interrupted after {r.evaluations} evaluations; kept every evaluation in "
              f"{out / 'log.jsonl'} and {cache}, the choice so far in {out / 'best.json'}; "
              f"run the same command with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    _search_summary(a, env, r, doc, out)
    if report:
        from .report import SearchView

        _write_report(report, search=SearchView.load(out))
    return 0


def _search_env(a: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The search environment and RL options of `xbarc search`'s arguments."""
    from .search.agent import parse_rl_options
    from .search.cost import parse_weights
    from .search.env import EnvConfig, SearchEnv

    try:
        rl, weights = parse_rl_options(a.rl), parse_weights(a.cost)
    except ValueError as e:
        raise XbarcError(str(e)) from None
    cfg = EnvConfig(a.model, a.dataset, a.hardware, search_split=a.search_split, search_images=a.search_images,
                    select_split=a.select_split, select_images=a.select_images,
                    select_correction=a.select_correction, max_drop=a.max_drop,
                    confidence=a.confidence, cost_weights=weights, mapping=a.mapping, data=_data(),
                    devices=a.devices, device_trials=a.device_trials, replicas=a.replicas, narrow=a.narrow)
    return SearchEnv(cfg), rl


def _search_settings(a: argparse.Namespace, env: Any) -> dict[str, Any]:
    """What defines a search (``search.json``; --resume checks it): the environment's scope and the method's
    settings (not the workers, backend or cache: they do not change the result)."""
    return {"model": a.model, "scope": env.cfg.scope(), "method": a.method, "budget": a.budget, "seed": a.seed,
            "rl": sorted(a.rl)}


def _search_summary(a: argparse.Namespace, env: Any, r: Any, doc: dict[str, Any], out: Path) -> None:
    """The plots, then the baseline, the chosen config and the front's points run on the runtime (test split)."""
    from .search.env import SUMMARY_HEADER, summary_rows, validate
    from .search.plots import report_plots, write_front_plot
    from .search.selection import scored

    report_plots(r.records, r.baseline, out, r.method)
    if write_front_plot(doc, r.records, out / "pareto.png") is not None:
        print(f"plot: {out / 'pareto.png'}")
    c = env.cfg
    pick = next(i for i, p in enumerate(doc["points"]) if p["chosen"])
    level = f"{100 * c.confidence:g}% confidence" + (
        f" for all {len({x.key for x in scored(r.records + [r.baseline])})} configs scored there (Bonferroni)"
        if c.select_correction == "bonferroni" else "")
    if r.met:
        print(f"chosen: pareto point {pick} ({doc['points'][pick]['file']}), the cheapest whose accuracy drop on "
              f"'{c.select_split}' is <= {100 * c.max_drop:g}% at {level} ({len(env.select.x)} images, "
              f"bound {100 * doc['points'][pick]['choice_bound']:.2f}%) -> {out / 'best.json'}")
    else:
        print(f"xbarc search: warning: no evaluated config meets --max-drop {100 * c.max_drop:g}% on "
              f"'{c.select_split}' at {level}; best.json is the 16-bit baseline", file=sys.stderr)
    base = validate(env, env.config(env.space.baseline()), a.test_images)
    found = {f"chosen ({r.method})": validate(env, r.config, a.test_images)}
    for i, p in enumerate(doc["points"][: a.measure_front]):
        if not p["chosen"]:
            found[f"pareto point {i}"] = validate(env, env.config(p["actions"]), a.test_images)
    print(f"measured on the runtime, {base['images']} test images:")
    print(_table(summary_rows(base, found), SUMMARY_HEADER))


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
    if r.get("area"):
        _print_area(r["area"])
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
    if a.report is not None and a.inputs:
        raise XbarcError("--report: a report is drawn from a run on a data set (--dataset), not from --inputs")
    report = _report_path(a, "report.html")
    cm = load_compiled(a.outdir)
    _warn("run", cm.warnings)
    if a.inputs:
        feeds = _load_inputs(a.inputs, [i.name for i in cm.program.inputs])
        outcome = runner.run(cm, feeds, a.reference, a.workers, backend=a.backend, address=a.address)
        outputs = outcome.host or outcome.device_float
        first = next(iter(outputs.values()))
        if a.output:
            buf = io.BytesIO()
            np.save(buf, first)
            write_file(a.output, buf.getvalue())
        summary = {"outputs": {k: list(np.shape(v)) for k, v in outputs.items()}, "energy_pj": outcome.stats.energy_pj,
                   "cycles": outcome.stats.cycles, "saved": a.output}
        summary.update({k: v for k, v in runner.efficiency(cm, outcome.stats).items() if k != "area"})
        if a.check:
            summary["bit_exact"] = runner.bit_exact(cm, feeds, outcome)
        if a.devices:
            summary["devices"] = _device_trials(a, cm, feeds, None, outcome)
        print(json.dumps(summary, indent=2) if a.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
        return 0 if summary.get("bit_exact", True) else 1
    x, y = load_data(a.dataset, a.split, tuple(cm.program.inputs[0].shape))
    if a.limit:
        x, y = x[:a.limit], (None if y is None else y[:a.limit])
    result = runner.evaluate(cm, x, y, check=a.check, reference=a.reference, workers=a.workers, backend=a.backend,
                             address=a.address)
    if a.devices:
        result["devices"] = _device_trials(a, cm, {cm.program.inputs[0].name: x}, y)
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        _print_report(result)
        if a.devices:
            _print_devices(result["devices"])
    if report:
        from .report import CompileView

        _write_report(report, CompileView.load(a.outdir), run=result, echo=sys.stderr if a.json else sys.stdout)
    return 0 if result["bit_exact"] in (True, None) else 1


def cmd_report(a: argparse.Namespace) -> int:
    """xbarc report OUT [-o report.html] [--run RUN.json]: one self-contained HTML report (docs/report.md)."""
    from .report import load_run, report_dir, write_report
    from .report.figures import pyplot

    check_output_file(a.output)
    pyplot()  # the extra's message before any work
    text = report_dir(a.outdir, load_run(a.run) if a.run else None)
    write_report(a.output, text)
    print(f"report: {a.output} ({len(text.encode()) / 1e6:.2f} MB)")
    return 0


def _report_path(a: argparse.Namespace, default: str) -> str | None:
    """The ``--report`` file of a command (``default`` when given without a value), checked before any work, with
    matplotlib's absence reported up front; None without ``--report``."""
    if a.report is None:
        return None
    from .report.figures import pyplot

    path = a.report or default
    check_output_file(path, "--report")
    pyplot()
    return path


def _write_report(path: str, view: Any = None, run: dict[str, Any] | None = None, search: Any = None,
                  echo: Any = None) -> None:
    """Build and write the report of a command that ran with ``--report``."""
    from .report import build_report, write_report

    text = build_report(view, run, search)
    write_report(path, text)
    print(f"report: {path} ({len(text.encode()) / 1e6:.2f} MB)", file=echo or sys.stdout)


def _add_report_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--report", nargs="?", const="", default=None, metavar="FILE",
                   help=f"also write one self-contained HTML report (docs/report.md; default file {default}; "
                        f"needs pip install 'xbarc[report]')")


def _device_trials(a: argparse.Namespace, cm: Any, feeds: dict[str, np.ndarray], labels: np.ndarray | None,
                   exact: Any = None) -> dict[str, Any]:
    """``--devices``: the trials of `runner.device_trials` against the exact run (made here if not given)."""
    from runtime.devices import load_devices

    from . import runner

    model = load_devices(a.devices)
    if a.device_seed is not None:
        model = model.with_changes(seed=a.device_seed)
    return runner.device_trials(cm, feeds, exact or runner.run(cm, feeds), model, a.trials, labels)


def _print_devices(d: dict[str, Any]) -> None:
    """The non-ideal trials' lines of the run report."""
    m = d["model"]
    print(f"\nnon-ideal devices ({m['name']}, seed {m['seed']}, {d['trials']} trials; the exact run above is "
          f"the reference):")
    if d["accuracy_mean"] is not None:
        print(f"  accuracy: {d['accuracy_mean']:.4f} +- {d['accuracy_std']:.4f} (min {d['accuracy_min']:.4f}, "
              f"max {d['accuracy_max']:.4f})")
    print(f"  agreement with the exact run: {d['agreement_with_exact_mean']:.4f} +- "
          f"{d['agreement_with_exact_std']:.4f}")
    print(f"  output change: mean |d| {d['output_mean_abs_change']:.4g}, max |d| {d['output_max_abs_change']:.4g}, "
          f"RMS {d['output_relative_rms_change']:.2%} of the exact outputs' RMS")


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


def _device_outputs(programs: list[Any]) -> list[Any]:
    """The graph outputs' locations: the program's, or in reprogramming rounds those of the rounds producing them."""
    if len(programs) == 1:
        return list(programs[0].outputs)
    names = set(programs[0].meta.get("outputs", []))
    return [loc for p in programs for loc in p.outputs if loc.name in names]


def inspect_info(outdir: str | Path, dynamic: bool = False, mvmus: bool = False,
                 prog: Any = None) -> dict[str, Any]:
    """What ``xbarc inspect OUT --json`` prints (also the report's source): totals, I/O and one row per layer from
    mapping.json and the program (``prog``: the loaded program, else loaded from ``outdir``); ``dynamic`` runs
    one all-zero input to count executed instructions, ``mvmus`` adds a row per programmed MVMU."""
    from isa.files import load_program

    from .driver import round_folder

    out = Path(outdir)
    prog = load_program(out) if prog is None else prog
    programs = [prog] + [load_program(out / round_folder(k)) for k in range(1, len(prog.meta.get("rounds", [])))]
    mapping: Any = read_json(out / "mapping.json") if (out / "mapping.json").exists() else {}
    if not isinstance(mapping, dict):
        raise XbarcError(f"{out / 'mapping.json'}: not a mapping report (a JSON object)")
    per_layer: dict[str, dict[str, Any]] = {}
    for c in (c for p in programs for c in p.cores):
        for ins in c.instrs:
            entry = per_layer.setdefault(ins.node or "-", {"static_instructions": 0})
            entry["static_instructions"] += 1
    if dynamic:  # execute one all-zero input to count executed instructions (loops run their full trip)
        from runtime import Machine
        from runtime.rounds import run_rounds

        zeros = {loc.name: np.zeros((1, loc.length), dtype=np.int64) for loc in prog.inputs}
        stats = (run_rounds(programs, zeros, joins=prog.meta.get("joins")) if len(programs) > 1
                 else Machine(prog, once=True).run(zeros)).stats
        for name, row in stats.per_layer.items():
            per_layer.setdefault(name, {"static_instructions": 0})["dynamic_instructions"] = row["instructions"]
    layers = []
    for lay in mapping.get("layers", []):
        layers.append(lay | per_layer.get(lay["layer"], {}))
    for name, row in per_layer.items():  # vector ops and transfers have no mapping row
        if name not in {lay["layer"] for lay in layers}:
            layers.append({"layer": name} | row)
    info = {"crossbars": mapping.get("crossbars"), "mvmus": mapping.get("mvmus"), "tiles": mapping.get("tiles"),
            "cores": len({(c.tile, c.core) for p in programs for c in p.cores}),
            "static_instructions": sum(p.static_instructions for p in programs),
            "dynamic_instructions": sum(x.get("dynamic_instructions", 0) for x in per_layer.values()) or None,
            "utilization": mapping.get("utilization"), "hardware": prog.hw.name,
            "inputs": [vars(i) | {"shape": list(i.shape)} for i in prog.inputs],
            "outputs": [vars(o) | {"shape": list(o.shape)} for o in _device_outputs(programs)], "layers": layers}
    if mvmus:
        info["mvmu_images"] = _mvmu_rows(prog)
    if prog.meta.get("rounds"):
        info["rounds"] = prog.meta["rounds"]
    info["area"] = _program_area(prog)
    return info


def cmd_inspect(a: argparse.Namespace) -> int:
    """xbarc inspect OUT."""
    out = Path(a.outdir)
    info = inspect_info(out, a.dynamic, a.mvmus)
    if a.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{out}: {info['static_instructions']} instructions on {info['cores']} cores, {info['tiles']} tiles, "
          f"{info['crossbars']} crossbars ({info['mvmus']} MVMUs, utilization {info['utilization'] or 0:.1%})")
    rows = [[lay["layer"], lay.get("mvmus", "-"), lay.get("crossbars", "-"), lay.get("steps", "-"),
             lay.get("cores", "-"), f"{lay['utilization']:.1%}" if "utilization" in lay else "-",
             f"{lay['cell_utilization']:.1%}" if "cell_utilization" in lay else "-",
             lay.get("static_instructions", 0), lay.get("dynamic_instructions", "-")] for lay in info["layers"]]
    print(_table(rows, ["layer", "MVMUs", "crossbars", "steps", "cores", "block util", "cell util", "static instr",
                        "dynamic instr"]))
    if info.get("rounds"):
        rows = [[r["round"], " ".join(r["ops"]), r["tiles"], r["mvmus"], r["crossbars"], f"{r['cells_written']:,}",
                 " ".join(r["outputs"])] for r in info["rounds"]]
        print(f"\n{len(rows)} reprogramming rounds (each programs its crossbars, then runs over the whole batch; "
              f"round k >= 1 in {out}/roundk):")
        print(_table(rows, ["round", "ops", "tiles", "MVMUs", "crossbars", "cells written", "spills"]))
    _print_area(info["area"])
    if a.mvmus:
        keys = ["mvmu", "node", "rows", "cols", "slices", "encoding", "live_lines", "crossbars", "steps",
                "conversions_per_digit"]
        print("\nper MVMU (from image.npz; conversions per input digit before SKIP):")
        print(_table([[m[k] for k in keys] for m in info["mvmu_images"]], keys))
    return 0


def _program_area(prog: Any) -> dict[str, Any]:
    """The area block of `xbarc inspect`: the chip provisioned and what the program uses (`isa.area`)."""
    from isa.area import area_report

    return area_report(prog)


def _print_area(area: dict[str, Any]) -> None:
    """Area per component (provisioned and used) and per layer, the ADC area the chosen resolutions saved, and
    the efficiencies when the block has them."""
    prov, used = area["provisioned"], area["used"]
    print(f"\narea at {used['node_nm']:g} nm: {used['total_mm2']:.4f} mm^2 used ({used['tiles']} tiles, "
          f"{used['cores']} cores, {used['mvmus']} MVMUs, {used['crossbars']} crossbars) of "
          f"{prov['total_mm2']:.2f} mm^2 provisioned; lower ADC resolutions saved "
          f"{used['adc_saved_um2'] / 1e6:.4f} mm^2")
    if "area_efficiency" in area:
        print(f"area efficiency: {area['area_efficiency']:.4g} inferences/s/mm^2 of the used area "
              f"({area['area_efficiency_provisioned']:.4g} of the provisioned chip)   energy efficiency: "
              f"{area.get('energy_efficiency', 0):.4g} inferences/J")
    rows = [[k, f"{used['per_component_um2'][k] / 1e6:.4f}", f"{v / 1e6:.3f}"]
            for k, v in prov["per_component_um2"].items() if v or used["per_component_um2"].get(k)]
    print(_table(rows, ["component", "used mm^2", "provisioned mm^2"]))
    rows = [[k, f"{v['total_um2'] / 1e6:.4f}", f"{v.get('crossbar', 0) / 1e6:.5f}", f"{v.get('adc', 0) / 1e6:.4f}",
             f"{v['adc_saved_um2'] / 1e6:.4f}"] for k, v in used["per_layer_um2"].items()]
    if rows:
        print(_table(rows, ["layer (MVMUs)", "area mm^2", "crossbar", "adc", "adc saved"]))


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


def _parse_percent(text: str) -> float:
    t = text.strip()
    if not t.endswith("%"):
        return FRACTION(t)
    try:
        pct = float(t[:-1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction (0.01) or a percentage (1%), got {text!r}") from None
    if not math.isfinite(pct) or not 0 <= pct <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage in [0%, 100%], got {text!r}")
    return pct / 100


POSITIVE, NONNEG = _int_at_least(1), _int_at_least(0)
FRACTION, OPEN_FRACTION = _float_in(0.0, 1.0), _float_in(0.0, 1.0, lo_open=True)


PERCENT = _parse_percent
PERCENT.__name__ = "percentage"
NONNEG_FLOAT = _float_in(0.0, math.inf)
def _input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    from .driver import parse_input_shape

    return parse_input_shape(text)


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> (1, 2, 4) (a search knob's values)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


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
                   help="copy each conv layer's weights N times; each copy computes a band of output rows (a layer's "
                        "own 'replicate' in the precision config overrides it)")
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
    _add_report_option(c, "report.html")
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
    se.add_argument("--workers", type=POSITIVE, default=1, help="processes evaluating configurations: this one and N - 1 "
                    "spawned workers with one BLAS thread each (the log does not depend on N)")
    se.add_argument("--rl", action="append", default=[], metavar="KEY=VALUE",
                    help="override an actor-critic hyperparameter (docs/search.md), e.g. --rl lr=0.01")
    se.add_argument("--max-drop", type=PERCENT, default=0.01, metavar="DROP",
                    help="accuracy drop allowed against the float model, e.g. 1%% or 0.01 (default 1%%): the chosen "
                         "config's upper confidence bound on the selection split must meet it")
    se.add_argument("--confidence", type=OPEN_FRACTION, default=0.95,
                    help="one-sided confidence of that bound (default 0.95)")
    se.add_argument("--search-split", default="fit", help="split whose images score the reward (default fit)")
    se.add_argument("--search-images", type=NONNEG, default=512, help="first N of them (0: all; default 512)")
    se.add_argument("--select-split", default="val",
                    help="held-out split the final choice is made on, never seen by the reward (default val); "
                         "several joined by commas, e.g. val,fit: the search split's images past --search-images")
    se.add_argument("--select-images", type=NONNEG, default=0, help="first N of them (0: all)")
    se.add_argument("--select-correction", choices=["none", "bonferroni"], default="none",
                    help="bonferroni: the choice's bound holds at --confidence for every configuration compared "
                         "on the selection split at once (the cheapest passing is then not the luckiest; needs "
                         "more selection images, e.g. --select-split val,fit); default none"),
    se.add_argument("--devices", default=None, metavar="PRESET|FILE.json",
                    help="score candidates' accuracy on the runtime under this device model (robust precision "
                         "search, docs/devices.md; slower: each candidate is compiled and run)")
    se.add_argument("--device-trials", type=POSITIVE, default=3, help="with --devices: seeded trials averaged")
    se.add_argument("--cost", default="energy=0.5,latency=0.5", metavar="TERM=W,...",
                    help="the hardware objective: weighted cost terms over the 16-bit baseline's "
                         "(energy, latency, analytic, area: the chip area the mapping uses, docs/cost-model.md)")
    se.add_argument("--replicas", type=_int_list, default=(1,), metavar="N,N,...",
                    help="search conv replication per layer over these copy counts, e.g. 1,2,4,8 (default 1: "
                         "not searched); the chip's tiles bound it")
    se.add_argument("--narrow", type=_int_list, default=(0,), metavar="B,B,...",
                    help="search, for varied layers, how many bits narrower the least important half of the "
                         "channels is, e.g. 0,1,2 (default 0: not searched)")
    se.add_argument("--test-images", type=NONNEG, default=0, help="test images for the final check (0: all)")
    se.add_argument("--measure-front", type=NONNEG, default=3,
                    help="also run the first N Pareto points on the runtime for the summary (default 3)")
    se.add_argument("--mapping", default="spatial", choices=["naive", "spatial", "temporal"],
                    help="the mapping whose energy and latency the search optimizes (compile's default: spatial)")
    se.add_argument("--backend", default="process", choices=["process", "ray"],
                    help="where candidates are evaluated: --workers processes (default) or Ray actors")
    se.add_argument("--address", default=None, help="with --backend ray: a running Ray cluster to join")
    se.add_argument("--cache", default=None, metavar="FILE",
                    help="SQLite evaluation cache to read and extend (default OUT/evaluations.sqlite); share it "
                         "between searches of the same model to reuse evaluations")
    se.add_argument("--resume", action="store_true",
                    help="continue the interrupted search in OUT (same settings) to the same result")
    _add_report_option(se, "OUT/report.html")
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
    r.add_argument("--reference", action="store_true",
                   help="interpret one instruction at a time (default: static loops run all iterations at once; "
                        "same outputs and counters)")
    r.add_argument("--workers", type=POSITIVE, default=1,
                   help="processes to shard the batch over, one BLAS thread each (same outputs and counters)")
    r.add_argument("--backend", default="process", choices=["process", "ray"],
                   help="where the --workers shards run: local processes, or Ray tasks (the ray extra; same "
                        "outputs and counters)")
    r.add_argument("--address", default=None, help="with --backend ray: a running Ray cluster to join")
    r.add_argument("--json", action="store_true")
    r.add_argument("--devices", default=None, metavar="PRESET|FILE.json",
                   help="also run on non-ideal devices (docs/devices.md): a preset (ideal, reram-wan2022, "
                        "reram-saf-chen2015, pcm-joshi2020) or a JSON file of device fields; the exact run stays "
                        "the reference and --check still compares it with the functional model")
    r.add_argument("--trials", type=POSITIVE, default=10, help="with --devices: seeded trials (default 10)")
    r.add_argument("--device-seed", type=NONNEG, default=None, help="with --devices: override the model's seed")
    _add_report_option(r, "report.html")
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
    rp = command("report", help="one self-contained HTML report of a compiled output or a search's output")
    rp.add_argument("outdir", help="a compiled output directory (xbarc compile -o) or a search's (xbarc search -o)")
    rp.add_argument("-o", "--output", default="report.html", help="the HTML file (default report.html)")
    rp.add_argument("--run", default=None, metavar="RUN.json",
                    help="the JSON of `xbarc run OUT --dataset D --json`, for the run's figures")
    rp.set_defaults(fn=cmd_report)
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
