"""ADC resolution from data: the distribution of bit-line values per layer and the smallest resolution that
covers a chosen fraction of them (seeds 000 and 002: around 99 % of bit-line outputs fit 6 bits)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa import numerics as nx
from isa.hardware import HardwareConfig

from ..ir import Graph
from . import functional
from .formats import Format
from .precision import LayerPrecision


@dataclass
class BitlineProfile:
    """Histogram of one layer's bit-line values (value -> count) and the coverage of each signed resolution."""

    layer: str
    counts: dict[int, int]

    @property
    def total(self) -> int:
        """Bit-line values seen."""
        return sum(self.counts.values())

    def coverage(self, bits: int) -> float:
        """Fraction of values inside a signed ``bits``-bit converter's range (not clipped)."""
        lo, hi = nx.qmin(bits), nx.qmax(bits)
        inside = sum(c for v, c in self.counts.items() if lo <= v <= hi)
        return inside / max(1, self.total)

    def suggest(self, fraction: float, max_bits: int) -> int:
        """The smallest resolution covering ``fraction`` of the values."""
        for b in range(1, max_bits + 1):
            if self.coverage(b) >= fraction:
                return b
        return max_bits


def profile_bitlines(g: Graph, prec: dict[str, LayerPrecision], inputs: dict[str, np.ndarray],
                     hw: HardwareConfig, fmt: dict[str, Format]) -> list[BitlineProfile]:
    """Run the functional model on quantized ``inputs`` (ONNX layout) and histogram every crossbar layer's
    bit-line values (every input digit, slice and column of every crossbar block)."""
    counts: dict[str, dict[int, int]] = {op.name: {} for op in g.crossbar_ops()}

    def probe(layer: str, v: np.ndarray) -> None:
        vals, cnt = np.unique(v.astype(np.int64), return_counts=True)
        hist = counts[layer]
        for a, c in zip(vals.tolist(), cnt.tolist()):
            hist[a] = hist.get(a, 0) + c

    functional.set_bitline_probe(probe)
    try:
        functional.run_functional(g, prec, inputs, hw, fmt)
    finally:
        functional.set_bitline_probe(None)
    return [BitlineProfile(name, hist) for name, hist in counts.items()]
