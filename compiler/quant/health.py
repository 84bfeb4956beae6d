"""Quantization health: what a chosen precision does to a layer that the user should hear about at compile time.

A precision config can be valid and still destroy a layer: one outlier weight (1e30, or a badly exported scale)
sets Q(w_bits, w_frac) so that every other weight rounds to 0; a bias beyond the accumulator's range saturates. The
program then runs bit-exactly and gives meaningless outputs. `quantization_warnings` names such layers so the CLI
prints them (``xbarc compile: warning: ...``) and the run repeats them; it changes nothing.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from .precision import LayerPrecision

LOST_FRACTION = 0.5  # warn when more than this share of a layer's nonzero weights quantize to 0


def quantization_warnings(graph: Graph, prec: dict[str, LayerPrecision],
                          weights: dict[str, np.ndarray]) -> list[str]:
    """One message per crossbar layer whose quantized weights or bias lose most of the float layer."""
    out = []
    for op in graph.crossbar_ops():
        p, w, q = prec[op.name], np.asarray(op.params["weight"]), weights[op.name]
        nonzero = w != 0
        fmt = f"Q({p.w_bits}, {p.w_frac})"
        if nonzero.any() and not q.any():
            out.append(f"layer '{op.name}': every weight quantizes to 0 in {fmt} (largest |w| {np.abs(w).max():.3g});"
                       f" the layer outputs only its bias")
        elif nonzero.any():
            lost = float((nonzero & (q == 0)).sum() / nonzero.sum())
            if lost > LOST_FRACTION:
                out.append(f"layer '{op.name}': {lost:.0%} of its nonzero weights quantize to 0 in {fmt}; the "
                           f"largest |w|, {np.abs(w).max():.3g}, sets the range (an outlier costs the others "
                           f"their precision)")
        b = op.params.get("bias")
        if b is not None and np.size(b):
            limit = 2.0 ** (p.acc_bits - 1 - p.acc_frac)
            worst = float(np.abs(b).max())
            if worst >= limit:
                out.append(f"layer '{op.name}': bias values up to {worst:.3g} saturate the accumulator format "
                           f"Q({p.acc_bits}, {p.acc_frac}) (range +-{limit:.3g})")
    return out
