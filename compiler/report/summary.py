"""The summary section: model, chip, per-layer precision and mapping figures, and the run's headline numbers."""

from __future__ import annotations

from typing import Any

from . import page

PREC_HEADER = ["layer", "w bits", "w frac", "in bits", "in frac", "acc bits", "acc frac", "ADC bits", "w enc",
               "in enc", "skip", "scheme", "MVMUs", "crossbars", "cores", "tiles"]
PREC_KEYS = ["layer", "w_bits", "w_frac", "in_bits", "in_frac", "acc_bits", "acc_frac", "adc_bits", "w_enc",
             "in_enc", "skip", "w_scheme", "mvmus", "crossbars", "cores", "tiles"]
RUN_FACTS = (("images", "images"), ("accuracy", "accuracy (xbarc runtime)"),
             ("reference_accuracy", "accuracy (onnxruntime float)"), ("agreement", "agreement with onnxruntime"),
             ("max_abs_error", "max |output error|"), ("bit_exact", "bit-exact vs functional model"),
             ("energy_pj", "energy per inference (pJ)"), ("cycles", "cycles per inference (latency)"),
             ("pipeline_interval_cycles", "pipelined interval (cycles)"),
             ("dynamic_instructions", "dynamic instructions"))


def _scheme(opts: dict[str, Any]) -> str:
    scheme = str(opts.get("w_scheme", "uniform"))
    channels = opts.get("w_channels") or []
    if scheme == "varied" and channels:
        return "varied: " + " ".join(f"{c.get('scheme', '?')}{c.get('bits', '')}" for c in channels)
    return scheme


def precision_rows(view: Any) -> list[dict[str, Any]]:
    """One row per crossbar layer: its precision options and where the mapping put it."""
    mapped = {lay["layer"]: lay for lay in view.layer_rows()}
    rows = []
    for name, opts in view.precision.items():
        lay = mapped.get(name, {})
        rows.append({"layer": name} | {k: opts.get(k) for k in PREC_KEYS[1:11]} | {"w_scheme": _scheme(opts)}
                    | {"mvmus": lay.get("mvmus"), "crossbars": lay.get("crossbars"), "cores": lay.get("cores"),
                       "tiles": " ".join(map(str, lay.get("tiles", [])))})
    return rows


def summary_section(view: Any, run: dict[str, Any] | None) -> str:
    """The summary of a `CompileView` (and run)."""
    info, prog = view.info, view.program
    facts = [("model", "model", view.model), ("hardware", "hardware preset", info["hardware"]),
             ("mapping", "mapping", view.mapping.get("mapping")), ("crossbars", "crossbars", info["crossbars"]),
             ("mvmus", "MVMUs", info["mvmus"]), ("cores", "cores", info["cores"]), ("tiles", "tiles", info["tiles"]),
             ("static_instructions", "static instructions", info["static_instructions"]),
             ("utilization", "block utilization", info["utilization"]),
             ("cell_utilization", "cell utilization", view.mapping.get("cell_utilization")),
             ("calibration", "calibration", prog.meta.get("calibration", ""))]
    parts = ['<div class="row">', page.pairs("summary", facts)]
    if run is not None:
        parts.append(page.pairs("run", [(k, label, run.get(k)) for k, label in RUN_FACTS]))
    parts.append("</div>")
    warnings = prog.meta.get("warnings") or []
    if warnings:
        parts.append(page.note("compile warnings: " + "; ".join(map(str, warnings))))
    parts += ["<h3>per-layer precision and mapping</h3>",
              page.table("precision", PREC_HEADER, PREC_KEYS, precision_rows(view))]
    return "".join(parts)
