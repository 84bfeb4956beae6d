"""The cost model's latency: a pixel-level pipeline of the graph's layers, replica-aware (docs/search.md).

Every op's core (one per replica of a replicated conv) computes its output pixels in raster order, one every
``per_pixel`` cycles (its MVM step plus its share of the other busy work). Output pixel k of a band can start
when pixel k - 1 is done and every input pixel it reads has been produced: a conv or pool reads its window
(kernel, stride, padding, dilation), an element-wise op the same pixel, anything else (a dense layer, a
reshape) all of its inputs. So a band's pixel ends are E[k] = max(E[k-1], need[k]) + per_pixel, i.e.
E = per_pixel (k + 1) + cummax(need - per_pixel k), one vectorized pass per band. Replicas of a conv run
their bands of output rows side by side; a consumer then finds the later bands' rows ready at once and runs
through them at its own pace, which is where replication's saving stops.

The model is exact only up to what it leaves out (the pixel order inside an MVM step, the stores' latency,
synchronization): `CostModel` adds each op's offset measured on the 16-bit baseline (measured end - modelled
end), so the baseline is reproduced and a candidate moves by what its step times and replicas change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..ir import Graph, Op

Band = tuple[int, int] | None  # output rows [lo, hi) of one replica; None: all rows


@dataclass(frozen=True)
class OpWork:
    """What one op costs in time: ``other`` busy cycles outside MVMs (all replicas together), the MVM ``step``
    (cycles of one execution; 0 for a vector op) and ``pixels`` executions per inference (1 for a dense op)."""

    other: float
    step: float
    pixels: int

    def per_pixel(self) -> float:
        """Cycles one output pixel takes on its core."""
        return self.other / max(1, self.pixels) + self.step


def _spatial(g: Graph, name: str) -> tuple[int, int] | None:
    shape = g.values[name].shape
    return (int(shape[1]), int(shape[2])) if len(shape) == 3 else None


def _window_need(ready: np.ndarray, out_hw: tuple[int, int], attrs: dict) -> np.ndarray:
    """Per output pixel, the latest ready time over its input window (padding reads nothing)."""
    kh, kw = attrs["kernel"]
    sh, sw = attrs.get("strides", (1, 1))
    dh, dw = attrs.get("dilations", (1, 1))
    pt, pl = attrs.get("pads", (0, 0, 0, 0))[:2]
    h, w = ready.shape
    oi, oj = np.arange(out_hw[0]) * sh - pt, np.arange(out_hw[1]) * sw - pl
    need = np.full(out_hw, -np.inf)
    for a in range(kh):
        rows = oi + a * dh
        rok = (rows >= 0) & (rows < h)
        for b in range(kw):
            cols = oj + b * dw
            cok = (cols >= 0) & (cols < w)
            if rok.any() and cok.any():
                part = np.full(out_hw, -np.inf)
                part[np.ix_(rok, cok)] = ready[np.ix_(rows[rok], cols[cok])]
                need = np.maximum(need, part)
    return np.where(np.isfinite(need), need, 0.0)


class PipelineModel:
    """Pixel-level pipeline of one graph (module docstring); `ends` gives every op's modelled end."""

    def __init__(self, g: Graph) -> None:
        self.g = g

    def _need(self, op: Op, ready: dict[str, np.ndarray | float]) -> np.ndarray | float:
        """When each output pixel's inputs are ready (an array of the output's H x W, or one time)."""
        g, out = self.g, _spatial(self.g, op.outputs[0])
        srcs = [(ready.get(i, 0.0), _spatial(g, i)) for i in op.inputs if i in g.values]
        if out is None:
            return max((float(np.max(r)) for r, _ in srcs), default=0.0)
        need = np.zeros(out)
        attrs = op.attrs
        for r, hw_in in srcs:
            if isinstance(r, np.ndarray) and hw_in is not None and "kernel" in attrs:
                need = np.maximum(need, _window_need(r, out, attrs))
            elif isinstance(r, np.ndarray) and hw_in == out:
                need = np.maximum(need, r)
            else:
                need = np.maximum(need, float(np.max(r)))
        return need

    def ends(self, work: Mapping[str, OpWork], bands: Mapping[str, Sequence[Band]]) -> dict[str, float]:
        """Each op's modelled end (cycles) given its ``work`` (ops missing there take no time) and the row
        ``bands`` of its replicas (missing: one band)."""
        ready: dict[str, np.ndarray | float] = {}
        ends: dict[str, float] = {}
        for op in self.g.ops:
            w = work.get(op.name)
            if w is None:
                continue
            need = self._need(op, ready)
            r = w.per_pixel()
            if not isinstance(need, np.ndarray):  # one output (a dense layer): all of it after the last input
                ends[op.name] = need + r * max(1, w.pixels)
                ready[op.outputs[0]] = ends[op.name]
                continue
            done = np.zeros_like(need)
            for band in bands.get(op.name, [None]):
                lo, hi = band if band is not None else (0, need.shape[0])
                flat = need[lo:hi].ravel()
                k = np.arange(len(flat), dtype=np.float64)
                done[lo:hi] = (r * (k + 1) + np.maximum.accumulate(flat - r * k)).reshape(hi - lo, -1)
            ends[op.name] = float(done.max())
            ready[op.outputs[0]] = done
        return ends
