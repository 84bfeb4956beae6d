"""Memoized layer outputs for the functional model (exact: a layer's output is a pure function of its inputs,
its precision and the formats, so a cached array is the very array the layer would recompute)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Hashable

import numpy as np


def array_key(a: np.ndarray) -> tuple[Any, ...]:
    """A key of an array's contents (shape, dtype and a digest of the bytes)."""
    a = np.ascontiguousarray(a)
    return a.shape, str(a.dtype), hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest()


class LayerMemo:
    """An LRU cache of layer output arrays, bounded by their total size in bytes. Keys are exact descriptions of
    the computation (the op, its precision, the formats and the keys of its inputs); values are read-only."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes, self.bytes, self.hits, self.misses = max_bytes, 0, 0, 0
        self._d: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable) -> np.ndarray | None:
        """The cached array of ``key`` (and mark it recently used), or None."""
        a = self._d.get(key)
        if a is None:
            self.misses += 1
            return None
        self.hits += 1
        self._d.move_to_end(key)
        return a

    def put(self, key: Hashable, a: np.ndarray) -> np.ndarray:
        """Store ``a`` (made read-only) under ``key``, evicting the least recently used arrays over the bound."""
        a.flags.writeable = False
        if a.nbytes > self.max_bytes:
            return a
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
        self._d[key] = a
        self.bytes += a.nbytes
        while self.bytes > self.max_bytes:
            _, v = self._d.popitem(last=False)
            self.bytes -= v.nbytes
        return a

    def clear(self) -> None:
        """Drop every entry."""
        self._d.clear()
        self.bytes = 0
