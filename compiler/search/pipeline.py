"""The cost model's latency: a pixel-level pipeline of the graph's layers, replica-aware (docs/search.md).

Every op's core (one per replica of a replicated conv) computes its output pixels in raster order, one every
``per_pixel`` cycles (its MVM step plus its share of the other busy work). Output pixel k of a band can start
when pixel k - 1 is done and every input pixel it reads has been produced: a conv or pool reads its window
(kernel, stride, padding, dilation), an element-wise op the same pixel, anything else (a dense layer, a
reshape) all of its inputs. So a band's pixel ends are E[k] = max(E[k-1], need[k]) + per_pixel, i.e.
E = per_pixel (k + 1) + cummax(need - per_pixel k), one vectorized pass per band. Replicas of a conv run
their bands of output rows side by side; a consumer then finds the later bands' rows ready at once and runs
through them at its own pace, which is where replication's saving stops.

A tensor read on another tile is received there by a loop in the head of the receiving core (a transfer
stage: the instructions whose node is the tensor), one pixel at a time as the producer sends them; the
consumer's bands on that tile start once the whole tensor is in. What the model leaves out (the order of the
pixels inside an MVM step, memory and network latency, a dense layer's partial sums overlapping its input)
is what separates it from the runtime's clock (docs/search.md gives the measured agreement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..ir import Graph, Op

Band = tuple[int, int] | None  # output rows [lo, hi) of one replica; None: all rows


@dataclass(frozen=True)
class OpWork:
    """What one op costs in time: per band (replica) its core's busy cycles outside MVMs per output pixel
    (``other``), the MVM ``step`` (cycles of one execution; 0 for a vector op), the ``pixels`` of its output
    (1 for a dense op), its bands of output rows, the tile of each and the cycles its core spends before it
    first waits for an input (``prologue``, not in ``other``); for a one-pixel op (a dense layer) ``lead``, its
    cycles before its last wait (its first inputs load while the last are still being computed)."""

    other: tuple[float, ...]
    step: float
    pixels: int
    bands: tuple[Band, ...] = (None,)
    tiles: tuple[int, ...] = (0,)
    prologue: tuple[float, ...] = (0.0,)
    lead: tuple[float, ...] = (0.0,)


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


def _stream(need: np.ndarray, per_pixel: float) -> np.ndarray:
    """Ends of pixels computed one per ``per_pixel`` cycles in raster order, pixel k not before ``need[k]``:
    E[k] = max(E[k-1], need[k]) + per_pixel = per_pixel (k + 1) + cummax(need - per_pixel k)."""
    flat = need.ravel()
    k = np.arange(len(flat), dtype=np.float64)
    return (per_pixel * (k + 1) + np.maximum.accumulate(flat - per_pixel * k)).reshape(need.shape)


def _received(ready: np.ndarray | float, busy: float) -> float:
    """When a receiving core has the whole of a tensor whose pixels are produced at ``ready``: it receives
    them in order (``busy`` cycles in all), each once it is produced."""
    if not isinstance(ready, np.ndarray):
        return float(ready) + busy
    return float(_stream(ready, busy / ready.size).max())


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

    def ends(self, work: Mapping[str, OpWork], stages: Mapping[str, float]) -> dict[str, float]:
        """Each op's modelled end (cycles) given its ``work`` (ops missing there take no time) and the transfer
        ``stages`` (tensor -> busy cycles of the loop that receives it on another tile; an op's band on a tile
        its producer did not write it on starts once it is all received)."""
        ready: dict[str, np.ndarray | float] = {}
        home: dict[str, set[int]] = {}  # tensor -> the tiles its producer wrote it on
        ends: dict[str, float] = {}
        for op in self.g.ops:
            w = work.get(op.name)
            if w is None:
                continue
            need = self._need(op, ready)
            far = max((_received(ready.get(t, 0.0), stages[t]) for t in op.inputs if t in stages), default=0.0)
            done: np.ndarray | float = np.zeros_like(need) if isinstance(need, np.ndarray) else 0.0
            for k, tile in enumerate(w.tiles):
                remote = any(t in stages and tile not in home.get(t, {tile}) for t in op.inputs)
                done = self._band(op, w, k, need, ready.get(op.inputs[0], 0.0), far if remote else 0.0, done)
            ends[op.name] = float(np.max(done))
            ready[op.outputs[0]] = done
            home[op.outputs[0]] = set(w.tiles)
        return ends

    @staticmethod
    def _band(op: Op, w: OpWork, k: int, need: np.ndarray | float, src: np.ndarray | float, wait: float,
              done: np.ndarray | float) -> np.ndarray | float:
        """``done`` with band ``k`` of ``op`` timed: its pixels' ends (``need``: when each pixel's inputs are
        ready, ``src`` its first input's ready times, ``wait`` a whole remote input's arrival)."""
        r, pro, lead = w.other[k] + w.step, w.prologue[k], w.lead[k]
        if not w.step and "kernel" not in op.attrs and isinstance(src, np.ndarray) and src.size > w.pixels:
            # a vector op reducing its input's pixels (global pooling): one input pixel at a time
            end = float(_stream(np.maximum(src, max(wait, pro)), r * w.pixels / src.size).max())
            return np.full_like(need, end) if isinstance(need, np.ndarray) else end
        if not isinstance(need, np.ndarray) or need.size != w.pixels:
            # one output (a dense layer), or one after T executions (a recurrent layer): what follows its last wait
            total = pro + r * max(1, w.pixels)
            end = max(total, max(float(np.max(need)), wait) + total - lead)
            return np.full_like(need, end) if isinstance(need, np.ndarray) else max(float(done), end)
        band = w.bands[k]
        lo, hi = band if band is not None else (0, need.shape[0])
        assert isinstance(done, np.ndarray)
        done[lo:hi] = _stream(np.maximum(need[lo:hi], max(wait, pro)), r)
        return done
