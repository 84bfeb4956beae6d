"""The xbarc command line, end to end on the bundled MLP."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from compiler.cli import main

from conftest import MLP


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "mlp"
    assert main(["compile", str(MLP), "-o", str(out)]) == 0
    return out


def test_compile_writes_every_artifact(outdir):
    names = {p.name for p in outdir.iterdir()}
    assert {"program.s", "program.bin", "image.npz", "manifest.json", "precision.json", "mapping.json",
            "model.onnx", "ir.txt"} <= names
    prec = json.loads((outdir / "precision.json").read_text())
    assert set(prec["layers"]) == {"fc1", "fc2", "fc3"}
    assert prec["layers"]["fc1"]["w_bits"] == 16


def test_run_dataset_json(outdir, capsys):
    assert main(["run", str(outdir), "--dataset", "digits", "--check", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "reference_accuracy", "agreement", "energy_pj", "cycles", "bit_exact", "per_layer",
                "per_component"):
        assert key in r
    assert r["bit_exact"] is True and r["images"] == 360
    assert set(r["per_layer"]) >= {"fc1", "fc2", "fc3"}
    assert r["energy_pj"] == pytest.approx(sum(r["per_component"].values()), rel=1e-9)


def test_run_dataset_text(outdir, capsys):
    assert main(["run", str(outdir), "--dataset", "digits", "--check", "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact: yes" in out and "accuracy (onnxruntime float)" in out and "per component:" in out


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_run_inputs_saves_outputs(outdir, tmp_path, suffix, digits_test):
    x = digits_test[0][:5]
    src = tmp_path / f"x{suffix}"
    np.save(src, x) if suffix == ".npy" else np.savez(src, input=x)
    dst = tmp_path / "y.npy"
    assert main(["run", str(outdir), "--inputs", str(src), "-o", str(dst), "--check"]) == 0
    y = np.load(dst)
    assert y.shape == (5, 10)
    from compiler.runner import reference_outputs
    from compiler.frontend import load_model

    ref = reference_outputs(load_model(MLP), {"input": x}, ["logits"])["logits"]
    assert np.abs(y - ref).max() < 0.05


def test_inspect_json(outdir, capsys):
    assert main(["inspect", str(outdir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("crossbars", "tiles", "cores", "static_instructions", "layers"):
        assert key in info
    assert [lay["layer"] for lay in info["layers"]] == ["fc1", "fc2", "fc3"]
    assert info["static_instructions"] == sum(lay["static_instructions"] for lay in info["layers"])


def test_asm_disasm_round_trip_is_byte_identical(outdir, tmp_path):
    b1, s2, b2 = tmp_path / "a.bin", tmp_path / "b.s", tmp_path / "b.bin"
    assert main(["asm", str(outdir / "program.s"), "-o", str(b1)]) == 0
    assert b1.read_bytes() == (outdir / "program.bin").read_bytes()
    assert main(["disasm", str(b1), "-o", str(s2)]) == 0
    assert main(["asm", str(s2), "-o", str(b2)]) == 0
    assert b1.read_bytes() == b2.read_bytes()


def test_compile_is_deterministic(outdir, tmp_path):
    again = tmp_path / "again"
    assert main(["compile", str(MLP), "-o", str(again)]) == 0
    for name in ("program.s", "program.bin", "precision.json", "mapping.json"):
        assert (again / name).read_bytes() == (outdir / name).read_bytes(), name
    with np.load(again / "image.npz") as a, np.load(outdir / "image.npz") as b:  # crossbar contents and layouts
        assert sorted(a.files) == sorted(b.files) and any(k.startswith("layout_") for k in a.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_bad_precision_config_names_layer_and_option(tmp_path, capsys):
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"layers": {"fc2": {"adc_bits": 40}}}))
    assert main(["compile", str(MLP), "-o", str(tmp_path / "o"), "--precision", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "p.json: layers.fc2.adc_bits: must be an integer in [1, 10] or 0 (0: full resolution), got 40" in err
    assert not (tmp_path / "o").exists()


def test_unsupported_model_error_is_clean(tmp_path):
    import onnx
    from onnx import helper, TensorProto

    node = helper.make_node("Exp", ["x"], ["y"], name="the_exp")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    proc = subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(path), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Exp (node 'the_exp')" in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_dynamic_counts_match_a_run(outdir, capsys):
    assert main(["inspect", str(outdir), "--json", "--dynamic"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert main(["run", str(outdir), "--dataset", "digits", "--limit", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert info["dynamic_instructions"] == r["dynamic_instructions"]


def test_inspect_mvmus_agrees_with_the_mapping(outdir, capsys):
    assert main(["inspect", str(outdir), "--json", "--mvmus"]) == 0
    info = json.loads(capsys.readouterr().out)
    rows = info["mvmu_images"]
    assert len(rows) == info["mvmus"] and sum(r["crossbars"] for r in rows) == info["crossbars"]
    assert all(r["live_lines"] <= 2 * r["slices"] * r["cols"] and r["steps"] >= (r["live_lines"] > 0) for r in rows)
    assert main(["inspect", str(outdir), "--mvmus"]) == 0
    assert "conversions_per_digit" in capsys.readouterr().out


def test_search_writes_best_config_log_and_measured_summary(tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", str(MLP), "--dataset", "digits", "--budget", "10", "--seed", "1", "--search-images",
                 "256", "--max-drop", "2%", "--test-images", "32", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    best = json.loads((out / "best.json").read_text())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert set(best["layers"]) == {"fc1", "fc2", "fc3"}
    assert len({json.dumps(x["actions"]) for x in log if not x["cached"]}) == 10
    assert {"actions", "reward", "cost_accuracy", "cost_hardware", "policy_loss", "select_bound"} <= set(log[-1])
    assert json.loads((out / "search.json").read_text())["budget"] == 10 and (out / "evaluations.sqlite").exists()
    assert "chosen: pareto point" in text and "drop on 'val' is <= 2%" in text
    # the summary is measured on the runtime: both rows bit-exact, on the 32 test images asked for
    assert "measured on the runtime, 32 test images" in text and "16-bit baseline" in text
    assert text.count("yes") >= 2 and "NO" not in text.split("bit-exact")[-1]
    # the config written compiles
    assert main(["compile", str(MLP), "--precision", str(out / "best.json"), "-o", str(tmp_path / "q")]) == 0


def test_search_bonferroni_choice_on_several_splits(tmp_path, capsys):
    """--select-split val,fit --select-correction bonferroni: the choice's bound in pareto.json is each point's at the
    corrected level (above its own), and meets_max_drop is read from it."""
    out = tmp_path / "search"
    assert main(["search", str(MLP), "--dataset", "digits", "--budget", "8", "--seed", "1", "--search-images",
                 "256", "--max-drop", "2%", "--test-images", "16", "--select-split", "val,fit",
                 "--select-correction", "bonferroni", "-o", str(out)]) == 0
    text = capsys.readouterr()
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["select_correction"] == "bonferroni" and doc["select_images"] == 256 + 1181 - 256
    assert all(p["choice_bound"] >= p["select_bound"] for p in doc["points"])
    assert all(p["meets_max_drop"] == (p["choice_bound"] <= 0.02) for p in doc["points"])
    assert "configs scored there (Bonferroni)" in text.out + text.err
