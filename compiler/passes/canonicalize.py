"""Canonicalization: remove relabelling ops and fuse bias and activation into the crossbar layer."""

from __future__ import annotations

from ..ir import Graph, Op
from .base import Pass


def _rename_uses(g: Graph, old: str, new: str) -> None:
    for op in g.ops:
        op.inputs = [new if i == old else i for i in op.inputs]
    if old in g.outputs:
        g.outputs = [new if o == old else o for o in g.outputs]
        g.output_names[new] = g.output_names.pop(old, old)


class EliminateRelabel(Pass):
    """Remove ops that do not move data.

    1. ``identity(x)`` -> x.
    2. ``reshape(x)`` -> x (activations are stored flat, row-major, so a reshape is a relabelling) when every
       consumer reads its input flat (dense) or the value is a graph output.
    """

    name = "eliminate-relabel"

    def run(self, g: Graph) -> bool:
        for op in list(g.ops):
            if op.kind == "identity" or (op.kind == "reshape" and self._flat_uses(g, op)):
                g.ops.remove(op)
                _rename_uses(g, op.outputs[0], op.inputs[0])
                return True
        return False

    @staticmethod
    def _flat_uses(g: Graph, op: Op) -> bool:
        return all(c.kind == "dense" for c in g.consumers(op.outputs[0]))


def _sole_consumer(g: Graph, op: Op, kind: str) -> Op | None:
    users = g.consumers(op.outputs[0])
    if len(users) == 1 and users[0].kind == kind and op.outputs[0] not in g.outputs:
        return users[0]
    return None


class FuseBias(Pass):
    """Fold a constant add into the crossbar layer before it.

    1. ``bias_add(dense(x))`` with no activation yet on the dense -> dense with bias += b.
    """

    name = "fuse-bias"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            add = _sole_consumer(g, op, "bias_add") if op.kind == "dense" else None
            if add is not None and op.attrs.get("act", "none") == "none":
                bias = op.params.get("bias")
                op.params["bias"] = add.params["bias"].reshape(-1) + (0 if bias is None else bias)
                _absorb(g, op, add)
                return True
        return False


class FuseActivation(Pass):
    """Fold an activation into the crossbar layer before it.

    1. ``act[fn](dense(x))`` with no activation on the dense -> dense with act=fn.
    """

    name = "fuse-activation"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            act = _sole_consumer(g, op, "act") if op.kind == "dense" else None
            if act is not None and op.attrs.get("act", "none") == "none":
                op.attrs["act"] = act.attrs["fn"]
                _absorb(g, op, act)
                return True
        return False


def _absorb(g: Graph, producer: Op, consumer: Op) -> None:
    """Remove ``consumer`` and let ``producer`` write its output."""
    g.ops.remove(consumer)
    old = producer.outputs[0]
    producer.outputs = [consumer.outputs[0]]
    del g.values[old]


CANONICALIZE = (EliminateRelabel(), FuseBias(), FuseActivation())
