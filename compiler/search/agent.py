"""Search methods at an equal budget of distinct evaluations: an actor-critic agent in numpy (`ActorCritic`),
random search and greedy per-layer descent (docs/search.md)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .env import Actions, EnvConfig, Evaluator, SearchEnv
from .space import KNOBS
from .surrogate import RewardModel


class Adam:
    """Adam over a dict of parameter arrays."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, b1: float = 0.9, b2: float = 0.999) -> None:
        self.p, self.lr, self.b1, self.b2, self.t = params, lr, b1, b2, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            mh = self.m[k] / (1 - self.b1 ** self.t)
            vh = self.v[k] / (1 - self.b2 ** self.t)
            self.p[k] -= self.lr * mh / (np.sqrt(vh) + 1e-8)


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` scaled to [-0.5, 0.5] (ties share their mean rank); 0 for a single value."""
    n = len(x)
    if n < 2:
        return np.zeros(n)
    order = np.argsort(x, kind="stable")
    r = np.empty(n)
    r[order] = np.arange(n, dtype=np.float64)
    _, inv = np.unique(x, return_inverse=True)
    r = np.bincount(inv, weights=r)[inv] / np.bincount(inv)[inv]
    return r / (n - 1) - 0.5


class ActorCritic:
    """Policy: state -> tanh hidden layer -> one softmax head per knob (for an ordinal knob, bit widths and skip,
    the logits get an extra term slope(h) x the value's centered rank, so lower or higher values can be
    preferred as a group), actions drawn from each softmax mixed
    with a uniform distribution (weight ``explore``; log-probabilities are those of the mixture); critic:
    state -> tanh hidden -> V(s).

    `update` takes the steps of a batch of episodes with their returns-to-go G_t (per-step shaped rewards,
    gamma = 1) and, optionally, the steps of an elite buffer of the best episodes so far. Advantage
    A = G_t - V(s_t); the advantages of batch and elite steps together are replaced by their centered ranks
    (robust to the threshold's penalty, which would otherwise dominate any scaling), and elite steps keep only
    positive ones (self-imitation learning, Oh et al. 2018). Policy loss -mean(A log pi) - beta mean(H); value
    loss mean((V - G)^2) / 2 on the batch (on-policy) steps; ``epochs`` Adam steps of each per update.

    With ``anchor`` = kappa > 0, `act` and `update` take the anchor configuration's action of each step: each
    head's logits get k_i x bump (1 on the anchor's value, 0.5 on an ordinal knob's neighbours), k_i a learned
    scale per knob starting at kappa."""

    def __init__(self, state_dim: int, sizes: Sequence[int], rng: np.random.Generator, hidden: int = 64,
                 lr: float = 0.03, critic_lr: float = 0.01, entropy_coef: float = 0.01, epochs: int = 4,
                 explore: float = 0.0, ordinal: Sequence[bool] = (), anchor: float = 0.0) -> None:
        self.sizes, self.rng, self.beta, self.epochs, self.eps = tuple(sizes), rng, entropy_coef, epochs, explore
        self.kappa = anchor
        init = lambda *s: rng.normal(0, 1 / np.sqrt(s[0]), s)  # noqa: E731
        self.pi = {"W1": init(state_dim, hidden), "b1": np.zeros(hidden)}
        self.ranks: dict[int, np.ndarray] = {}
        for i, n in enumerate(self.sizes):
            self.pi[f"H{i}"] = init(hidden, n) * 0.1
            self.pi[f"c{i}"] = np.zeros(n)
            if i < len(ordinal) and ordinal[i] and n > 1:
                self.ranks[i] = np.linspace(-0.5, 0.5, n)
                self.pi[f"u{i}"], self.pi[f"d{i}"] = np.zeros(hidden), np.zeros(1)
        if anchor:  # the anchor bonus, one learnable scale per knob (ordinal knobs: half of it on the neighbours)
            for i in range(len(self.sizes)):
                self.pi[f"k{i}"] = np.array([float(anchor)])
        self.v = {"V1": init(state_dim, hidden), "c1": np.zeros(hidden), "v2": init(hidden, 1)[:, 0] * 0.1,
                  "c2": np.zeros(1)}
        self.opt_pi, self.opt_v = Adam(self.pi, lr), Adam(self.v, critic_lr)

    def _probs(self, s: np.ndarray, anchor: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        h = np.tanh(s @ self.pi["W1"] + self.pi["b1"])
        ps = []
        for i in range(len(self.sizes)):
            z = h @ self.pi[f"H{i}"] + self.pi[f"c{i}"]
            if i in self.ranks:  # ordinal knob: a slope over the values' order (one number moves them all)
                z = z + (h @ self.pi[f"u{i}"] + self.pi[f"d{i}"][0])[:, None] * self.ranks[i]
            if anchor is not None and self.kappa:
                z = z + self.pi[f"k{i}"][0] * self._bump(i, anchor[:, i])
            z = np.exp(z - z.max(axis=-1, keepdims=True))
            ps.append(z / z.sum(axis=-1, keepdims=True))
        return h, ps

    def _bump(self, i: int, a: np.ndarray) -> np.ndarray:
        """(N, n) shape of knob i's anchor bonus: 1 on the anchor's value; for an ordinal knob also 0.5 on the
        values next to it (so most moves away from the anchor are one step up or down)."""
        dist = np.abs(np.arange(self.sizes[i])[None, :] - np.asarray(a)[:, None])
        return (dist == 0) + 0.5 * (dist == 1) * (i in self.ranks)

    def _behaviour(self, p: np.ndarray) -> np.ndarray:
        """The distribution actions are drawn from: the softmax mixed with a uniform one (weight ``explore``)."""
        return (1 - self.eps) * p + self.eps / p.shape[-1]

    def act(self, s: np.ndarray, anchor: Sequence[int] | None = None) -> tuple[int, ...]:
        """Sample one action (an index per knob) from the behaviour distribution (``anchor``: the anchor
        configuration's action at this step, whose values get the bonus ``kappa``)."""
        _, ps = self._probs(s[None], None if anchor is None else np.asarray(anchor)[None])
        return tuple(int(self.rng.choice(len(p[0]), p=self._behaviour(p[0]))) for p in ps)

    def value(self, s: np.ndarray) -> np.ndarray:
        """V of states (N, d) -> (N,)."""
        hv = np.tanh(s @ self.v["V1"] + self.v["c1"])
        return hv @ self.v["v2"] + self.v["c2"][0]

    def _critic_step(self, states: np.ndarray, returns: np.ndarray) -> float:
        n = len(states)
        hv = np.tanh(states @ self.v["V1"] + self.v["c1"])
        v = hv @ self.v["v2"] + self.v["c2"][0]
        dv = (v - returns) / n
        dhv = np.outer(dv, self.v["v2"]) * (1 - hv ** 2)
        self.opt_v.step({"V1": states.T @ dhv, "c1": dhv.sum(0), "v2": hv.T @ dv, "c2": np.array([dv.sum()])})
        return float(0.5 * ((v - returns) ** 2).mean())

    def _policy_step(self, states: np.ndarray, actions: np.ndarray, adv: np.ndarray,
                     anchors: np.ndarray | None = None) -> tuple[float, float]:
        n = len(states)
        h, ps = self._probs(states, anchors)
        grads: dict[str, np.ndarray] = {}
        dh = np.zeros_like(h)
        logp, ent = np.zeros(n), np.zeros(n)
        for i, p in enumerate(ps):
            lp = np.log(p + 1e-12)
            a = actions[:, i]
            q = self._behaviour(p)[np.arange(n), a]  # d log q_a / dz = (1 - eps) p_a / q_a (onehot - p)
            logp += np.log(q)
            hk = -(p * lp).sum(axis=1)
            ent += hk
            onehot = np.zeros_like(p)
            onehot[np.arange(n), a] = 1
            scale = (1 - self.eps) * p[np.arange(n), a] / q
            dz = (-(adv * scale)[:, None] * (onehot - p) + self.beta * p * (lp + hk[:, None])) / n
            grads[f"H{i}"], grads[f"c{i}"] = h.T @ dz, dz.sum(0)
            dh += dz @ self.pi[f"H{i}"].T
            if i in self.ranks:
                ds = dz @ self.ranks[i]
                grads[f"u{i}"], grads[f"d{i}"] = h.T @ ds, np.array([ds.sum()])
                dh += np.outer(ds, self.pi[f"u{i}"])
            if anchors is not None and self.kappa:
                grads[f"k{i}"] = np.array([(dz * self._bump(i, anchors[:, i])).sum()])
        dpre = dh * (1 - h ** 2)
        grads["W1"], grads["b1"] = states.T @ dpre, dpre.sum(0)
        self.opt_pi.step(grads)
        return float(-(adv * logp).mean() - self.beta * ent.mean()), float(ent.mean())

    def update(self, states: np.ndarray, actions: np.ndarray, returns: np.ndarray,
               elite: tuple[np.ndarray, ...] | None = None, anchors: np.ndarray | None = None) -> dict[str, float]:
        """``epochs`` gradient steps on N batch steps: states (N, d), actions (N, knobs), returns-to-go (N,), plus
        the (states, actions, returns[, anchors]) of elite steps for self-imitation (see the class docstring);
        ``anchors`` (N, knobs) are the anchor actions the steps were sampled with (with ``kappa`` > 0)."""
        n = len(states)
        S, A, G, K = states, actions, returns, anchors
        if elite is not None and len(elite[0]):
            S, A, G = np.concatenate([S, elite[0]]), np.concatenate([A, elite[1]]), np.concatenate([G, elite[2]])
            if K is not None:
                K = np.concatenate([K, elite[3]])
        adv = centered_ranks(G - self.value(S))
        adv[n:] = np.maximum(adv[n:], 0.0)
        value_loss = policy_loss = entropy = 0.0
        for _ in range(self.epochs):
            if n:
                value_loss = self._critic_step(states, returns)
            policy_loss, entropy = self._policy_step(S, A, adv, K)
        return {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


@dataclass
class SearchResult:
    """Best configuration found, its reward and record, every episode's record, and the 16-bit baseline's."""

    method: str
    best_config: dict[str, Any]
    best_actions: list[list[int]]
    best_reward: float
    best_record: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C: the best of the evaluations done so far


class _Budget:
    """Counts distinct evaluations, keeps the log and the best record, reports progress."""

    def __init__(self, env: SearchEnv, evaluate: Evaluator, budget: int, method: str,
                 progress: Callable[[str], None] | None,
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.env, self.evaluate, self.budget, self.method = env, evaluate, budget, method
        self.on_record = on_record
        self.records: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.used, self.progress, self.t0 = 0, progress, time.perf_counter()

    @property
    def left(self) -> int:
        return self.budget - self.used

    def run(self, batch: Sequence[Actions], extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        recs = self.evaluate(batch)
        for r in recs:
            self.used += not r["cached"]
            r = r | {"episode": len(self.records), "method": self.method, "evaluations": self.used} | (extra or {})
            self.records.append(r)
            if self.on_record:
                self.on_record(r)
            if self.best is None or r["reward"] > self.best["reward"]:
                self.best = r
        if self.progress:
            n = min(self.used, self.budget)
            bar = "#" * (30 * n // max(1, self.budget))
            self.progress(f"\r[{bar:<30}] {n}/{self.budget} evals  best reward {self.best['reward']:.4f}  "
                          f"{time.perf_counter() - self.t0:.0f} s")
        return recs


def _uniform(rng: np.random.Generator, sizes: Sequence[int], layers: int) -> Actions:
    return tuple(tuple(int(rng.integers(n)) for n in sizes) for _ in range(layers))


def run_random(env: SearchEnv, b: _Budget, rng: np.random.Generator, batch: int) -> None:
    """Uniform random configurations."""
    tries = 0
    while b.left > 0 and tries < 20 * b.budget:
        cand = [_uniform(rng, env.space.sizes, len(env.space.layers)) for _ in range(min(batch, b.left))]
        tries += len(cand)
        b.run(cand)


def run_greedy(env: SearchEnv, b: _Budget, batch: int) -> None:
    """Coordinate descent from the 16-bit baseline: for each layer, each knob, evaluate the lower values (bit
    widths) or every other value (encodings, skip) and keep the best if it improves the reward; repeat passes
    until a pass changes nothing or the budget is spent."""
    cur = env.space.canonical(env.space.baseline())
    best = b.run([cur])[0]["reward"]
    lowering = {"w_bits", "in_bits", "acc_bits", "adc_bits"}
    changed = True
    while changed and b.left > 0:
        changed = False
        for li in range(len(cur)):
            for ki, knob in enumerate(KNOBS):
                cands = env.space.moves(cur, li, ki, lower_only=knob in lowering)[: max(0, b.left)]
                if not cands:
                    continue
                recs = b.run(cands)
                top = max(range(len(recs)), key=lambda i: recs[i]["reward"])
                if recs[top]["reward"] > best:
                    best, cur, changed = recs[top]["reward"], cands[top], True
                if b.left <= 0:
                    return


#: The actor-critic's hyperparameters (docs/search.md, "Agent").
RL_DEFAULTS: dict[str, Any] = {"hidden": 64, "lr": 0.03, "critic_lr": 0.01, "epochs": 4, "elite": 8,
                               "entropy": (0.02, 0.002), "explore": 0.05, "ordinal": True, "warm_start": False,
                               "anchor": 0.0, "screen": 16, "screen_explore": 0.25,
                               "propose": 1, "plan": 20, "thermometer": True}


def parse_rl_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> `RL_DEFAULTS` overrides (values parsed as JSON; a list becomes a tuple)."""
    import json

    out: dict[str, Any] = {}
    for p in pairs:
        k, eq, v = p.partition("=")
        if not eq or k not in RL_DEFAULTS:
            raise ValueError(f"RL option {p!r}: expected KEY=VALUE with KEY in {', '.join(RL_DEFAULTS)}")
        try:
            val = json.loads(v)
        except json.JSONDecodeError:
            raise ValueError(f"RL option {p!r}: the value must be a JSON number, boolean or list") from None
        out[k] = tuple(val) if isinstance(val, list) else val
    return out


def training_returns(rec: dict[str, Any], env: SearchEnv) -> np.ndarray:
    """The agent's returns-to-go G_t of one episode. An episode meeting the accuracy threshold: the sums of its
    shaped step rewards from t on (layer t's hardware share, the accuracy term at the end), which total the
    reward. One that misses it (`feasible` false): -penalty - cost_accuracy - accuracy_drop at every step (-2 penalty if it does not resolve), so
    infeasible configurations are ranked by accuracy alone -- once the accuracy has collapsed its cost saturates,
    and the hardware term would otherwise lead the agent to ever cheaper broken configurations."""
    c, n = env.cfg, len(env.space.layers)
    if "error" in rec:
        return np.full(n, float(rec["reward"]))
    if not rec["feasible"]:
        return np.full(n, -c.penalty - float(rec["cost_accuracy"]) - float(rec["accuracy_drop"]))
    return np.cumsum(np.asarray(rec["step_rewards"], dtype=np.float64)[::-1])[::-1]


def run_rl(env: SearchEnv, b: _Budget, rng: np.random.Generator, batch: int, **hp: Any) -> None:
    """Actor-critic episodes, ``batch`` per update, until the distinct-evaluation budget is spent (``hp``
    overrides `RL_DEFAULTS`). The elite buffer keeps the ``elite`` best distinct episodes by G_0 (with
    ``warm_start`` it starts with the 16-bit baseline's episode, the one configuration known to meet the accuracy
    threshold); the entropy coefficient falls linearly from ``entropy[0]`` to ``entropy[1]`` over the budget.
    With ``anchor`` = kappa > 0 every episode is sampled around the best configuration so far (the 16-bit
    baseline at first): each head's logits get k_i x bump(anchor's value), k_i learned from kappa. With
    ``screen`` = m > 1 the actor samples m x batch episodes and the episode critic (`RewardModel`) picks which
    are evaluated (`_screen`); the 16-bit baseline is evaluated first. With ``propose`` = p and ``plan`` = n the
    critic also screens the one-knob neighbours of the p best configurations and a descent of up to n moves on its
    own prediction (`_proposals`); those that get evaluated are off-policy and join the update like elite steps.
    ``thermometer`` codes the critic's ordinal knobs as steps (docs/search.md, "Agent")."""
    hp = RL_DEFAULTS | hp
    n_elite, (beta0, beta1), warm = hp.pop("elite"), hp.pop("entropy"), hp.pop("warm_start")
    screen, screen_explore = int(hp.pop("screen")), float(hp.pop("screen_explore"))
    propose, plan, thermo = int(hp.pop("propose")), int(hp.pop("plan")), bool(hp.pop("thermometer"))
    agent = ActorCritic(env.state_dim, env.space.sizes, rng, entropy_coef=beta0,
                        ordinal=env.space.ordinal if hp.pop("ordinal") else (), **hp)
    layers, anchored = len(env.space.layers), agent.kappa > 0
    c = env.cfg
    critic = None if screen <= 1 else RewardModel(env.space.sizes, layers, c.threshold, c.penalty, c.lam,
                                                  ordinal=env.space.ordinal, clamp=c.clamp_accuracy,
                                                  thermometer=thermo)
    elite: dict[Actions, tuple[float, list[np.ndarray], tuple[tuple[int, ...], ...], np.ndarray, np.ndarray]] = {}

    def remember(chosen: Sequence[tuple[int, ...]], states: list[np.ndarray], rec: dict[str, Any],
                 anchor: np.ndarray) -> None:
        key = env.space.canonical(chosen)
        if key not in elite:
            g = training_returns(rec, env)
            elite[key] = (float(g[0]), states, tuple(chosen), g, anchor)
            for k in sorted(elite, key=lambda k: elite[k][0])[: max(0, len(elite) - n_elite)]:
                del elite[k]

    def states_of(chosen: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        return [env.state(t, chosen[:t]) for t in range(layers)]

    if warm or anchored or critic is not None:  # the 16-bit baseline first: one configuration known feasible
        base = env.space.baseline()
        rec = b.run([base])[0]
        if warm:
            remember(base, states_of(base), rec, np.array(base))
    episodes = 0
    while b.left > 0 and episodes < 20 * b.budget:
        agent.beta = beta0 + (beta1 - beta0) * min(1.0, b.used / b.budget)
        anchor = np.array(b.best["actions"] if anchored and b.best else env.space.baseline())
        want = min(batch, b.left)
        cands = []
        for _ in range(want * max(1, screen)):
            chosen: list[tuple[int, ...]] = []
            for t in range(layers):
                chosen.append(agent.act(env.state(t, chosen), anchor[t] if anchored else None))
            cands.append(chosen)
        sampled = {env.space.canonical(ch) for ch in cands}
        if critic is not None:
            fitted = critic.fit(b.records)
            if fitted and (propose or plan):
                cands += _proposals(env, critic, b.records, propose, plan)
            cands = _screen(env, critic if fitted else None, cands, want, screen_explore, rng)
        trajs = [(states_of(ch), ch) for ch in cands[:want]]
        episodes += len(trajs)
        recs = b.run([tuple(ch) for _, ch in trajs])
        on = [env.space.canonical(ch) in sampled for _, ch in trajs]  # the actor's own samples (on-policy)
        steps = [(st, ch, training_returns(r, env), anchor) for (st, ch), r in zip(trajs, recs)]
        mine = [x for x, o in zip(steps, on) if o]
        # proposals are off-policy: like the elite, they only pull the policy towards what beat the critic's V
        el = list(elite.values()) + [(0.0, st, ch, g, k) for (st, ch, g, k), o in zip(steps, on) if not o]
        S = np.array([s for st, *_ in mine for s in st]).reshape(-1, env.state_dim)
        A = np.array([a for _, ch, *_ in mine for a in ch], dtype=np.int64).reshape(-1, len(env.space.sizes))
        G = np.concatenate([g for *_, g, _ in mine] or [np.zeros(0)])
        K = np.concatenate([k for *_, k in mine] or [np.zeros((0, len(env.space.sizes)), np.int64)]
                           ) if anchored else None
        E = (np.array([s for e in el for s in e[1]]), np.array([a for e in el for a in e[2]]),
             np.concatenate([e[3] for e in el]), np.concatenate([e[4] for e in el])) if el else None
        losses = agent.update(S, A, G, E, K)
        for (st, ch), r in zip(trajs, recs):
            remember(ch, st, r, anchor)
        for r in b.records[-len(trajs):]:
            r.update(losses)


def _proposals(env: SearchEnv, critic: RewardModel, records: list[dict[str, Any]], top: int, plan: int
               ) -> list[list[tuple[int, ...]]]:
    """Candidates besides the actor's samples for the (fitted) critic to screen: every one-knob neighbour of the
    ``top`` best evaluated configurations, and the end of a descent on the critic's prediction from the best (up
    to ``plan`` moves, each to the neighbour predicted best, while the prediction improves)."""
    best: dict[Actions, float] = {}
    for r in records:
        if "error" not in r:
            best.setdefault(tuple(map(tuple, r["actions"])), float(r["reward"]))
    ranked = sorted(best, key=lambda k: -best[k])
    out: list[Actions] = []
    for k in ranked[:top]:
        out += env.space.neighbours(k)
    if plan and ranked:
        cur = ranked[0]
        score = float(critic.predict([cur])[0])
        for _ in range(plan):
            nb = env.space.neighbours(cur)
            pred = critic.predict(nb)
            i = int(np.argmax(pred))
            if pred[i] <= score:
                break
            cur, score = nb[i], float(pred[i])
        out.append(cur)
    return [list(c) for c in out]


def _screen(env: SearchEnv, critic: RewardModel | None, cands: list[list[tuple[int, ...]]], want: int,
            explore: float, rng: np.random.Generator) -> list[list[tuple[int, ...]]]:
    """The ``want`` candidates to evaluate: the distinct not-yet-evaluated ones, the best ``want`` - k by the
    fitted episode critic's predicted reward and k = round(``explore`` x want) drawn uniformly from the rest (all
    in sampling order while there is no fitted critic: fewer than two evaluated configurations); evaluated ones
    only if too few are new."""
    keys, fresh, old = set(), [], []
    for ch in cands:
        k = env.space.canonical(ch)
        if k in keys:
            continue
        keys.add(k)
        (old if k in env.cache else fresh).append(ch)
    if len(fresh) <= want or critic is None:
        return (fresh + old)[:want]
    pred = critic.predict([env.space.canonical(ch) for ch in fresh])
    order = list(np.argsort(-pred, kind="stable"))
    n_explore = min(int(round(explore * want)), want)
    top, rest = order[: want - n_explore], order[want - n_explore:]
    pick = sorted(top) + sorted(int(i) for i in rng.choice(rest, size=min(n_explore, len(rest)), replace=False))
    return [fresh[i] for i in pick]


METHODS = ("rl", "random", "greedy")


def search_precision(model: str, dataset: str | None = None, budget: int = 100, seed: int = 0, method: str = "rl",
                     workers: int = 1, batch: int = 8, progress: Callable[[str], None] | None = None,
                     env: SearchEnv | None = None, rl: dict[str, Any] | None = None,
                     on_record: Callable[[dict[str, Any]], None] | None = None,
                     **env_options: Any) -> SearchResult:
    """Search a per-layer precision config of ``model``; ``budget`` distinct evaluations; deterministic in
    ``seed`` (and independent of ``workers``). ``rl`` overrides `RL_DEFAULTS`; ``env_options`` are `EnvConfig`
    fields. ``on_record`` sees every evaluation's record as it is made (a checkpoint log). Ctrl-C
    (KeyboardInterrupt) ends the search early with the best so far and ``interrupted`` set, once at least one
    configuration was evaluated."""
    if method not in METHODS:
        raise ValueError(f"method '{method}' not in {', '.join(METHODS)}")
    env = env or SearchEnv(EnvConfig(str(model), dataset, **env_options))
    ev = Evaluator(env, workers)
    b = _Budget(env, ev, budget, method, progress, on_record)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    interrupted = False
    try:
        if method == "rl":
            run_rl(env, b, rng, batch, **(rl or {}))
        elif method == "random":
            run_random(env, b, rng, batch)
        else:
            run_greedy(env, b, batch)
    except KeyboardInterrupt:
        if b.best is None:
            raise
        interrupted = True
    finally:
        ev.close()
    if progress:
        progress("\n")
    assert b.best is not None
    best = b.best
    return SearchResult(method, env.config(best["actions"]), best["actions"], best["reward"], best, b.records,
                        env.baseline, b.used, time.perf_counter() - t0, interrupted)


def stderr_progress(msg: str) -> None:
    """Progress lines to stderr."""
    sys.stderr.write(msg)
    sys.stderr.flush()
