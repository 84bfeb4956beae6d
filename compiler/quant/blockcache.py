"""The functional model's prepared-block cache: a crossbar layer's integer weights (`quantize_layer`) and its
prepared row blocks (`prepare_block`: slices, digit steps, float matrices) kept between calls, so evaluating the
same layer again (every batch of a data set, every candidate of a search sharing the layer's precision) skips
re-quantizing and re-slicing it (10 of VGG-16's 17 s per call before).

An entry is keyed by the op, its precision, the crossbar geometry and whether a bit-line probe is installed, and
holds the weight and bias arrays it was computed from: an op whose parameters were replaced misses. Entries are
evicted least recently used beyond ``XBARC_BLOCK_CACHE_MB`` (default 512) MiB; ``clear`` empties it.

`quantized` is the same cache for the integer parameters alone, with the weights in their narrowest integer type
(one byte per 8-bit weight: VGG-16's 138 M weights take 138 MB, not 1.1 GB): the compiler's placement, code
generation, health checks and mapping report all read them, and a search evaluating a layer's precision again
quantizes it once. Cached arrays are read-only: a caller that writes into one fails instead of changing another's.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from isa import numerics as nx
from isa.hardware import HardwareConfig

from ..ir import Op
from .functional import CrossbarBlock, QuantizedLayer, prepare_block, probe_installed, quantize_layer
from .precision import LayerPrecision


@dataclass
class _Entry:
    weight: Any
    bias: Any
    layer: QuantizedLayer
    blocks: list[CrossbarBlock]
    nbytes: int


_CACHE: "OrderedDict[tuple[Any, ...], _Entry]" = OrderedDict()


def budget_bytes() -> int:
    """The cache's byte budget (``XBARC_BLOCK_CACHE_MB``)."""
    return int(float(os.environ.get("XBARC_BLOCK_CACHE_MB", "512")) * 2**20)


def _nbytes(layer: QuantizedLayer, blocks: list[CrossbarBlock]) -> int:
    arrays: list[np.ndarray] = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    for b in blocks:
        arrays.append(b.w)
        arrays.extend(st.a for st in b.steps if st is not None)
    return sum(int(a.nbytes) for a in {id(a): a for a in arrays}.values())


def _hashable(p: LayerPrecision) -> Any:
    """``p`` itself, or its text if a field (a varied layer's per-channel schemes) is a dict."""
    try:
        hash(p)
    except TypeError:
        return repr(p)
    return p


def _lookup(key: tuple[Any, ...], op: Op) -> _Entry | None:
    hit = _CACHE.get(key)
    if hit is not None and hit.weight is op.params["weight"] and hit.bias is op.params.get("bias"):
        _CACHE.move_to_end(key)
        return hit
    return None


def _store(key: tuple[Any, ...], op: Op, layer: QuantizedLayer, blocks: list[CrossbarBlock]) -> None:
    size, limit = _nbytes(layer, blocks), budget_bytes()
    if size <= limit:
        _CACHE[key] = _Entry(op.params["weight"], op.params.get("bias"), layer, blocks, size)
        while sum(e.nbytes for e in _CACHE.values()) > limit:
            _CACHE.popitem(last=False)


def quantized(op: Op, p: LayerPrecision) -> QuantizedLayer:
    """`quantize_layer` of crossbar layer ``op`` under ``p``, its weights in their narrowest integer type and
    read-only, from the cache if present."""
    key = (id(op), _hashable(p))
    hit = _lookup(key, op)
    if hit is not None:
        return hit.layer
    layer = quantize_layer(op, p)
    w = layer.weight.astype(nx.narrowest_int(layer.weight))
    w.setflags(write=False)
    if layer.bias is not None:
        layer.bias.setflags(write=False)
    layer = QuantizedLayer(w, layer.bias)
    _store(key, op, layer, [])
    return layer


def layer_blocks(op: Op, p: LayerPrecision, hw: HardwareConfig) -> tuple[QuantizedLayer, list[CrossbarBlock]]:
    """The integer parameters of crossbar layer ``op`` (`quantized`) and its prepared row blocks, from the cache
    if present."""
    key = (id(op), _hashable(p), hw.cell_bits, hw.xbar_rows, probe_installed())
    hit = _lookup(key, op)
    if hit is not None:
        return hit.layer, hit.blocks
    layer = quantized(op, p)
    blocks = [prepare_block(layer.weight[r0:r0 + hw.xbar_rows], p, hw.cell_bits)
              for r0 in range(0, layer.weight.shape[0], hw.xbar_rows)]
    _store(key, op, layer, blocks)
    return layer, blocks


def clear() -> None:
    """Drop every entry."""
    _CACHE.clear()


def cached_bytes() -> int:
    """Bytes the cache holds."""
    return sum(e.nbytes for e in _CACHE.values())
