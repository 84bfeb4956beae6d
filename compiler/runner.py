"""Running a compiled model: quantize inputs, execute on the runtime, dequantize, evaluate the host tail, and
compare against the functional model (bit for bit) and onnxruntime (float)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from isa import numerics as nx
from isa.errors import XbarcError
from runtime import Machine, Stats
from runtime.rounds import run_rounds

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


def run(cm: CompiledModel, x: dict[str, np.ndarray]) -> RunOutcome:
    """Execute the program on a batch of float inputs."""
    if cm.rounds:
        result = run_rounds(cm.rounds, quantize_inputs(cm, x), [loc.name for loc in cm.output_locs])
    else:
        result = Machine(cm.program).run(quantize_inputs(cm, x))
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


def reference_outputs(model: onnx.ModelProto, x: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """onnxruntime's float values of tensors ``names`` (graph outputs or intermediate tensors)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    try:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: np.asarray(x[i.name], dtype=np.float32).reshape(
            [len(x[i.name])] + [d if isinstance(d, int) else -1 for d in i.shape[1:]]) for i in sess.get_inputs()}
        return dict(zip(names, sess.run(names, feeds)))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = str(e).strip().splitlines()
        raise XbarcError(f"onnxruntime, the float reference, cannot run the source model: "
                         f"{(text[0] if text else type(e).__name__)[:400]}") from None


def evaluate(cm: CompiledModel, x: np.ndarray, labels: np.ndarray | None, check: bool = True) -> dict[str, Any]:
    """Accuracy, agreement with onnxruntime, energy, cycles and (with ``check``) bit-exactness on a data set."""
    feeds = {cm.program.inputs[0].name: x}
    outcome = run(cm, feeds)
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
        "host_ops": cm.graph.host_ops,
    }
    if s.cells_written:
        report["reprogramming"] = {"batch": s.batch, "writes": s.write_summary(), "program_cycles": s.program_cycles,
                                   "rounds": s.rounds}
    return report
