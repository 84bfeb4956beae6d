"""Pass infrastructure: a pass is a small named object; the pipeline is a flat list run to a fixed point."""

from __future__ import annotations

from typing import Sequence

from isa.errors import ModelError

from ..ir import Graph, Op, verify


class Pass:
    """A graph rewrite. Subclasses document their rewrites as numbered cases and return whether they changed g."""

    name = "pass"

    def run(self, g: Graph) -> bool:
        """Apply the rewrite once over the whole graph."""
        raise NotImplementedError


def run_pipeline(g: Graph, passes: Sequence[Pass], max_rounds: int | None = None) -> Graph:
    """Run ``passes`` in order until none changes the graph; verify after each; name the pass that broke it.
    Every rewrite removes or simplifies an op, so 4 rounds per op bound the work."""
    max_rounds = max_rounds or 4 * len(g.ops) + 20
    for _ in range(max_rounds):
        changed = False
        for p in passes:
            while p.run(g):
                changed = True
            try:
                verify(g)
            except ModelError as e:
                raise ModelError(f"after pass '{p.name}': {e}") from None
        if not changed:
            return g
    raise ModelError(f"pass pipeline did not converge in {max_rounds} rounds")


def rename_uses(g: Graph, old: str, new: str) -> None:
    for op in g.ops:
        op.inputs = [new if i == old else i for i in op.inputs]
    if old in g.outputs:
        g.outputs = [new if o == old else o for o in g.outputs]
        g.output_names[new] = g.output_names.pop(old, old)


def sole_consumer(g: Graph, op: Op, kind: str) -> Op | None:
    users = g.consumers(op.outputs[0])
    if len(users) == 1 and users[0].kind == kind and op.outputs[0] not in g.outputs:
        return users[0]
    return None


def absorb(g: Graph, producer: Op, consumer: Op) -> None:
    """Remove ``consumer`` and let ``producer`` write its output."""
    g.ops.remove(consumer)
    old = producer.outputs[0]
    producer.outputs = [consumer.outputs[0]]
    del g.values[old]
