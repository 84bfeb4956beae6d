"""The precision-search MDP (docs/search.md): one step per crossbar layer, reward at the end.

reward = -cost_accuracy - penalty [drop_bound > max_drop] - lambda cost_hardware, with

* cost_accuracy = CE(quantized functional-model logits, labels) - CE(float model logits, labels) on the search
  split (default the first 512 images of ``fit``); drop_bound the upper confidence bound (`selection.drop_upper_bound`, level
  ``confidence``) on the accuracy drop against the float model on the same images, paired per image; ``penalty``
  stands in for the seed's infinity outside the constraint, so the agent still sees a gradient;
* cost_hardware = the weighted named cost terms (`cost.COST_TERMS`, default energy and latency, each over the 16-bit
  baseline's; `CostModel` estimates).

Every evaluation also scores the configuration on the selection split (default ``val``, held out from the model's
training data), which the reward never reads: the final choice is made on it (`selection.choose`), so the best of
hundreds of configurations is not judged by the images that picked it. The test split is only for the report.
Evaluations are cached by the effective action tuple.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

import numpy as np

from isa import numerics as nx
from isa.errors import XbarcError
from isa.hardware import HardwareConfig, load_hardware

from .. import runner
from ..data import DatasetLoader, load_labelled
from ..driver import calibration_inputs, compile_model, import_graph, model_dataset
from ..quant import assign_formats, calibrate, float_forward, resolve_precision
from ..quant.schemes import finalize_weight_schemes
from .cost import (DEFAULT_WEIGHTS, CostEstimate, CostInputs, CostModel, TermValue, layer_features, mapping_modes, measure_terms,
                   trace_functional, weighted_cost)
from .memo import LayerMemo
from .record import Evaluation
from .selection import drop_upper_bound, family_bound, score_upper
from .space import SearchSpace

Actions = tuple[tuple[int, ...], ...]

#: The version of `Evaluation`'s measured fields, part of the cache's scope (2: the selection split's paired counts).
RECORD_VERSION = 2
#: Corrections of the choice's bound for the number of configurations compared (`selection.family_bound`).
SELECT_CORRECTIONS = ("none", "bonferroni")


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


@dataclass
class EnvConfig:
    """Everything that defines an environment (picklable, so worker processes can rebuild it)."""

    model: str
    dataset: str | None = None
    hardware: str | None = None
    search_split: str = "fit"  # the images that score the reward (the bundled sets: training images)
    search_images: int = 512  # 0: the whole split
    select_split: str = "val"  # the images the final choice is made on (never read by the reward); several
    # splits joined by commas ("val,fit"): the search split among them gives only the images the reward does not read
    select_images: int = 0
    select_correction: str = "none"  # "bonferroni": the choice's bound holds for all configs compared at once
    max_drop: float = 0.01  # accuracy drop allowed against the float model (upper confidence bound)
    confidence: float = 0.95  # one-sided level of that bound
    lam: float = 1.0
    penalty: float = 10.0
    cost_weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS  # named cost terms (cost.COST_TERMS)
    mapping: str = "spatial"  # as `compile`'s default; the cost model reproduces every mode exactly
    devices: str | None = None  # score accuracy on the runtime under this device model (docs/devices.md)
    device_trials: int = 3  # with devices: seeded trials whose scores are averaged
    replicas: tuple[int, ...] = (1,)  # values of the per-layer conv replication knob (one value: not searched)
    narrow: tuple[int, ...] = (0,)  # values of the varied layers' channel-narrowing knob (one value: not searched)
    memo_mb: int = 1024  # bound of the memo of layer outputs (exact reuse of shared prefixes); 0: none
    screen_images: int = 64  # score the search split in stages of 64, 128, 256, ... images and stop once the
    # constraint cannot be met whatever the rest (`hopeless`); 0: one pass over both splits
    data: DatasetLoader | None = None  # loads the data set (`compiler.data`); a module-level function pickles

    def scope(self) -> str:
        """A digest of what an evaluation's record depends on: the model file's bytes and every field that
        changes a score (not the loader, nor the memo's size): the evaluation cache's scope."""
        with open(self.model, "rb") as f:
            model = hashlib.sha256(f.read()).hexdigest()
        d = {k.name: getattr(self, k.name) for k in fields(self)
             if k.name not in ("model", "data", "memo_mb", "select_correction")  # the choice reads the records
             and not (k.name in ("replicas", "narrow") and getattr(self, k.name) == k.default)}  # knobs off
        return hashlib.sha256(json.dumps([model, d, RECORD_VERSION], sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Split:
    """Labelled images and the float model's results on them."""

    name: str
    x: np.ndarray
    y: np.ndarray
    float_ok: np.ndarray  # per image: the float model is right
    float_ce: float
    float_logits: np.ndarray | None = None  # the float model's logits (for the CE of a prefix, `search_part`)

    @property
    def accuracy(self) -> float:
        """The float model's accuracy."""
        return float(self.float_ok.mean())


@dataclass
class SplitScore:
    """A quantized model's accuracy on one split, against the float model's (paired per image)."""

    accuracy: float
    drop: float
    bound: float
    cross_entropy: float
    cost_accuracy: float
    lost: float = 0.0  # images the float model gets right and the quantized model wrong (a mean over device trials)
    gained: float = 0.0  # the other way round


class SearchEnv:
    """Scores action vectors; see the module docstring."""

    def __init__(self, cfg: EnvConfig) -> None:
        self.cfg = cfg
        if cfg.select_correction not in SELECT_CORRECTIONS:
            raise XbarcError(f"select correction '{cfg.select_correction}': expected one of "
                             f"{', '.join(SELECT_CORRECTIONS)}")
        if not 0 <= cfg.max_drop <= 1:
            raise XbarcError(f"max_drop {cfg.max_drop}: expected a fraction in [0, 1]")
        if not 0.5 <= cfg.confidence < 1:
            raise XbarcError(f"confidence {cfg.confidence}: expected 0.5 <= confidence < 1")
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
        self.search = self.load_split(cfg.search_split, cfg.search_images, "the search's reward")
        self.select = self.load_selection()
        k = min(len(self.search.x), len(self.select.x))
        if cfg.search_split not in cfg.select_split.split(",") and np.array_equal(self.search.x[:k],
                                                                                  self.select.x[:k]):
            raise XbarcError(f"data set '{self.dataset}': the search split '{cfg.search_split}' and the selection "
                             f"split '{cfg.select_split}' hold the same images (a file without its own x_"
                             f"{cfg.search_split} and x_{cfg.select_split}?); the final choice must be made on images "
                             f"the search never saw: give both splits, or name others with --search-split and "
                             f"--select-split")
        self.x = self.search.x  # the reward's images
        self.space = SearchSpace.build(self.g, self.hw, cfg.replicas, cfg.narrow)
        self.features = layer_features(self.g, self.hw)
        self.cost = CostModel(self.g, self.hw, self.mapping, self.baseline_program)
        self.devices = runner.load_devices(cfg.devices) if cfg.devices else None
        self.memo = LayerMemo(cfg.memo_mb << 20) if cfg.memo_mb > 0 else None
        base = self.space.baseline()
        prec, fmt = self._resolve(self.space.decode(base))
        _, seen = self._trace(prec, fmt, self.search.x)
        self.base_terms = self._terms(prec, seen)[1]
        self.cache: dict[Actions, Evaluation] = {}
        self.baseline = self.evaluate(base)

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process receives (`backends.Evaluator`): everything built here (the frontend,
        calibration, splits, baseline program and cost profiles: a worker need not build them again), with an
        empty memo and no evaluation records (caches: scores do not depend on them)."""
        state = dict(vars(self))
        state["memo"] = LayerMemo(self.memo.max_bytes) if self.memo is not None else None
        state["cache"] = {}
        return state

    def load_split(self, split: str, images: int, why: str) -> Split:
        """The first ``images`` (0: all) of ``split`` with the float model's results."""
        x, y = load_labelled(self.cfg.data, self.dataset, split, self.inp.shape, why)
        n = min(images or len(x), len(x))
        x, y = x[:n].reshape((n,) + self.inp.shape), y[:n]
        logits = float_forward(self.g, {self.inp.name: x})[self.g.outputs[0]].reshape(n, -1)
        return Split(split, x, y, logits.argmax(axis=1) == y, cross_entropy(logits, y), logits)

    def load_selection(self) -> Split:
        """The selection split: each split named in ``select_split`` (commas), the search split's only past the
        images the reward reads, joined, then the first ``select_images`` (0: all)."""
        c, parts = self.cfg, []
        for name in c.select_split.split(","):
            s = self.load_split(name, 0, "the final selection")
            if name == c.search_split:
                s = self.split_part(s, slice(len(self.search.x), None))
            parts.append(s)
        n = sum(len(p.x) for p in parts)
        if not n or len(set(c.select_split.split(","))) < len(parts):
            raise XbarcError(f"selection split '{c.select_split}': {'a split named twice' if n else 'no images'} "
                             f"(the search split '{c.search_split}' gives only the images past its first "
                             f"{len(self.search.x)}, which the reward reads)")
        logits = np.concatenate([p.float_logits for p in parts if p.float_logits is not None])
        x, y = np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts])
        s = Split(c.select_split, x, y, logits.argmax(axis=1) == y, cross_entropy(logits, y), logits)
        return self.split_part(s, slice(0, c.select_images or n))

    @staticmethod
    def split_part(s: Split, part: slice) -> Split:
        """The images ``part`` of split ``s`` with the float model's results on them."""
        assert s.float_logits is not None
        logits = s.float_logits[part]
        return Split(s.name, s.x[part], s.y[part], s.float_ok[part],
                     cross_entropy(logits, s.y[part]) if len(logits) else 0.0, logits)

    def choice_bound(self, records: Sequence[Evaluation]) -> Callable[[Evaluation], float]:
        """The selection-split bound the choice compares with ``max_drop``: each record's own (``none``) or the
        one holding for all configurations of ``records`` at once (``bonferroni``, `selection.family_bound`)."""
        if self.cfg.select_correction == "bonferroni":
            return family_bound(records, len(self.select.x), self.cfg.confidence)
        return lambda r: r.select_bound

    def compile(self, config: dict[str, Any]) -> Any:
        """`compile_model` of a config with this environment's hardware, data set and mapping."""
        return compile_model(self.cfg.model, config, self.hw, self.dataset, mapping=self.mapping, data=self.cfg.data)

    def baseline_program(self, reps: dict[str, int]) -> Any:
        """The program of the 16-bit baseline with per-layer replicas ``reps`` (the cost model profiles it)."""
        config = self.space.decode(self.space.baseline())
        for name, n in reps.items():
            if n > 1:
                config["layers"][name]["replicate"] = n
        return self.compile(config).program

    def _resolve(self, config: dict[str, Any]) -> tuple[Any, Any]:
        prec = resolve_precision(self.g, config, self.ranges, self.hw)
        fmt = assign_formats(self.g, prec, self.ranges)
        if any(p.w_scheme == "nonuniform" for p in prec.values()):
            prec = finalize_weight_schemes(self.g, prec, None)  # k is fixed: the codebook's grid only
        return prec, fmt

    def _trace(self, prec: Any, fmt: Any, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        bits, frac = fmt[self.inp.name]
        return trace_functional(self.g, prec, {self.inp.name: nx.quantize(x, bits, frac)}, self.hw, fmt, self.memo)

    def _terms(self, prec: Any, seen: dict[str, np.ndarray]) -> tuple[CostEstimate, dict[str, TermValue]]:
        est = self.cost.estimate(prec, seen)
        return est, measure_terms(self.cfg.cost_weights, CostInputs(est, prec, self.features))

    def score(self, split: Split, logits: np.ndarray) -> SplitScore:
        """Accuracy, paired drop and its bound, cross-entropy and its increase of quantized ``logits``; logits
        of several device trials (trials, images, classes) score each trial and average the scores."""
        if logits.ndim == 3:
            scores = [self.score(split, t) for t in logits]
            return SplitScore(*(float(np.mean([getattr(s, f.name) for s in scores])) for f in fields(SplitScore)))
        ok = logits.argmax(axis=1) == split.y
        ce = cross_entropy(logits, split.y)
        return SplitScore(float(ok.mean()), float(split.float_ok.mean() - ok.mean()),
                          drop_upper_bound(split.float_ok, ok, self.cfg.confidence), ce, ce - split.float_ce,
                          float(np.count_nonzero(split.float_ok & ~ok)), float(np.count_nonzero(~split.float_ok & ok)))

    def reward(self, s: SplitScore, cost_hardware: float) -> float:
        """-cost_accuracy - penalty [drop bound over max_drop] - lambda cost_hardware."""
        c = self.cfg
        return -s.cost_accuracy - c.penalty * (s.bound > c.max_drop) - c.lam * cost_hardware

    def evaluate(self, actions: Sequence[Sequence[int]]) -> Evaluation:
        """The record of one configuration (cached in memory; the search loop copies it)."""
        key = self.space.canonical(actions)
        if key not in self.cache:
            self.cache[key] = self._score(key)
        return self.cache[key]

    def logits(self, key: Actions, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], Any]:
        """The functional model's float logits of config ``key`` on images ``x``, the crossbar layers' integer
        inputs and the resolved precision (XbarcError if the config does not resolve)."""
        prec, fmt = self._resolve(self.space.decode(key))
        logits, seen = self._logits(key, prec, fmt, x)
        return logits, seen, prec

    def _logits(self, key: Actions, prec: Any, fmt: Any, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        out, seen = self._trace(prec, fmt, x)
        o = self.g.outputs[0]
        if self.devices is not None:
            return self.device_logits(key, x), seen
        return nx.dequantize(out[o], fmt[o][1]).reshape(len(x), -1), seen

    def device_logits(self, key: Actions, x: np.ndarray) -> np.ndarray:
        """(trials, images, classes) logits of config ``key`` compiled and run on the runtime under the device
        model, one seeded trial each (`runtime.devices`): the robust search's accuracy term."""
        from ..runner import run

        cm = self.compile(self.space.decode(key))
        feeds, name = {cm.program.inputs[0].name: x}, cm.program.outputs[0].name
        return np.stack([run(cm, feeds, devices=self.devices, trial=t).device_float[name].reshape(len(x), -1)
                         for t in range(self.cfg.device_trials)])

    def stages(self) -> list[int]:
        """Where the search split's scoring may stop (image counts): ``screen_images`` doubled while below the
        split's size; empty without screening or with a device model (whose trials run on the runtime)."""
        n, k, out = len(self.search.x), self.cfg.screen_images, []
        while 0 < k < n and self.devices is None:
            out.append(k)
            k *= 2
        return out

    def hopeless(self, ok: np.ndarray) -> bool:
        """Whether a config right on ``ok`` (per image) of the search split's first images can no longer meet the
        constraint: even if it lost no further image and gained every remaining one the float model gets wrong,
        its drop bound on the whole split would exceed ``max_drop`` (the bound grows with the images lost and
        falls with the ones gained, tested), so stopping there decides feasibility exactly."""
        s, m = self.search, len(ok)
        lost = int(np.count_nonzero(s.float_ok[:m] & ~ok))
        gained = int(np.count_nonzero(~s.float_ok[:m] & ok)) + int(np.count_nonzero(~s.float_ok[m:]))
        return score_upper(len(s.x), lost, gained, self.cfg.confidence) > self.cfg.max_drop

    def _score(self, key: Actions) -> Evaluation:
        c, n = self.cfg, len(self.search.x)
        try:  # the search split in stages (`stages`, stopping once `hopeless`), then the rest and the selection
            prec, fmt = self._resolve(self.space.decode(key))  # split in one pass; the cost model sees the search split's
            parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
            done, stop = 0, 0
            for m in self.stages():
                parts.append(self._logits(key, prec, fmt, self.search.x[done:m]))
                done = m
                if self.hopeless(np.concatenate([p[0] for p in parts]).argmax(axis=-1) == self.search.y[:m]):
                    stop = m
                    break
            if not stop:
                parts.append(self._logits(key, prec, fmt, np.concatenate([self.search.x[done:], self.select.x])))
            logits = np.concatenate([p[0] for p in parts], axis=-2)
            seen = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
            m = stop or n
            est, raw = self._terms(prec, {k: v[:m] for k, v in seen.items()})
        except XbarcError as e:  # an infeasible config (a format that cannot hold an activation, replicas
            # that need more tiles than the chip has): screened out with the reason
            return Evaluation([list(a) for a in key], -2 * c.penalty, error=str(e),
                              step_rewards=step_rewards(-2 * c.penalty, [0.0] * len(key)))
        s = self.score(self.search_part(m), logits[..., :m, :])
        sel = None if stop else self.score(self.select, logits[..., n:, :])
        hw, ratios, shares = weighted_cost(c.cost_weights, raw, self.base_terms, self.space.layers)
        reward = self.reward(s, hw)
        return Evaluation([list(a) for a in key], reward, s.bound <= c.max_drop and not stop, s.accuracy, s.drop,
                          s.bound, s.cross_entropy, s.cost_accuracy,
                          *((sel.accuracy, sel.drop, sel.bound) if sel is not None else (0.0, 1.0, 1.0)),
                          energy_pj=est.energy_pj, cycles=est.cycles, cost_terms=ratios, cost_hardware=hw,
                          step_rewards=step_rewards(reward, [-c.lam * v for v in shares]), area_mm2=est.area_mm2,
                          stopped_at=stop, select_lost=round(sel.lost) if sel is not None else 0,
                          select_gained=round(sel.gained) if sel is not None else 0)

    def search_part(self, m: int) -> Split:
        """The search split's first ``m`` images (the whole split, the same object, when m is its size)."""
        s = self.search
        return s if m >= len(s.x) else self.split_part(s, slice(0, m))

    def rescore(self, actions: Sequence[Sequence[int]], split: Split) -> tuple[SplitScore, float]:
        """Config ``actions`` scored on another split (the report's test split): its `SplitScore` and the reward
        the search's formula gives it there (the hardware cost is the evaluation's)."""
        key = self.space.canonical(actions)
        rec = self.evaluate(key)
        if rec.error is not None:
            return SplitScore(0.0, 1.0, 1.0, float("inf"), float("inf")), rec.reward
        s = self.score(split, self.logits(key, split.x)[0])
        return s, self.reward(s, rec.cost_hardware)

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
        k = len(self.space.knobs)
        prev = np.asarray(chosen[-1], dtype=np.float64) / norm if chosen else np.zeros(k)
        mean = np.mean(np.asarray(chosen, dtype=np.float64) / norm, axis=0) if chosen else np.zeros(k)
        return np.concatenate([lay, prev, mean, np.eye(n)[t]])

    @property
    def state_dim(self) -> int:
        """Length of `state`: 6 layer features, 2 x knobs of earlier choices, a one-hot of the layer index."""
        return 6 + 2 * len(self.space.knobs) + len(self.features)


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
