"""Fixed-point format of every tensor stored in tile memory.

Rules, applied from the graph outputs backwards:

1. A tensor read by crossbar layers is stored in their input format (they must agree).
2. A tensor read by a format-preserving op (``OpKind.preserves_fmt``: max pooling, concat, data moves) takes that
   op's output format when every reader preserves formats (saturating before a max or a copy equals saturating
   after it), when the op is a concat (whose range covers its inputs') or when that format holds the tensor's own
   range; otherwise (e.g. a tensor read by a max pool and an add, whose negative values the pool's output format
   need not hold) rule 4. Average pooling shrinks the range, so its input keeps its own format and the pool
   requantizes.
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
    own = ranges.values.get(v, 1.0)
    for u in users:
        if _preserving(u):
            f = fmt[u.outputs[0]]
            if all(_preserving(w) for w in users) and v not in g.outputs or kind_of(u).device == "view" \
                    or f[1] <= frac_for(own, f[0]):
                return f
    return bits, frac_for(own, bits)
