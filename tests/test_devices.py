"""Non-ideal devices (runtime/devices.py, docs/devices.md): every non-ideality at zero reproduces the exact
outputs bit for bit; stuck-at rate 1 gives the documented outputs (those of all-zero weights); drift that halves
every conductance gives the ADC's rounding of half the bit-line values (a loop oracle); same seed, same result."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from compiler import runner
from compiler.cli import main
from isa import MvmuImage
from isa.errors import ConfigError
from runtime import Machine
from runtime.devices import PRESETS, DeviceModel, device_model, load_devices
from support import HW, I, M, compile_model, loc, program


@pytest.fixture(scope="module")
def models():
    """LeNet-MNIST under three mappings and precisions that exercise clipping, skipping, SCE and CSD."""
    cfgs = {"spatial": {"preset": "8bit", "default": {"adc_bits": 5, "skip": 6, "w_enc": "sce", "in_enc": "csd"}},
            "naive": "8bit", "temporal": {"preset": "4bit", "default": {"adc_bits": 4}}}
    return {m: compile_model("models/lenet5_mnist.onnx", precision=c, mapping=m) for m, c in cfgs.items()}


def _inputs(cm, n=24):
    from models.datasets import load_for_shape

    x, y = load_for_shape("mnist", "test", tuple(cm.program.inputs[0].shape))
    return runner.quantize_inputs(cm, {cm.program.inputs[0].name: x[:n]}), y[:n]


@pytest.mark.parametrize("mapping", ["spatial", "naive", "temporal"])
def test_zero_non_idealities_reproduce_the_exact_outputs(models, mapping):
    cm = models[mapping]
    q, _ = _inputs(cm)
    m = Machine(cm.program)
    exact = m.run(q)
    for dev in (PRESETS["ideal"], DeviceModel(on_off_ratio=10.0, seed=3)):
        r = m.run(q, devices=dev)
        for k, v in exact.outputs.items():
            assert np.array_equal(r.outputs[k], v)
        assert r.stats.energy_pj == exact.stats.energy_pj and r.stats.cycles == exact.stats.cycles


def test_stuck_at_rate_one_gives_the_outputs_of_all_zero_weights(models):
    """Every cell stuck at G_on (or at G_off): the (+) and (-) currents are equal, every conversion reads 0 and
    every MVM returns 0 -- the outputs of the same program with all-zero weights (docs/devices.md)."""
    cm = models["naive"]
    q, _ = _inputs(cm)
    zero = dataclasses.replace(cm.program, mvmus=[dataclasses.replace(img, weights=np.zeros_like(img.weights))
                                                  for img in cm.program.mvmus])
    want = Machine(zero).run(q).outputs
    for dev in (DeviceModel(stuck_on=1.0), DeviceModel(stuck_off=1.0, on_off_ratio=20.0)):
        got = Machine(cm.program).run(q, devices=dev).outputs
        assert all(np.array_equal(got[k], want[k]) for k in want)
    assert not all(np.array_equal(Machine(cm.program).run(q).outputs[k], want[k]) for k in want)


def _cell1_hw():
    return HW.with_changes(cell_bits=1, name="cell1")


def test_drift_halving_every_conductance_rounds_half_the_bit_line_values():
    """nu = 1 at t = 2 t0 halves every conductance: each conversion is round-half-even(v / 2), clipped (1-bit
    cells keep every level exact in floating point). Oracle: rule MVM with Python loops."""
    hw = _cell1_hw()
    rng = np.random.default_rng(5)
    w = rng.integers(-7, 8, (20, 6))
    x = rng.integers(-8, 8, (5, 20))
    wbits, ibits, adc = 4, 4, 4
    code = [I("load", hw.mvmu_in(0), M(0), 20), I("mvm", 1, ibits, adc, 0, 32, 0, -1),
            I("store", M(200), hw.mvmu_out(0), 6, 0), I("halt")]
    prog = program({(0, 0): code}, hw=hw, mvmus=[MvmuImage(0, 0, 0, w, wbits)],
                   inputs=[loc("x", 0, 0, 20, 8)], outputs=[loc("y", 0, 200, 6, 32)])
    got = Machine(prog).run({"x": x}, devices=DeviceModel(drift_nu=1.0, drift_t=2.0, drift_t0=1.0)).outputs["y"]
    lo, hi = -(1 << (adc - 1)), (1 << (adc - 1)) - 1
    want = np.zeros((5, 6), dtype=np.int64)
    for b in range(5):
        for c in range(6):
            total = 0
            for j in range(ibits):
                sig = -(1 << j) if j == ibits - 1 else (1 << j)
                for s in range(wbits - 1):
                    v = 0
                    for r in range(20):
                        d = (int(x[b, r]) % (1 << ibits)) >> j & 1
                        mag, sign = abs(int(w[r, c])), (1 if w[r, c] > 0 else -1)
                        v += d * sign * ((mag >> s) & 1)
                    total += sig * (1 << s) * min(hi, max(lo, int(np.rint(v / 2))))
            want[b, c] = total
    assert np.array_equal(got, want)


def test_same_seed_same_result_other_seed_or_trial_another(models):
    cm = models["spatial"]
    q, _ = _inputs(cm)
    m = Machine(cm.program)
    dev = DeviceModel(prog_sigma=0.1, read_sigma=0.05, stuck_on=0.01, drift_nu=0.05, drift_nu_std=0.01,
                      drift_t=100.0, seed=7)
    a, b = m.run(q, devices=dev), m.run(q, devices=dev)
    name = cm.program.outputs[0].name
    assert np.array_equal(a.outputs[name], b.outputs[name])
    assert not np.array_equal(a.outputs[name], m.run(q, devices=dev.with_changes(seed=8)).outputs[name])
    assert not np.array_equal(a.outputs[name], m.run(q, devices=dev, trial=1).outputs[name])
    assert not np.array_equal(a.outputs[name], m.run(q).outputs[name])


def test_device_files_and_presets(tmp_path):
    assert load_devices("reram-wan2022") is PRESETS["reram-wan2022"]
    for p in PRESETS.values():
        assert p.source
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"preset": "reram-saf-chen2015", "stuck_on": 0.5}))
    d = load_devices(str(f))
    assert (d.stuck_on, d.stuck_off, d.seed) == (0.5, 0.0175, 0)
    for doc, msg in [({"prog_sigma": -1}, "field 'prog_sigma': must be"), ({"bogus": 1}, "unknown field 'bogus'"),
                     ({"preset": "x"}, "field 'preset'"), ({"stuck_on": 0.6, "stuck_off": 0.6}, "sum to 1.2"),
                     ({"prog_mode": "rel"}, "field 'prog_mode'")]:
        with pytest.raises(ConfigError, match=msg):
            device_model(doc, "d.json")


def test_cli_run_devices_reports_trials(models, tmp_path, capsys):
    models["naive"].save(tmp_path / "out")
    args = ["run", str(tmp_path / "out"), "--dataset", "mnist", "--limit", "32", "--json", "--check"]
    assert main(args + ["--devices", "ideal", "--trials", "2"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["bit_exact"] is True
    d = r["devices"]
    assert d["accuracy_mean"] == r["accuracy"] and d["accuracy_std"] == 0.0
    assert d["agreement_with_exact_mean"] == 1.0 and d["output_max_abs_change"] == 0.0
    assert main(args + ["--devices", "reram-saf-chen2015", "--trials", "3"]) == 0
    d = json.loads(capsys.readouterr().out)["devices"]
    assert d["trials"] == 3 and d["output_max_abs_change"] > 0
    assert main(["run", str(tmp_path / "out"), "--dataset", "mnist", "--devices", "nope"]) == 2
    assert "neither a preset" in capsys.readouterr().err


def test_robust_search_scores_on_the_runtime_under_a_device_model():
    """The search option: with ideal devices the runtime's scores equal the functional model's (the runtime is
    bit-exact); with every cell stuck the accuracy term sees the damage."""
    from compiler.search.env import EnvConfig, SearchEnv
    from support import DATA

    kw = dict(search_split="val", search_images=32, select_split="calib", select_images=16, data=DATA)
    plain = SearchEnv(EnvConfig("models/mlp_digits.onnx", "digits", **kw))
    ideal = SearchEnv(EnvConfig("models/mlp_digits.onnx", "digits", devices="ideal", device_trials=2, **kw))
    rng = np.random.default_rng(2)
    acts = tuple(tuple(int(rng.integers(n)) for n in plain.space.sizes) for _ in plain.space.layers)
    a, b = plain.evaluate(acts), ideal.evaluate(acts)
    assert (a.accuracy, a.select_accuracy) == (b.accuracy, b.select_accuracy)
    assert a.cross_entropy == pytest.approx(b.cross_entropy) and a.reward == pytest.approx(b.reward)
    stuck = SearchEnv(EnvConfig("models/mlp_digits.onnx", "digits", devices="reram-saf-chen2015",
                                device_trials=2, **kw))
    assert stuck.evaluate(acts).accuracy < a.accuracy - 0.2


def test_cli_run_inputs_with_devices(models, tmp_path, capsys):
    from models.datasets import load_for_shape

    cm = models["naive"]
    cm.save(tmp_path / "out")
    x, _ = load_for_shape("mnist", "test", tuple(cm.program.inputs[0].shape))
    np.save(tmp_path / "x.npy", x[:4])
    assert main(["run", str(tmp_path / "out"), "--inputs", str(tmp_path / "x.npy"), "--json", "--devices",
                 "ideal", "--trials", "1"]) == 0
    d = json.loads(capsys.readouterr().out)["devices"]
    assert d["accuracy_mean"] is None and d["output_max_abs_change"] == 0.0
