"""Quantization health: what a chosen precision does to a layer that the user should hear about at compile time.

A precision config can be valid and still destroy a layer: one outlier weight (1e30, or a badly exported scale)
sets Q(w_bits, w_frac) so that every other weight rounds to 0; weights, a bias or activations beyond the range
their format can reach (fraction bits have limits) saturate. The program then runs bit-exactly and gives
meaningless outputs. `quantization_warnings` names such layers so the CLI
prints them (``xbarc compile: warning: ...``) and the run repeats them; it changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..ir import Graph
from .precision import LayerPrecision

if TYPE_CHECKING:
    import onnx

    from isa.hardware import HardwareConfig

LOST_FRACTION = 0.5  # warn when more than this share of a layer's nonzero weights quantize to 0
OUTLIER_RATIO = 64  # warn when a tensor's largest value exceeds its 99th percentile this many times


def quantization_warnings(graph: Graph, prec: dict[str, LayerPrecision], weights: dict[str, np.ndarray],
                          ranges: dict[str, float] | None = None,
                          formats: dict[str, tuple[int, int]] | None = None,
                          exponents: dict[str, np.ndarray] | None = None) -> list[str]:
    """One message per crossbar layer whose quantized weights or bias lose most of the float layer, and per
    tensor whose calibrated range (``ranges``: largest magnitude) exceeds its format (``formats``: (bits, frac))
    by more than a factor of two (the formats' fraction bits have limits: such values saturate) or whose largest
    value is an outlier, `OUTLIER_RATIO` times its 99th percentile (from ``exponents``: `Ranges.exponents`), so
    that a few values set the format and the rest lose bits."""
    out = []
    for op in graph.crossbar_ops():
        p, w, q = prec[op.name], np.asarray(op.params["weight"]), weights[op.name]
        nonzero = w != 0
        fmt = f"Q({p.w_bits}, {p.w_frac})"
        top = 2.0 ** (p.w_bits - 1 - p.w_frac)
        clipped = float((np.abs(w) >= top).mean()) if w.size else 0.0
        if p.w_scheme == "uniform" and clipped > 0.01:
            out.append(f"layer '{op.name}': {clipped:.0%} of its weights saturate {fmt} (range +-{top:.3g}; "
                       f"largest |w| {np.abs(w).max():.3g})")
        if nonzero.any() and not q.any():
            out.append(f"layer '{op.name}': every weight quantizes to 0 in {fmt} (largest |w| {np.abs(w).max():.3g});"
                       f" the layer outputs only its bias")
        elif nonzero.any():
            lost = float((nonzero & (q == 0)).sum() / nonzero.sum())
            if lost > LOST_FRACTION:
                out.append(f"layer '{op.name}': {lost:.0%} of its nonzero weights quantize to 0 in {fmt} (the "
                           f"largest |w|, {np.abs(w).max():.3g}, sets the range)")
        b = op.params.get("bias")
        if b is not None and np.size(b):
            limit = 2.0 ** (p.acc_bits - 1 - p.acc_frac)
            worst = float(np.abs(b).max())
            if worst >= limit:
                out.append(f"layer '{op.name}': bias values up to {worst:.3g} saturate the accumulator format "
                           f"Q({p.acc_bits}, {p.acc_frac}) (range +-{limit:.3g})")
    for name, (bits, frac) in (formats or {}).items():
        seen = (ranges or {}).get(name)
        limit = 2.0 ** (bits - 1 - frac)
        if seen is not None and np.isfinite(seen) and seen > 2 * limit:
            out.append(f"tensor '{name}': calibrated values up to {seen:.3g} saturate its format Q({bits}, {frac}) "
                       f"(range +-{limit:.3g})")
        hist = (exponents or {}).get(name)
        if hist is not None and hist.sum() and seen:
            from .calibrate import EXP_LO

            cum = np.cumsum(hist) / hist.sum()
            p99 = 2.0 ** (int(np.searchsorted(cum, 0.99)) + EXP_LO)  # an upper bound of the 99th percentile
            if seen > OUTLIER_RATIO * p99:
                out.append(f"tensor '{name}': its largest calibrated value, {seen:.3g}, is over {OUTLIER_RATIO}x "
                           f"the 99th percentile (under {p99:.3g}); the outliers (a channel with a large offset, "
                           f"a bad scale) set Q({bits}, {frac}) and the other values lose "
                           f"{int(np.log2(seen / p99))} of its bits")
    return out


FIDELITY_IMAGES = 32   # calibration inputs the float and quantized models are compared on
MAX_REL_ERROR = 0.3    # warn above this RMS error of the device output, relative to the float output's RMS
MIN_AGREEMENT = 0.9    # ... or when fewer top-1 classes than this agree (outputs of two or more values)


def fidelity_warning(graph: Graph, prec: dict[str, LayerPrecision], fmt: dict[str, tuple[int, int]],
                     hw: "HardwareConfig", model: "onnx.ModelProto", feeds: dict[str, np.ndarray],
                     session: Any = None) -> str | None:
    """A message when the quantized model (the functional model, which the runtime equals bit for bit) is far
    from the float model (onnxruntime; ``session``: one already made of ``model``) on ``feeds`` (a few
    calibration inputs): the precision config, though valid, destroys the model. None when they are close."""
    from isa import numerics as nx

    from ..runner import reference_outputs
    from .functional import run_functional
    from .windows import from_hwc

    q = {k: nx.quantize(np.asarray(v, dtype=np.float64), *fmt[k]) for k, v in feeds.items()}
    name = graph.outputs[0]
    got = run_functional(graph, prec, q, hw, fmt)[name]
    n = len(got)
    dev = nx.dequantize(from_hwc(got, graph.values[name].shape), fmt[name][1]).reshape(n, -1)
    ext = graph.external_name(name)
    ref = reference_outputs(model, feeds, [ext], session)[ext].reshape(n, -1).astype(np.float64)
    err = float(np.sqrt(np.mean((dev - ref) ** 2)) / max(float(np.sqrt(np.mean(ref ** 2))), 1e-30))
    agree = float(np.mean(dev.argmax(axis=1) == ref.argmax(axis=1))) if ref.shape[1] > 1 else None
    if err <= MAX_REL_ERROR and (agree is None or agree >= MIN_AGREEMENT):
        return None
    top = f", top-1 agreement {agree:.0%}" if agree is not None else ""
    return (f"the quantized model is far from the float model on {n} calibration inputs: output '{ext}' differs "
            f"by {err:.0%} (RMS, relative){top}; raise the precision of the layers named above or in "
            f"precision.json")
