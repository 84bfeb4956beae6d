"""Conv replication per layer (issue 20, part 4): the precision config's ``replicate`` option, the mapping and the
program honouring it (results unchanged, bit-exact), the search knob, its cost estimate against the runtime's
counters, and the chip's capacity screening a config out with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from isa.errors import ConfigError
from compiler.runner import evaluate, run
from compiler.search import EnvConfig, SearchEnv
from compiler.search.space import KNOBS, SearchSpace
from models.datasets import load_for_shape
from support import DATA, compile_model

LENET = "models/lenet5_digits.onnx"


def test_per_layer_replicate_is_honoured_and_bit_exact() -> None:
    x, y = load_for_shape("digits32", "test", (1, 32, 32))
    x, y = x[:8].reshape(8, 1, 32, 32), y[:8]
    plain = compile_model(LENET, "4bit", data=DATA)
    cfg = {"preset": "4bit", "layers": {"conv1": {"replicate": 4}}}
    rep = compile_model(LENET, cfg, data=DATA)
    assert rep.mapping.layers["conv1"].replicas == 4 and rep.mapping.layers["conv2"].replicas == 1
    r = evaluate(rep, x, y)
    assert r["bit_exact"]
    a = run(plain, {plain.program.inputs[0].name: x})
    b = run(rep, {rep.program.inputs[0].name: x})
    name = plain.program.outputs[0].name
    assert np.array_equal(a.device_int[name], b.device_int[name])  # replication changes cost, never results
    assert b.stats.cycles < a.stats.cycles
    # the compile's --replicate applies where a layer gives none of its own
    both = compile_model(LENET, cfg, data=DATA, replicate=2)
    assert both.mapping.layers["conv1"].replicas == 4 and both.mapping.layers["conv2"].replicas == 2
    assert "replicate" not in json.loads(json.dumps(plain.precision["conv1"].to_dict()))
    assert rep.precision["conv1"].to_dict()["replicate"] == 4


def test_replicate_on_a_dense_layer_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"layers\.fc1\.replicate: replication splits a conv layer's output "
                                          r"rows; fc1 is a dense layer"):
        compile_model(LENET, {"layers": {"fc1": {"replicate": 2}}}, data=DATA)
    with pytest.raises(ConfigError, match=r"layers\.conv1\.replicate: must be an integer in \[1, 1024\]"):
        compile_model(LENET, {"layers": {"conv1": {"replicate": 0}}}, data=DATA)
    # a default's replicate applies to the conv layers only
    cm = compile_model(LENET, {"preset": "8bit", "default": {"replicate": 2}}, data=DATA)
    assert [cm.mapping.layers[n].replicas for n in ("conv1", "conv2", "fc1")] == [2, 2, 1]


def _env(replicas: tuple[int, ...], hardware: str | None = None) -> SearchEnv:
    return SearchEnv(EnvConfig(LENET, "digits32", search_split="val", search_images=8, select_split="calib",
                               select_images=8, replicas=replicas, hardware=hardware, data=DATA))


def test_replication_knob_in_the_space() -> None:
    env = _env((1, 2, 4, 8, 16, 32))
    sp = env.space
    assert sp.knobs == KNOBS + ("replicate",) and env.state_dim == 6 + 2 * len(sp.knobs) + len(sp.layers)
    i = sp.knobs.index("replicate")
    base = [list(a) for a in sp.baseline()]
    for li, want in ((0, 5), (1, 4), (2, 0)):  # conv1 has 28 output rows, conv2 10, fc1 none
        acts = [list(a) for a in base]
        acts[li][i] = 5  # 32 copies: conv1 in 28 bands of one row; conv2 in 10, as 16 copies make them
        got = sp.canonical(acts)[li][i]
        assert got == want, (li, got)
    acts = [list(a) for a in base]
    acts[0][i] = 2
    cfg = sp.decode(acts)
    assert cfg["layers"]["conv1"]["replicate"] == 4 and "replicate" not in cfg["layers"]["fc1"]
    assert sp.encode(cfg) == sp.canonical(acts)
    assert _env((1,)).space.knobs == KNOBS  # one value: the knob is not searched, the space is today's
    with pytest.raises(ConfigError, match=r"search knob 'replicate' \(--replicas\): values \[2, 4\] must be "
                                          r"increasing integers starting at 1"):
        SearchSpace.build(env.g, env.hw, (2, 4))


def test_replicated_cost_estimate_matches_runtime() -> None:
    """Random configs (seed 0) with 1, 2, 4 or 8 replicas per conv, estimated and run on the same 8 images.
    Measured: within 0.4 % energy and 0.6 % cycles, 8 replicas (whose layers spill onto further tiles and
    forward their tensors) included; asserted 2 % / 3 %, as the unreplicated agreement test."""
    env = _env((1, 2, 4, 8))
    rng = np.random.default_rng(0)
    errs, reps = [], set()
    while len(errs) < 4:
        acts = tuple(tuple(int(rng.integers(k)) for k in env.space.sizes) for _ in env.space.layers)
        rec = env.evaluate(acts)
        if rec.error:
            continue
        cfg = env.config(acts)
        reps |= {spec.get("replicate", 1) for spec in cfg["layers"].values()}
        cm = env.compile(cfg)
        st = run(cm, {cm.program.inputs[0].name: env.x}).stats
        errs.append((abs(rec.energy_pj / st.energy_pj - 1), abs(rec.cycles / st.cycles - 1)))
    assert 8 in reps and reps - {1, 8}, reps
    e = np.array(errs)
    assert e[:, 0].max() < 0.02 and e[:, 1].max() < 0.03, errs


def test_the_chip_bounds_the_knob(tmp_path: Path) -> None:
    """A config whose replicas need more tiles than the chip has is screened out with the reason."""
    free = _env((1, 8))
    tiles = free.compile(free.config(free.space.baseline())).mapping.tiles
    hw = tmp_path / "small.json"
    hw.write_text(json.dumps({"tiles": tiles}))
    env = _env((1, 8), str(hw))
    assert env.baseline.error is None
    acts = [list(a) for a in env.space.baseline()]
    acts[0][env.space.knobs.index("replicate")] = 1
    rec = env.evaluate(acts)
    assert rec.error is not None and "tiles" in rec.error and not rec.feasible
    assert rec.reward == -2 * env.cfg.penalty
