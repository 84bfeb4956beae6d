"""Running a compiled model: quantize inputs, execute on the runtime, dequantize, evaluate the host tail, and
compare against the functional model (bit for bit) and onnxruntime (float)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from isa import numerics as nx
from isa.area import area_report
from isa.errors import XbarcError
from runtime import Machine, Stats
from runtime.rounds import run_rounds
from runtime.devices import DeviceModel, load_devices
from runtime.parallel import blas_threads, start_ray

from .driver import CompiledModel
from .frontend import host_eval
from .inputs import checked_feeds
from .quant import run_functional
from .quant.windows import from_hwc


@dataclass
class RunOutcome:
    """Outputs of one run: integer device outputs, their float values, host outputs and runtime stats."""

    device_int: dict[str, np.ndarray]
    device_float: dict[str, np.ndarray]
    host: dict[str, np.ndarray]
    stats: Stats


def _quantized(cm: CompiledModel, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float graph inputs -> Q(bits, frac) integers in ONNX layout (B, *shape), checked against the program."""
    feeds = checked_feeds(x, {loc.name: tuple(loc.shape) for loc in cm.program.inputs}, "input")
    return {loc.name: nx.quantize(feeds[loc.name], loc.bits, loc.frac) for loc in cm.program.inputs}


def quantize_inputs(cm: CompiledModel, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float graph inputs -> the stored words (B, length) of each input's location (border included)."""
    locs = {loc.name: loc for loc in cm.program.inputs}
    return {k: locs[k].pack(v) for k, v in _quantized(cm, x).items()}


__all__ = ["RunOutcome", "run", "evaluate", "bit_exact", "device_trials", "efficiency", "functional_outputs",
           "quantize_inputs", "reference_outputs", "load_devices", "start_ray", "blas_threads"]


def run(cm: CompiledModel, x: dict[str, np.ndarray], reference: bool = False, workers: int = 1,
        devices: DeviceModel | None = None, trial: int = 0, backend: str = "process",
        address: str | None = None) -> RunOutcome:
    """Execute the program on a batch of float inputs (``reference``: one instruction at a time; ``workers``:
    processes, or with ``backend="ray"`` Ray tasks on the cluster at ``address``, the batch is sharded over;
    all give the same outputs and counters; ``devices``: on non-ideal crossbars sampled for trial ``trial``,
    `runtime.devices`)."""
    if cm.rounds:
        if devices is not None:
            raise XbarcError("non-ideal devices (--devices) are not supported yet for a model compiled in "
                             "reprogramming rounds")
        if backend != "process":
            raise XbarcError(f"--backend {backend} is not supported yet for a model compiled in reprogramming "
                             f"rounds (use --workers)")
        result = run_rounds(cm.rounds, quantize_inputs(cm, x), [loc.name for loc in cm.output_locs],
                            cm.program.meta.get("joins"), reference=reference, workers=workers)
    else:
        result = Machine(cm.program, reference=reference, once=True).run(quantize_inputs(cm, x), workers=workers,
                                                              devices=devices, trial=trial, backend=backend,
                                                              address=address)
    dev_float, dev_int = {}, {}
    for loc in cm.output_locs:
        dev_int[loc.name] = loc.unpack(result.outputs[loc.name]).reshape(len(result.outputs[loc.name]), -1)
        dev_float[loc.name] = nx.dequantize(loc.unpack(result.outputs[loc.name]), loc.frac)
    host = host_eval(cm.host_model, dev_float) if cm.host_model is not None else {}
    return RunOutcome(dev_int, dev_float, host, result.stats)


def functional_outputs(cm: CompiledModel, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The functional model's integer device outputs, keyed by external name."""
    out = run_functional(cm.graph, cm.precision, _quantized(cm, x), cm.hw, cm.formats)
    return {cm.graph.external_name(k): from_hwc(v, cm.graph.values[k].shape).reshape(len(v), -1)
            for k, v in out.items()}


def bit_exact(cm: CompiledModel, x: dict[str, np.ndarray], outcome: RunOutcome) -> bool:
    """Whether the runtime's integer outputs equal the functional model's on every element."""
    ref = functional_outputs(cm, x)
    return all(np.array_equal(outcome.device_int[k], ref[k].reshape(outcome.device_int[k].shape)) for k in ref)


def reference_outputs(model: onnx.ModelProto, x: dict[str, np.ndarray], names: list[str],
                      session: Any = None) -> dict[str, np.ndarray]:
    """onnxruntime's float values of tensors ``names`` (graph outputs or intermediate tensors); ``session``: an
    onnxruntime session of ``model`` itself (`frontend.check_reference`), used when ``names`` are its outputs."""
    import onnxruntime as ort

    have = {o.name for o in model.graph.output}
    try:
        if session is not None and set(names) <= have:
            sess = session
        else:
            m = onnx.ModelProto()
            m.CopyFrom(model)
            for name in names:
                if name not in have:
                    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: np.asarray(x[i.name], dtype=np.float32).reshape(
            [len(x[i.name])] + [d if isinstance(d, int) else -1 for d in i.shape[1:]]) for i in sess.get_inputs()}
        return dict(zip(names, sess.run(names, feeds)))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = str(e).strip().splitlines()
        raise XbarcError(f"onnxruntime, the float reference, cannot run the source model: "
                         f"{(text[0] if text else type(e).__name__)[:400]}") from None


def evaluate(cm: CompiledModel, x: np.ndarray, labels: np.ndarray | None, check: bool = True,
             reference: bool = False, workers: int = 1, backend: str = "process",
             address: str | None = None) -> dict[str, Any]:
    """Accuracy, agreement with onnxruntime, energy, cycles and (with ``check``) bit-exactness on a data set
    (``reference``, ``workers``, ``backend``, ``address``: as `run`)."""
    feeds = {cm.program.inputs[0].name: x}
    outcome = run(cm, feeds, reference, workers, backend=backend, address=address)
    name = cm.output_locs[0].name
    logits = outcome.device_float[name].reshape(len(x), -1)
    pred = logits.argmax(axis=1)
    ref = reference_outputs(cm.model, feeds, [name])[name].reshape(len(x), -1)
    ref_pred = ref.argmax(axis=1)
    s = outcome.stats
    report: dict[str, Any] = {
        "images": int(len(x)),
        "accuracy": None if labels is None else float(np.mean(pred == labels)),
        "reference_accuracy": None if labels is None else float(np.mean(ref_pred == labels)),
        "agreement": float(np.mean(pred == ref_pred)),
        "max_abs_error": float(np.abs(logits - ref).max()),
        "energy_pj": s.energy_pj,
        "cycles": s.cycles,
        "pipeline_interval_cycles": s.pipeline_interval,
        "bit_exact": bit_exact(cm, feeds, outcome) if check else None,
        "per_layer": s.per_layer,
        "per_component": s.per_component,
        "per_instruction": s.per_instruction,
        "dynamic_instructions": s.dynamic_instructions,
        "host_ops": cm.host_ops,
        "per_core_busy": s.per_core_busy,
        "per_layer_component": s.per_layer_component,
        "timeline": s.timeline,  # busy intervals per core (runtime.stats.busy_timeline)
        "timeline_resolution": s.timeline_resolution,
        "traffic": s.traffic,  # words per inference between tiles ("S->D")
    }
    if s.cells_written:
        report["reprogramming"] = {"batch": s.batch, "writes": s.write_summary(), "program_cycles": s.program_cycles,
                                   "rounds": s.rounds}
    report.update(efficiency(cm, s))
    return report


def efficiency(cm: CompiledModel, s: Stats) -> dict[str, Any]:
    """The run's area (`isa.area.area_report`: provisioned and used, per component and layer) and its area and
    energy efficiency (inferences/s/mm^2 of the used area at the pipelined interval; inferences/J)."""
    area = area_report(cm.program, s.pipeline_interval, s.energy_pj)
    return {"area": area, "area_efficiency": area.get("area_efficiency"),
            "energy_efficiency": area.get("energy_efficiency")}


def device_trials(cm: CompiledModel, x: dict[str, np.ndarray], exact: RunOutcome, model: DeviceModel,
                  trials: int, labels: np.ndarray | None = None) -> dict[str, Any]:
    """``trials`` seeded runs on non-ideal devices against the ``exact`` outcome of the same inputs: accuracy
    (with ``labels``) and agreement of the predicted class with the exact run's (mean and standard deviation
    over the trials), and how far the first output moved from the exact one (mean and max |difference|, and
    the RMS difference over the exact outputs' RMS, averaged over the trials)."""
    name = cm.program.outputs[0].name
    ref = exact.device_float[name].reshape(len(exact.device_float[name]), -1)
    acc, agree, mean_abs, max_abs, rel = [], [], [], [], []
    for t in range(trials):
        out = run(cm, x, devices=model, trial=t).device_float[name].reshape(ref.shape)
        pred = out.argmax(axis=1)
        agree.append(float(np.mean(pred == ref.argmax(axis=1))))
        if labels is not None:
            acc.append(float(np.mean(pred == labels)))
        diff = np.abs(out - ref)
        mean_abs.append(float(diff.mean()))
        max_abs.append(float(diff.max()))
        rms = float(np.sqrt(np.mean(ref ** 2)))
        rel.append(float(np.sqrt(np.mean(diff ** 2))) / rms if rms else 0.0)
    return {"model": model.to_dict(), "trials": trials,
            "accuracy_mean": float(np.mean(acc)) if acc else None,
            "accuracy_std": float(np.std(acc)) if acc else None,
            "accuracy_min": float(np.min(acc)) if acc else None,
            "accuracy_max": float(np.max(acc)) if acc else None,
            "agreement_with_exact_mean": float(np.mean(agree)), "agreement_with_exact_std": float(np.std(agree)),
            "output_mean_abs_change": float(np.mean(mean_abs)), "output_max_abs_change": float(np.max(max_abs)),
            "output_relative_rms_change": float(np.mean(rel))}
