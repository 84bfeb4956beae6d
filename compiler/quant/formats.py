"""Fixed-point format of every tensor stored in tile memory.

Rules, applied from the graph outputs backwards:

1. A tensor read by crossbar layers is stored in their input format (they must agree).
2. A tensor read by a format-preserving op (``OpKind.preserves_fmt``: max pooling, concat) takes that op's output format (saturating
   before a max equals saturating after it; a concat's range covers its inputs'). Average pooling shrinks the
   range, so its input keeps its own format and the pool requantizes.
3. A graph output produced by a crossbar layer stays in that layer's accumulator format.
4. Any other tensor gets the widest input width of the model and the fraction bits that fit its calibrated range.
"""

from __future__ import annotations

from isa.errors import ConfigError, ModelError

from ..ir import Graph, Op
from ..ops import kind_of
from .calibrate import Ranges
from .precision import LayerPrecision, frac_for

Format = tuple[int, int]


def _preserving(op: Op) -> bool:
    return kind_of(op).preserves_fmt(op)


def assign_formats(g: Graph, prec: dict[str, LayerPrecision], ranges: Ranges) -> dict[str, Format]:
    """(bits, frac) of every value (see module docstring)."""
    bits = max((p.in_bits for p in prec.values()), default=16)
    fmt: dict[str, Format] = {}
    order = [v.name for v in g.inputs] + [o for op in g.ops for o in op.outputs]
    for v in reversed(order):
        fmt[v] = _format_of(g, v, prec, ranges, fmt, bits)
    return fmt


def _format_of(g: Graph, v: str, prec: dict[str, LayerPrecision], ranges: Ranges, fmt: dict[str, Format],
               bits: int) -> Format:
    users = g.consumers(v)
    xbar = {(prec[u.name].in_bits, prec[u.name].in_frac) for u in users if u.is_crossbar}
    if len(xbar) > 1:
        names = ", ".join(u.name for u in users if u.is_crossbar)
        raise ConfigError(f"layers {names} read the same tensor '{v}' and must share in_bits/in_frac")
    producer = g.producer(v)
    if v in g.outputs and producer is not None and producer.is_crossbar:
        p = prec[producer.name]
        if xbar and xbar != {(p.acc_bits, p.acc_frac)} or any(_preserving(u) for u in users):
            raise ModelError(f"tensor '{v}' is a graph output and is also read by other layers; not supported")
        return p.acc_bits, p.acc_frac
    if xbar:
        return xbar.pop()
    for u in users:
        if _preserving(u):
            return fmt[u.outputs[0]]
    return bits, frac_for(ranges.values.get(v, 1.0), bits)
