"""The typed record of one evaluated configuration (`Evaluation`), as the search log and the evaluation cache
store it (docs/search.md, "Records")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Fields the search loop sets on its own copy of a record (not part of what an evaluation measured).
SEARCH_FIELDS = ("episode", "method", "evaluations", "cached", "policy_loss", "value_loss", "entropy")


@dataclass
class Evaluation:
    """One configuration's scores. ``accuracy``, ``accuracy_drop`` (against the float model, paired per image),
    ``drop_bound`` (its upper confidence bound), ``cross_entropy`` and ``cost_accuracy`` (CE increase, nats) are
    measured on the search split, the only split the reward sees; ``select_*`` are the same on the selection split,
    which only the final choice reads (not scored for a config ``stopped_at`` a stage of the search split).
    ``cost_terms`` holds each named hardware term over the 16-bit baseline's; ``cost_hardware`` is their weighted
    sum. A configuration that does not resolve has ``error`` set."""

    actions: list[list[int]]
    reward: float
    feasible: bool = False
    accuracy: float = 0.0
    accuracy_drop: float = 1.0
    drop_bound: float = 1.0
    cross_entropy: float = 0.0
    cost_accuracy: float = 0.0
    select_accuracy: float = 0.0
    select_drop: float = 1.0
    select_bound: float = 1.0
    select_lost: int = 0  # selection images the float model gets right and this config wrong (paired counts)
    select_gained: int = 0  # ... and the other way round (the family bound of `selection.family_bound` uses both)
    energy_pj: float = 0.0
    cycles: int = 0
    cost_terms: dict[str, float] = field(default_factory=dict)
    cost_hardware: float = 0.0
    step_rewards: list[float] = field(default_factory=list)
    error: str | None = None
    area_mm2: float = 0.0  # the chip area the mapping uses (docs/cost-model.md, "Area")
    stopped_at: int = 0  # > 0: scoring stopped after this many search images, where the constraint could no
    # longer be met (`SearchEnv.hopeless`); the search-split scores are over them, the selection split was not read
    # set by the search loop on its copy
    episode: int = -1
    method: str = ""
    evaluations: int = 0
    cached: bool = False
    policy_loss: float | None = None
    value_loss: float | None = None
    entropy: float | None = None

    @property
    def key(self) -> tuple[tuple[int, ...], ...]:
        """The (effective) actions as a hashable tuple."""
        return tuple(tuple(a) for a in self.actions)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (fields left at None are omitted)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def measured(self) -> dict[str, Any]:
        """`to_json` without the search loop's fields: what the evaluation cache stores."""
        return {k: v for k, v in self.to_json().items() if k not in SEARCH_FIELDS}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Evaluation":
        """The record of a `to_json` dict (unknown keys are an error: a log of another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - names
        if extra:
            raise ValueError(f"not an evaluation record: unknown fields {', '.join(sorted(extra))}")
        return cls(**d)
