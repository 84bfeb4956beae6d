"""Pass infrastructure: a pass is a small named object; the pipeline is a flat list run to a fixed point."""

from __future__ import annotations

from typing import Sequence

from isa.errors import ModelError

from ..ir import Graph, verify


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
