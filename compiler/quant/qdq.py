"""``--precision qdq``: the precision config that honours a QDQ model's own quantizers (`frontend.qdq`).

Format rule (normative text in docs/semantics.md, rule QDQ). A quantizer of scale s, zero point z and integer
type of n bits (signed: [-2^(n-1), 2^(n-1)-1], unsigned: [0, 2^n-1]) clips to [lo, hi] = [(qmin-z) s, (qmax-z) s]:

- bits: n when the type is signed and z = 0 (the grid is the format's), else n + 1 (unsigned values, or a
  shifted range, in a signed format one bit wider: uint8 with z = 0 is Q(9, f); int8 with z = -128 is [0, 255 s]);
- fraction: s = 2^-f exactly (a power of two) gives f; any other scale gives the finest f whose range holds the
  quantizer's to within one of its steps ((2^(b-1) - 1) 2^-f >= hi - s and 2^(b-1) 2^-f >= -lo - s; for weights, that of the
  layer's largest |weight| or one finer, whichever has the smaller RMS error: a few large weights may clip), so the step 2^-f is within a factor 2 of s (uint8 1/255 -> 2^-8, not 2^-7); the
  relative change of the step (2^-f / s - 1) and the clip range that results are reported per layer.

Weights: int8 (symmetric, z = 0) -> w_bits 8 (the crossbar clips to +-127: a -128 is reported). Per-channel
scales (``axis``) along the output channels that are all powers of two 2^-f_c become ``w_scheme: "varied"``:
every channel uniform at 8 bits on the common grid Q(8 + max f_c - min f_c, max f_c) (exact) when that width fits
the chip; other per-channel scales get the layer's widest format (one Q(8, f) for all channels, f as for a
non-power-of-two) and the weights' relative RMS error is reported. A layer's input format comes from the quantizer of the tensor it
reads; its accumulator is 32 bits with the calibrated fraction (the products are exact there), and ADCs are full
resolution. Every layer's line (exact, or its step change and weight RMS error) goes to the compile warnings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from isa.errors import ConfigError
from isa.hardware import HardwareConfig

from ..frontend.qdq import QdqInfo, Quantizer
from ..ir import Graph, Op
from .precision import frac_for
from .precision_schema import FRAC_RANGE

ACC_BITS = 32
QDQ = "qdq"  # the precision name: the model's own quantization


def pow2_frac(scale: float) -> int | None:
    """f with scale == 2^-f exactly, else None."""
    m, e = math.frexp(scale)
    return 1 - e if m == 0.5 else None


def act_format(q: Quantizer) -> tuple[int, int, bool]:
    """(bits, frac, exact) of an activation quantizer (module docstring)."""
    z = int(q.zero_point[0])
    bits = q.bits if q.signed and z == 0 else q.bits + 1
    lo, hi = q.bounds()
    f = pow2_frac(float(q.scale[0]))
    if f is not None:
        return bits, f, True
    s = float(q.scale[0])
    f = frac_for(hi - s, bits) if hi - s > 0 else FRAC_RANGE[1]
    if -lo - s > 0:  # the negative side reaches -2^(b-1) steps
        f = min(f, max(FRAC_RANGE[0], math.floor(math.log2((1 << (bits - 1)) / (-lo - s)))))
    return bits, f, False


def weight_format(q: Quantizer, w: np.ndarray) -> tuple[int, int, bool]:
    """(bits, frac, exact) of a weight quantizer for the layer's float weights ``w``."""
    bits = q.bits if q.signed and not q.zero_point.any() else q.bits + 1
    fracs = {pow2_frac(float(s)) for s in q.scale}
    if len(fracs) == 1 and None not in fracs:
        f = fracs.pop()
        assert f is not None
        return bits, f, True
    f = frac_for(float(np.abs(w).max()) if w.size else 0.0, bits)
    return bits, min((f, f + 1), key=lambda c: weight_rms_error(w, bits, c)), False


def weight_rms_error(w: np.ndarray, bits: int, frac: int) -> float:
    """Relative RMS error of ``w`` quantized to Q(bits, frac), clipped symmetric (rule WEIGHTS)."""
    top = (1 << (bits - 1)) - 1
    q = np.clip(np.floor(w * 2.0 ** frac + 0.5), -top, top) / 2.0 ** frac
    norm = float(np.sqrt(np.mean(w ** 2))) if w.size else 0.0
    return float(np.sqrt(np.mean((q - w) ** 2))) / norm if norm else 0.0


def _step(scale: float, frac: int) -> str:
    return f"step 2^{-frac} for scale {scale:.6g} ({2.0 ** -frac / scale - 1:+.1%})"


