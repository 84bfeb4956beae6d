"""The memory budget of batch work (calibration, runs): big batches are processed in chunks that fit it, and a
single item that cannot fit is reported with the numbers instead of attempted.

The budget is ``XBARC_MEMORY_BUDGET`` (bytes, with an optional K, M, G or T suffix: ``8G``), else
`DEFAULT_BUDGET`.
"""

from __future__ import annotations

import os

from .errors import XbarcError

DEFAULT_BUDGET = 2 << 30
ENV = "XBARC_MEMORY_BUDGET"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_budget() -> int:
    """Bytes batch work may hold at once (``XBARC_MEMORY_BUDGET`` or `DEFAULT_BUDGET`)."""
    text = os.environ.get(ENV, "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return DEFAULT_BUDGET
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        value = float(text[:len(text) - len(unit)])
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise XbarcError(f"{ENV}={os.environ[ENV]!r}: expected a positive number of bytes, e.g. 8G or 512M")
    return int(value * _UNITS[unit])


def mib(n: float) -> str:
    """``n`` bytes in MiB, for messages."""
    return f"{n / (1 << 20):,.1f} MiB"


def chunk_size(what: str, per_item: int, batch: int, budget: int, detail: str = "") -> int:
    """Items per chunk so that a chunk of ``per_item`` bytes each fits ``budget`` (at most ``batch``); an
    `XbarcError` naming ``what`` and the numbers when one item alone does not fit."""
    if per_item > budget:
        raise XbarcError(f"{what}: one item needs about {mib(per_item)}{f' ({detail})' if detail else ''}, over "
                         f"the memory budget of {mib(budget)}; set {ENV} (e.g. {ENV}=16G) if the machine has the "
                         f"memory")
    return max(1, min(batch, budget // max(1, per_item)))
