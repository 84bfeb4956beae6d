"""Quantization health: what a chosen precision does to a layer that the user should hear about at compile time.

A precision config can be valid and still destroy a layer: one outlier weight (1e30, or a badly exported scale)
sets Q(w_bits, w_frac) so that every other weight rounds to 0; weights, a bias or activations beyond the range
their format can reach (fraction bits have limits) saturate. The program then runs bit-exactly and gives
meaningless outputs. `quantization_warnings` names such layers so the CLI
prints them (``xbarc compile: warning: ...``) and the run repeats them; it changes nothing.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from .precision import LayerPrecision

LOST_FRACTION = 0.5  # warn when more than this share of a layer's nonzero weights quantize to 0


def quantization_warnings(graph: Graph, prec: dict[str, LayerPrecision], weights: dict[str, np.ndarray],
                          ranges: dict[str, float] | None = None,
                          formats: dict[str, tuple[int, int]] | None = None) -> list[str]:
    """One message per crossbar layer whose quantized weights or bias lose most of the float layer, and per
    tensor whose calibrated range (``ranges``: largest magnitude) exceeds its format (``formats``: (bits, frac))
    by more than a factor of two (the formats' fraction bits have limits: such values saturate)."""
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
    return out