def _varied_fits(q: Quantizer, hw: HardwareConfig | None) -> bool:
    """Per-output-channel power-of-two scales whose common grid fits the chip's weight width."""
    if not (q.per_channel and q.per_output and q.signed and not q.zero_point.any()):
        return False
    fracs = [pow2_frac(float(s)) for s in q.scale]
    if None in fracs:
        return False
    width = q.bits + max(f for f in fracs if f is not None) - min(f for f in fracs if f is not None)
    return width <= (hw.max_weight_bits if hw is not None else 16)


def weight_rms_error_varied(op: Op, spec: dict[str, Any]) -> float:
    """Relative RMS error of a layer's weights under a varied ``spec`` (rule VARIED)."""
    from .functional import quantize_layer
    from .precision import LayerPrecision

    w = np.asarray(op.params["weight"], dtype=np.float64)
    p = LayerPrecision(spec["w_bits"], spec["w_frac"], 8, 0, ACC_BITS, 0, 0, w_scheme="varied",
                       w_channels=tuple(spec["w_channels"]))
    q = quantize_layer(op, p).weight / 2.0 ** spec["w_frac"]
    norm = float(np.sqrt(np.mean(w ** 2))) if w.size else 0.0
    return float(np.sqrt(np.mean((q - w) ** 2))) / norm if norm else 0.0


def qdq_config(g: Graph, hw: HardwareConfig | None = None) -> tuple[dict[str, Any], list[str]]:
    """The precision config of a QDQ model's own quantization and one report line per layer (and per note of the
    frontend). Per-output-channel power-of-two weight scales become the ``varied`` scheme (uniform per channel on
    a common grid: exact) when the grid fits ``hw``'s weight width. ConfigError when the model has no Q/DQ
    nodes."""
    info: QdqInfo | None = g.qdq
    if not info:
        raise ConfigError("precision 'qdq' (the model's own quantization) needs a model with QuantizeLinear/"
                          "DequantizeLinear nodes; this one has none (use a preset: 16bit, 8bit, 4bit, puma)")
    layers: dict[str, dict[str, Any]] = {}
    report = [f"qdq: {n}" for n in info.notes]
    for op in g.crossbar_ops():
        spec: dict[str, Any] = {"acc_bits": ACC_BITS}
        parts = []
        w = np.asarray(op.params["weight"], dtype=np.float64)
        wq = info.weights.get(op.name)
        if wq is None:
            spec |= {"w_bits": 8}
            parts.append("no weight quantizer: weights Q(8, .) from their range")
        elif _varied_fits(wq, hw):
            fracs = [pow2_frac(float(sc)) for sc in wq.scale]
            top, low = max(f for f in fracs if f is not None), min(f for f in fracs if f is not None)
            spec |= {"w_bits": wq.bits + top - low, "w_frac": top, "w_scheme": "varied",
                     "w_channels": [{"scheme": "uniform", "bits": wq.bits}] * w.shape[1]}
            rms = weight_rms_error_varied(op, spec)
            parts.append(f"weights per-channel steps 2^-{top} .. 2^-{low}: varied, uniform {wq.bits} bits per "
                         f"channel on Q({wq.bits + top - low}, {top}) " + ("exact" if not rms else
                                                                          f"RMS error {rms:.2%}"))
        else:
            bits, frac, exact = weight_format(wq, w)
            spec |= {"w_bits": bits, "w_frac": frac}
            rms = weight_rms_error(w, bits, frac)
            how = "per-channel scales, widest format" if wq.per_channel else _step(float(wq.scale[0]), frac)
            clipped = int((np.abs(np.floor(w * 2.0 ** frac + 0.5)) > (1 << (bits - 1)) - 1).sum())
            parts.append(f"weights Q({bits}, {frac}) " + ("exact" if exact and not rms else
                                                            f"{how}, RMS error {rms:.2%}")
                         + (f", {clipped} weight(s) saturate at +-(2^{bits - 1}-1) steps" if clipped else ""))
        aq = info.acts.get(op.inputs[0])
        if aq is None:
            spec |= {"in_bits": 8}
            parts.append(f"no quantizer on input '{op.inputs[0]}': Q(8, .) from its calibrated range")
        else:
            bits, frac, exact = act_format(aq)
            spec |= {"in_bits": bits, "in_frac": frac}
            lo, hi = aq.bounds()
            top = ((1 << (bits - 1)) - 1) / 2.0 ** frac
            bottom = 0.0 if lo == 0.0 else -(top + 2.0 ** -frac)  # lo = 0: a Relu (frontend.qdq)
            clip = "" if math.isclose(hi, top) and lo == bottom else \
                f"; clip [{lo:.4g}, {hi:.4g}] becomes [{bottom:.4g}, {top:.4g}]"
            parts.append(f"input Q({bits}, {frac}) " + ("exact" if exact and not clip else
                                                         _step(float(aq.scale[0]), frac)) + clip)
        layers[op.name] = spec
        report.append(f"qdq: layer '{op.name}': " + "; ".join(parts))
    return {"preset": "8bit", "layers": layers}, report
