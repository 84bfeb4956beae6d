"""The baselines every agent result is compared with at an equal budget: random search and greedy descent."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .budget import Budget
from .env import Actions, SearchEnv


def uniform_actions(rng: np.random.Generator, sizes: Sequence[int], layers: int) -> Actions:
    """One configuration with every knob of every layer drawn uniformly."""
    return tuple(tuple(int(rng.integers(n)) for n in sizes) for _ in range(layers))


def run_random(env: SearchEnv, b: Budget, rng: np.random.Generator, batch: int) -> None:
    """Uniform random configurations."""
    tries = 0
    while b.left > 0 and tries < 20 * b.budget:
        cand = [uniform_actions(rng, env.space.sizes, len(env.space.layers)) for _ in range(min(batch, b.left))]
        tries += len(cand)
        b.run(cand)


def run_greedy(env: SearchEnv, b: Budget, batch: int) -> None:
    """Coordinate descent from the 16-bit baseline: for each layer, each knob, evaluate the lower values (bit
    widths) or every other value (encodings, skip) and keep the best if it improves the reward; repeat passes
    until a pass changes nothing or the budget is spent."""
    cur = env.space.canonical(env.space.baseline())
    best = b.run([cur])[0].reward
    lowering = {"w_bits", "in_bits", "acc_bits", "adc_bits"}
    changed = True
    while changed and b.left > 0:
        changed = False
        for li in range(len(cur)):
            for ki, knob in enumerate(env.space.knobs):
                cands = env.space.moves(cur, li, ki, lower_only=knob in lowering)[: max(0, b.left)]
                if not cands:
                    continue
                recs = b.run(cands)
                top = max(range(len(recs)), key=lambda i: recs[i].reward)
                if recs[top].reward > best:
                    best, cur, changed = recs[top].reward, cands[top], True
                if b.left <= 0:
                    return
