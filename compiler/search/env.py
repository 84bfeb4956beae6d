"""The precision-search MDP (docs/search.md): one step per crossbar layer, reward at the end.

reward = -T_t(cost_accuracy) - lambda * cost_hardware, with

* cost_accuracy = CE(quantized functional-model logits, labels) - CE(float model logits, labels) on the first
  ``val_images`` images of the data set's ``split`` (default ``val``: held out from the model's training data;
  activation ranges come from the calib split, and the test split is only used to report the final config);
* T_t(x) = x if x <= t else ``penalty`` + x (the seed's infinity, made finite so the agent still sees a
  gradient); with ``clamp_accuracy`` a negative x -- the quantized model's CE below the float model's -- counts
  as 0 (clipped formats lower the CE by softening confident logits while images flip; off by default: measured
  on LeNet, the configs found with it lose more on the test split, docs/search.md); with ``calibrated_ce`` both
  cross-entropies are taken at their own best temperature (`calibrated_cross_entropy`), so a config cannot earn
  reward by scaling its logits down;
  optionally (``max_drop`` < 1) a config whose accuracy on the same images drops more than ``max_drop`` below the
  float model's is outside the threshold as well (off by default: on LeNet it made greedy descent stop early and
  did not keep its config closer on the test split, docs/search.md);
* cost_hardware = w_E E/E_16bit + (1 - w_E) L/L_16bit with E, L the `CostModel` estimates (energy per inference
  and cycles), or the seed's analytic formula over its 16-bit value (``hw_cost="analytic"``).

Evaluations are cached by the effective action tuple.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from isa import numerics as nx
from isa.errors import XbarcError
from isa.hardware import HardwareConfig, load_hardware

from ..data import DatasetLoader, load_labelled
from ..driver import calibration_inputs, compile_model, import_graph, model_dataset
from ..quant import assign_formats, calibrate, float_forward, resolve_precision
from ..quant.schemes import finalize_weight_schemes
from .cost import CostModel, analytic_cost, analytic_terms, layer_features, mapping_modes, trace_functional
from .memo import LayerMemo
from .space import KNOBS, SearchSpace

Actions = tuple[tuple[int, ...], ...]


def threshold(x: float, t: float, penalty: float, drop: float = 0.0, max_drop: float = 1.0,
              clamp: bool = False) -> float:
    """The seed's T_t(x) = inf * 1[x > t] + x, with ``penalty`` standing in for infinity; with ``clamp`` x counts
    from 0 (a cross-entropy below the float model's earns nothing: see the module docstring); an accuracy drop
    over ``max_drop`` is outside the threshold too (see `EnvConfig.max_drop`)."""
    return (max(x, 0.0) if clamp else x) + (penalty if x > t or drop > max_drop else 0.0)


def step_rewards(reward: float, layer_terms: Sequence[float]) -> list[float]:
    """Per-step rewards of an episode that sum to ``reward``: step t gets layer t's share of the hardware cost
    (``layer_terms``, the shaped part); the last step also gets the rest (accuracy term, shared hardware)."""
    out = [float(v) for v in layer_terms]
    out[-1] += reward - sum(out)
    return out


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy (nats)."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def calibrated_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """min over a temperature T > 0 of the cross-entropy of logits / T (temperature scaling, Guo et al. 2017):
    the CE with the logits' confidence scale taken out, so only their ranking of the classes counts. Golden-section
    search on log T in [1/64, 64] (CE(z / T) is convex in 1 / T); deterministic."""
    f = lambda u: cross_entropy(logits * np.exp(-u), labels)  # noqa: E731
    lo, hi = -np.log(64.0), np.log(64.0)
    r = (np.sqrt(5.0) - 1) / 2
    a, b = hi - r * (hi - lo), lo + r * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(48):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - r * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + r * (hi - lo)
            fb = f(b)
    return min(fa, fb, f(0.0))


@dataclass
class EnvConfig:
    """Everything that defines an environment (picklable, so worker processes can rebuild it)."""

    model: str
    dataset: str | None = None
    hardware: str | None = None
    split: str = "val"  # the held-out split that scores candidates
    val_images: int = 0  # 0: the whole split
    lam: float = 1.0
    threshold: float = 0.02  # nats; 0.05 let LeNet lose 2 % test accuracy (docs/search.md)
    penalty: float = 10.0
    clamp_accuracy: bool = False  # count the accuracy term from 0 (docs/search.md)
    calibrated_ce: bool = False  # both CEs at their best temperature (docs/search.md)
    max_drop: float = 1.0  # accuracy drop allowed on the scored images (1.0: no limit; docs/search.md)
    w_energy: float = 0.5
    w_area: float = 0.0  # share of the hardware cost given to the area ratio (`--objective ...,area=W`)
    hw_cost: str = "model"  # "model" (CostModel) or "analytic" (seed formula)
    mapping: str = "spatial"  # as `compile`'s default; the cost model reproduces every mode exactly
    cost_calib_images: int = 4  # images of the one baseline runtime run that calibrates the cost model
    memo_mb: int = 1024  # bound of the memo of layer outputs (exact reuse of shared prefixes); 0: none
    data: DatasetLoader | None = None  # loads the data set (`compiler.data`); a module-level function pickles


def _with_area(w_area: float, hw_cost: float, shares: list[float], est: Any, base_area: float,
               layers: Sequence[str]) -> tuple[float, list[float]]:
    """The hardware cost with area as a third term, ``(1 - w_area) x hw_cost + w_area x area / base area``, and
    its per-layer shares (each layer's MVMU area over the baseline's whole area)."""
    area = [est.per_layer[n].get("area_um2", 0.0) / 1e6 / base_area for n in layers]
    return ((1 - w_area) * hw_cost + w_area * est.area_mm2 / base_area,
            [(1 - w_area) * s + w_area * a for s, a in zip(shares, area)])


class SearchEnv:
    """Scores action vectors; see the module docstring."""

    def __init__(self, cfg: EnvConfig) -> None:
        self.cfg = cfg
        self.hw: HardwareConfig = load_hardware(cfg.hardware)
        self.g, _, self.proto = import_graph(cfg.model)
        self.dataset = cfg.dataset or model_dataset(self.proto)
        if not self.dataset:
            raise XbarcError(f"{cfg.model}: the search needs a labelled data set (--dataset)")
        self.mapping = cfg.mapping
        if self.mapping not in mapping_modes():
            raise XbarcError(f"mapping '{self.mapping}' not available; have {', '.join(mapping_modes())}")
        calib, _ = calibration_inputs(self.g, self.proto, self.dataset, data=cfg.data)
        self.ranges = calibrate(self.g, calib, self.hw.xbar_rows)
        self.inp = self.g.inputs[0]
        x, y = load_labelled(cfg.data, self.dataset, cfg.split, self.inp.shape, "the search's accuracy term")
        n = cfg.val_images or len(x)
        self.x = x[:n].reshape((min(n, len(x)),) + self.inp.shape)
        self.y = y[:n]
        out = self.g.outputs[0]
        self.float_logits = float_forward(self.g, {self.inp.name: self.x})[out].reshape(len(self.x), -1)
        self.ce = calibrated_cross_entropy if cfg.calibrated_ce else cross_entropy
        self.ce_float = self.ce(self.float_logits, self.y)
        self.acc_float = float(np.mean(self.float_logits.argmax(axis=1) == self.y))
        self.space = SearchSpace.build(self.g, self.hw)
        self.features = layer_features(self.g, self.hw)
        self.cost = CostModel(self.g, self.hw, self.mapping)
        self.memo = LayerMemo(cfg.memo_mb << 20) if cfg.memo_mb > 0 else None
        self._calibrate_cost()
        self.cache: dict[Actions, dict[str, Any]] = {}
        base = self.evaluate(self.space.baseline(), _baseline=True)
        self.base_energy, self.base_cycles = base["energy_pj"], base["cycles"]
        self.base_area = base["area_mm2"]
        self.base_analytic = base["analytic"]
        self.cache.clear()
        self.baseline = self.evaluate(self.space.baseline())

    def compile(self, config: dict[str, Any]) -> Any:
        """`compile_model` of a config with this environment's hardware, data set and mapping."""
        return compile_model(self.cfg.model, config, self.hw, self.dataset, mapping=self.mapping, data=self.cfg.data)

    def _calibrate_cost(self) -> None:
        from ..runner import run

        config = self.space.decode(self.space.baseline())
        cm = self.compile(config)
        x = self.x[: self.cfg.cost_calib_images]
        stats = run(cm, {cm.program.inputs[0].name: x}).stats
        prec, fmt = self._resolve(config)
        _, seen = self._trace(prec, fmt, x)
        self.cost.calibrate(stats, prec, seen)

    def _resolve(self, config: dict[str, Any]) -> tuple[Any, Any]:
        prec = resolve_precision(self.g, config, self.ranges, self.hw)
        fmt = assign_formats(self.g, prec, self.ranges)
        if any(p.w_scheme == "nonuniform" for p in prec.values()):
            prec = finalize_weight_schemes(self.g, prec, None)  # k is fixed: the codebook's grid only
        return prec, fmt

    def _trace(self, prec: Any, fmt: Any, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        bits, frac = fmt[self.inp.name]
        return trace_functional(self.g, prec, {self.inp.name: nx.quantize(x, bits, frac)}, self.hw, fmt, self.memo)

    def evaluate(self, actions: Sequence[Sequence[int]], _baseline: bool = False) -> dict[str, Any]:
        """The record of one configuration (cached): accuracy, cost terms and reward."""
        key = self.space.canonical(actions)
        if key in self.cache:
            return dict(self.cache[key], cached=True)
        rec = self._score(key, _baseline)
        self.cache[key] = rec
        return dict(rec, cached=False)

    def _score(self, key: Actions, baseline: bool) -> dict[str, Any]:
        c = self.cfg
        config = self.space.decode(key)
        rec: dict[str, Any] = {"actions": [list(a) for a in key]}
        try:
            prec, fmt = self._resolve(config)
            out, seen = self._trace(prec, fmt, self.x)
        except XbarcError as e:  # an infeasible config (e.g. a format that cannot hold an activation)
            return rec | {"error": str(e), "reward": -2 * c.penalty, "accuracy": 0.0,
                          "step_rewards": step_rewards(-2 * c.penalty, [0.0] * len(key))}
        o = self.g.outputs[0]
        logits = nx.dequantize(out[o], fmt[o][1]).reshape(len(self.x), -1)
        ce = self.ce(logits, self.y)
        est = self.cost.estimate(prec, seen)
        acc = float(np.mean(logits.argmax(axis=1) == self.y))
        rec |= {"accuracy": acc, "accuracy_drop": self.acc_float - acc, "cross_entropy": ce,
                "cost_accuracy": ce - self.ce_float, "energy_pj": est.energy_pj, "cycles": est.cycles,
                "analytic": analytic_cost(self.features, prec), "area_mm2": est.area_mm2}
        if baseline:
            return rec
        e_ratio, l_ratio = est.energy_pj / self.base_energy, est.cycles / self.base_cycles
        if c.hw_cost == "analytic":
            hw_cost = rec["analytic"] / self.base_analytic
            shares = [v / self.base_analytic for v in analytic_terms(self.features, prec)]
        else:
            hw_cost = c.w_energy * e_ratio + (1 - c.w_energy) * l_ratio
            shares = [c.w_energy * est.per_layer[n]["energy_pj"] / self.base_energy
                      + (1 - c.w_energy) * est.per_layer[n]["mvm_cycles"] / self.base_cycles for n in self.space.layers]
            if c.w_area:  # area as a third term: (1 - w_area) x (energy, latency) + w_area x area ratio
                hw_cost, shares = _with_area(c.w_area, hw_cost, shares, est, self.base_area, self.space.layers)
        feasible = rec["cost_accuracy"] <= c.threshold and rec["accuracy_drop"] <= c.max_drop
        acc_term = threshold(rec["cost_accuracy"], c.threshold, c.penalty, rec["accuracy_drop"], c.max_drop,
                             c.clamp_accuracy)
        reward = -acc_term - c.lam * hw_cost
        return rec | {"feasible": feasible, "energy_ratio": e_ratio, "latency_ratio": l_ratio,
                      "cost_hardware": hw_cost, "reward": reward, "step_rewards": step_rewards(reward, [-c.lam * v for v in shares])}

    def config(self, actions: Sequence[Sequence[int]]) -> dict[str, Any]:
        """The precision config dict of an action vector."""
        return self.space.decode(actions)

    def state(self, t: int, chosen: Sequence[Sequence[int]]) -> np.ndarray:
        """Features of step t: the layer (index, kind, fan-in, fan-out, pixels, MVMUs), the choices so far
        (the previous layer's and the mean of all earlier layers', each index over its knob's range) and a
        one-hot of t (so the policy can be a per-layer table where that is what the reward asks for)."""
        f, n = self.features[t], len(self.features)
        most = max(x.mvmus for x in self.features)
        lay = [t / max(1, n - 1), float(f.kind == "conv"), np.log2(f.fan_in) / 12, np.log2(f.fan_out) / 12,
               np.log2(f.pixels) / 12, f.mvmus / most]
        norm = np.array([max(1, s - 1) for s in self.space.sizes], dtype=np.float64)
        prev = np.asarray(chosen[-1], dtype=np.float64) / norm if chosen else np.zeros(len(KNOBS))
        mean = np.mean(np.asarray(chosen, dtype=np.float64) / norm, axis=0) if chosen else np.zeros(len(KNOBS))
        return np.concatenate([lay, prev, mean, np.eye(n)[t]])

    @property
    def state_dim(self) -> int:
        """Length of `state`: 6 layer features, 2 x knobs of earlier choices, a one-hot of the layer index."""
        return 6 + 2 * len(KNOBS) + len(self.features)


# ---- worker processes -------------------------------------------------------------------------------------------
_WORKER: SearchEnv | None = None


def _init_worker(cfg: EnvConfig) -> None:
    import signal

    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it keeps what was done)
    _WORKER = SearchEnv(cfg)


def _eval_worker(actions: Actions) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER.evaluate(actions)


class Evaluator:
    """Evaluates batches of candidates in order, in this process or in ``workers`` processes (each holds its
    own `SearchEnv`); results are cached here, so the outcome does not depend on the number of workers."""

    def __init__(self, env: SearchEnv, workers: int = 1) -> None:
        self.env, self.pool = env, None
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"),
                                            initializer=_init_worker, initargs=(env.cfg,))

    def __call__(self, batch: Sequence[Actions]) -> list[dict[str, Any]]:
        keys = [self.env.space.canonical(a) for a in batch]
        todo = list(dict.fromkeys(k for k in keys if k not in self.env.cache))
        if self.pool is not None and len(todo) > 1:
            for k, rec in zip(todo, self.pool.map(_eval_worker, todo)):
                self.env.cache[k] = {x: v for x, v in rec.items() if x != "cached"}
        out, fresh = [], set(todo)
        for k in keys:
            rec = self.env.evaluate(k)
            rec["cached"] = k not in fresh
            fresh.discard(k)
            out.append(rec)
        return out

    def close(self) -> None:
        """Stop the worker processes (at once, dropping queued work, when interrupted)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def validate(env: SearchEnv, config: dict[str, Any], images: int = 0) -> dict[str, Any]:
    """Compile ``config`` and run it on the runtime on the test split (first ``images``; 0 = all): accuracy,
    energy, cycles and bit-exactness measured, not estimated."""
    from ..runner import evaluate

    x, y = load_labelled(env.cfg.data, env.dataset, "test", env.inp.shape, "the measured test accuracy")
    if images:
        x, y = x[:images], y[:images]
    r = evaluate(env.compile(config), x, y)
    return {k: r[k] for k in ("images", "accuracy", "reference_accuracy", "energy_pj", "cycles", "bit_exact")}


def summary_rows(base: dict[str, Any], found: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Rows of the seed's results table: configuration, energy, latency, accuracy with ratios to the baseline."""
    rows = []
    for name, r in [("16-bit baseline", base)] + list(found.items()):
        rows.append([name, f"{r['energy_pj'] / 1e6:.4f} ({base['energy_pj'] / r['energy_pj']:.2f}x)",
                     f"{r['cycles']} ({base['cycles'] / r['cycles']:.2f}x)",
                     f"{100 * r['accuracy']:.2f}% ({100 * (r['accuracy'] - base['accuracy']):+.2f}%)",
                     "yes" if r.get("bit_exact") else "NO"])
    return rows


SUMMARY_HEADER = ["configuration", "energy uJ (less)", "cycles (less)", "accuracy (diff)", "bit-exact"]
