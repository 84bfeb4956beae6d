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


def run_pipeline(g: Graph, passes: Sequence[Pass], max_rounds: int = 20) -> Graph:
    """Run ``passes`` in order until none changes the graph; verify after each; name the pass that broke it."""
    for _ in range(max_rounds):
        changed = False
        for p in passes:
            changed |= p.run(g)
            try:
                verify(g)
            except ModelError as e:
                raise ModelError(f"after pass '{p.name}': {e}") from None
        if not changed:
            return g
    raise ModelError(f"pass pipeline did not converge in {max_rounds} rounds")
