"""The actor-critic search (seed 000's formulation, docs/search.md "Agent"): `ActorCritic` (numpy) samples one
action per layer, the episode critic (`RewardModel`) screens its samples and its own proposals, the chosen batch
is evaluated and the actor is updated: `RLSearch.step` = propose -> screen -> evaluate -> update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .budget import Budget
from .env import Actions, SearchEnv
from .record import Evaluation
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
    loss mean((V - G)^2) / 2 on the batch (on-policy) steps; ``epochs`` Adam steps of each per update."""

    def __init__(self, state_dim: int, sizes: Sequence[int], rng: np.random.Generator, hidden: int = 64,
                 lr: float = 0.03, critic_lr: float = 0.01, entropy_coef: float = 0.01, epochs: int = 4,
                 explore: float = 0.0, ordinal: Sequence[bool] = ()) -> None:
        self.sizes, self.rng, self.beta, self.epochs, self.eps = tuple(sizes), rng, entropy_coef, epochs, explore
        init = lambda *s: rng.normal(0, 1 / np.sqrt(s[0]), s)  # noqa: E731
        self.pi = {"W1": init(state_dim, hidden), "b1": np.zeros(hidden)}
        self.ranks: dict[int, np.ndarray] = {}
        for i, n in enumerate(self.sizes):
            self.pi[f"H{i}"] = init(hidden, n) * 0.1
            self.pi[f"c{i}"] = np.zeros(n)
            if i < len(ordinal) and ordinal[i] and n > 1:
                self.ranks[i] = np.linspace(-0.5, 0.5, n)
                self.pi[f"u{i}"], self.pi[f"d{i}"] = np.zeros(hidden), np.zeros(1)
        self.v = {"V1": init(state_dim, hidden), "c1": np.zeros(hidden), "v2": init(hidden, 1)[:, 0] * 0.1,
                  "c2": np.zeros(1)}
        self.opt_pi, self.opt_v = Adam(self.pi, lr), Adam(self.v, critic_lr)

    def _probs(self, s: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        h = np.tanh(s @ self.pi["W1"] + self.pi["b1"])
        ps = []
        for i in range(len(self.sizes)):
            z = h @ self.pi[f"H{i}"] + self.pi[f"c{i}"]
            if i in self.ranks:  # ordinal knob: a slope over the values' order (one number moves them all)
                z = z + (h @ self.pi[f"u{i}"] + self.pi[f"d{i}"][0])[:, None] * self.ranks[i]
            z = np.exp(z - z.max(axis=-1, keepdims=True))
            ps.append(z / z.sum(axis=-1, keepdims=True))
        return h, ps

    def _behaviour(self, p: np.ndarray) -> np.ndarray:
        """The distribution actions are drawn from: the softmax mixed with a uniform one (weight ``explore``)."""
        return (1 - self.eps) * p + self.eps / p.shape[-1]

    def act(self, s: np.ndarray) -> tuple[int, ...]:
        """Sample one action (an index per knob) from the behaviour distribution."""
        _, ps = self._probs(s[None])
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

    def _policy_step(self, states: np.ndarray, actions: np.ndarray, adv: np.ndarray) -> tuple[float, float]:
        n = len(states)
        h, ps = self._probs(states)
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
        dpre = dh * (1 - h ** 2)
        grads["W1"], grads["b1"] = states.T @ dpre, dpre.sum(0)
        self.opt_pi.step(grads)
        return float(-(adv * logp).mean() - self.beta * ent.mean()), float(ent.mean())

    def update(self, states: np.ndarray, actions: np.ndarray, returns: np.ndarray,
               elite: tuple[np.ndarray, ...] | None = None) -> dict[str, float]:
        """``epochs`` gradient steps on N batch steps: states (N, d), actions (N, knobs), returns-to-go (N,), plus
        the (states, actions, returns) of elite steps for self-imitation (see the class docstring)."""
        n = len(states)
        S, A, G = states, actions, returns
        if elite is not None and len(elite[0]):
            S, A, G = np.concatenate([S, elite[0]]), np.concatenate([A, elite[1]]), np.concatenate([G, elite[2]])
        adv = centered_ranks(G - self.value(S))
        adv[n:] = np.maximum(adv[n:], 0.0)
        value_loss = policy_loss = entropy = 0.0
        for _ in range(self.epochs):
            if n:
                value_loss = self._critic_step(states, returns)
            policy_loss, entropy = self._policy_step(S, A, adv)
        return {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}




#: The actor-critic's hyperparameters (docs/search.md, "Agent").
RL_DEFAULTS: dict[str, Any] = {"hidden": 64, "lr": 0.03, "critic_lr": 0.01, "epochs": 4, "elite": 8,
                               "entropy": (0.02, 0.002), "explore": 0.05, "screen": 16,
                               "screen_explore": 0.25, "propose": 1, "plan": 20}


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


def training_returns(rec: Evaluation, env: SearchEnv) -> np.ndarray:
    """The agent's returns-to-go G_t of one episode. An episode meeting the accuracy constraint: the sums of its
    shaped step rewards from t on (layer t's hardware share, the accuracy term at the end), which total the
    reward. One that misses it: -penalty - cost_accuracy - drop_bound at every step (-2 penalty if it does not
    resolve), so infeasible configurations are ranked by accuracy alone -- once the accuracy has collapsed its cost
    saturates, and the hardware term would otherwise lead the agent to ever cheaper broken configurations."""
    n = len(env.space.layers)
    if rec.error is not None:
        return np.full(n, rec.reward)
    if not rec.feasible:
        return np.full(n, -env.cfg.penalty - rec.cost_accuracy - rec.drop_bound)
    return np.cumsum(np.asarray(rec.step_rewards, dtype=np.float64)[::-1])[::-1]


@dataclass
class Episode:
    """One configuration as the actor sees it: its per-step states and actions (and, once evaluated, returns)."""

    states: list[np.ndarray]
    actions: Actions
    returns: np.ndarray | None = None
    on_policy: bool = True  # sampled by the actor (not a critic proposal)


class RLSearch:
    """The actor-critic search at a budget (hyperparameters `RL_DEFAULTS`, docs/search.md "Agent"): each `step`
    proposes candidates (``screen`` x batch actor samples, plus the critic's one-knob moves around the ``propose``
    best configurations and a descent of up to ``plan`` moves on its own prediction), screens them with the episode
    critic (the best predicted, plus a ``screen_explore`` share drawn at random), evaluates them and updates the
    actor on its own samples, with the elite buffer's and the proposals' steps as off-policy self-imitation."""

    def __init__(self, env: SearchEnv, b: Budget, rng: np.random.Generator, batch: int, **hp: Any) -> None:
        hp = RL_DEFAULTS | hp
        self.env, self.b, self.rng, self.batch = env, b, rng, batch
        self.n_elite, (self.beta0, self.beta1) = int(hp.pop("elite")), hp.pop("entropy")
        self.n_screen, self.screen_explore = int(hp.pop("screen")), float(hp.pop("screen_explore"))
        self.n_propose, self.plan = int(hp.pop("propose")), int(hp.pop("plan"))
        self.agent = ActorCritic(env.state_dim, env.space.sizes, rng, entropy_coef=self.beta0,
                                 ordinal=env.space.ordinal, **hp)
        c = env.cfg
        self.critic = None if self.n_screen <= 1 else RewardModel(
            env.space.sizes, len(env.space.layers), c.max_drop, c.penalty, c.lam, ordinal=env.space.ordinal)
        self.elite: dict[Actions, Episode] = {}

    def run(self) -> None:
        """Steps until the distinct-evaluation budget is spent (at most 20 x budget episodes); with the critic,
        the 16-bit baseline first (one evaluation, as greedy does), so that the critic has a feasible point."""
        if self.critic is not None:
            self.b.run([self.env.space.baseline()])
        episodes = 0
        while self.b.left > 0 and episodes < 20 * self.b.budget:
            episodes += self.step()

    def step(self) -> int:
        """One batch: propose -> screen -> evaluate -> update; returns the episodes evaluated."""
        b = self.b
        self.agent.beta = self.beta0 + (self.beta1 - self.beta0) * min(1.0, b.used / b.budget)
        want = min(self.batch, b.left)
        sampled, proposed = self.propose(want)
        chosen = self.screen(sampled, proposed, want)
        recs = b.run([e.actions for e in chosen])
        self.update(chosen, recs)
        return len(chosen)

    def _episode(self, actions: Sequence[Sequence[int]], on_policy: bool) -> Episode:
        acts = tuple(tuple(a) for a in actions)
        return Episode([self.env.state(t, acts[:t]) for t in range(len(acts))], acts, on_policy=on_policy)

    def propose(self, want: int) -> tuple[list[Episode], list[Episode]]:
        """The actor's ``screen`` x ``want`` samples and the fitted critic's proposals (`_proposals`)."""
        layers = len(self.env.space.layers)
        sampled = []
        for _ in range(want * max(1, self.n_screen)):
            chosen: list[tuple[int, ...]] = []
            for t in range(layers):
                chosen.append(self.agent.act(self.env.state(t, chosen)))
            sampled.append(self._episode(chosen, True))
        proposed: list[Episode] = []
        if self.critic is not None and self.critic.fit(self.b.records) and (self.n_propose or self.plan):
            proposed = [self._episode(a, False)
                        for a in _proposals(self.env, self.critic, self.b.records, self.n_propose, self.plan)]
        return sampled, proposed

    def screen(self, sampled: list[Episode], proposed: list[Episode], want: int) -> list[Episode]:
        """The ``want`` episodes to evaluate (`_screen`); an episode the actor also sampled counts as its own."""
        mine = {self.env.space.canonical(e.actions) for e in sampled}
        for e in proposed:
            e.on_policy = self.env.space.canonical(e.actions) in mine
        cands = sampled + proposed
        fitted = self.critic is not None and self.critic.w is not None
        keep = _screen(self.env, self.critic if fitted else None, [list(e.actions) for e in cands], want,
                       self.screen_explore, self.rng, self.b.seen)
        by_key: dict[Actions, Episode] = {}
        for e in cands:
            by_key.setdefault(self.env.space.canonical(e.actions), e)
        return [by_key[k] for k in keep]

    def update(self, episodes: list[Episode], recs: list[Evaluation]) -> None:
        """Policy-gradient update on the actor's own episodes, the elite buffer's and the evaluated proposals'
        steps as self-imitation (positive advantages only); the losses go on the batch's records."""
        for e, r in zip(episodes, recs):
            e.returns = training_returns(r, self.env)
        mine = [e for e in episodes if e.on_policy]
        off = list(self.elite.values()) + [e for e in episodes if not e.on_policy]
        d, k = self.env.state_dim, len(self.env.space.sizes)
        S = np.array([s for e in mine for s in e.states]).reshape(-1, d)
        A = np.array([a for e in mine for a in e.actions], dtype=np.int64).reshape(-1, k)
        G = np.concatenate([e.returns for e in mine if e.returns is not None] or [np.zeros(0)])
        E = (np.array([s for e in off for s in e.states]).reshape(-1, d),
             np.array([a for e in off for a in e.actions], dtype=np.int64).reshape(-1, k),
             np.concatenate([e.returns for e in off if e.returns is not None])) if off else None
        losses = self.agent.update(S, A, G, E)
        for e in episodes:
            self._remember(e)
        for r in recs:
            r.policy_loss, r.value_loss, r.entropy = losses["policy_loss"], losses["value_loss"], losses["entropy"]

    def _remember(self, e: Episode) -> None:
        """Keep the ``elite`` best distinct episodes by G_0."""
        key = self.env.space.canonical(e.actions)
        if key in self.elite or e.returns is None:
            return
        self.elite[key] = e
        ranked = sorted(self.elite, key=lambda x: float(self.elite[x].returns[0]))  # type: ignore[index]
        for x in ranked[: max(0, len(self.elite) - self.n_elite)]:
            del self.elite[x]


def _proposals(env: SearchEnv, critic: RewardModel, records: list[Evaluation], top: int, plan: int
               ) -> list[Actions]:
    """Candidates besides the actor's samples for the (fitted) critic to screen: every one-knob neighbour of the
    ``top`` best evaluated configurations, and the end of a descent on the critic's prediction from the best (up
    to ``plan`` moves, each to the neighbour predicted best, while the prediction improves)."""
    best: dict[Actions, float] = {}
    for r in records:
        if r.error is None:
            best.setdefault(r.key, r.reward)
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
    return out


def _screen(env: SearchEnv, critic: RewardModel | None, cands: list[list[tuple[int, ...]]], want: int,
            explore: float, rng: np.random.Generator, seen: set[Actions]) -> list[Actions]:
    """The effective actions of the ``want`` candidates to evaluate: the distinct ones this search has not
    evaluated (``seen``), the best ``want`` - k by the fitted episode critic's predicted reward and k =
    round(``explore`` x want) drawn uniformly from the rest (all in proposal order while there is no fitted
    critic); evaluated ones only if too few are new."""
    keys, fresh, old = set(), [], []
    for ch in cands:
        k = env.space.canonical(ch)
        if k in keys:
            continue
        keys.add(k)
        (old if k in seen else fresh).append(k)
    if len(fresh) <= want or critic is None:
        return (fresh + old)[:want]
    pred = critic.predict(fresh)
    order = list(np.argsort(-pred, kind="stable"))
    n_explore = min(int(round(explore * want)), want)
    top, rest = order[: want - n_explore], order[want - n_explore:]
    pick = sorted(top) + sorted(int(i) for i in rng.choice(rest, size=min(n_explore, len(rest)), replace=False))
    return [fresh[i] for i in pick]
