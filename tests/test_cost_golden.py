"""Regression oracle: the runtime's energy and cycle counters on every bundled model and config, and the search's
cost estimates, equal the ones the code computed before the operand/accountant/codegen refactor (issue 13).

``tests/golden/costs.json`` was written by ``python tests/test_cost_golden.py --write`` on the pre-refactor code
(commit 3b4edeb). Cycles and instruction counts compare exactly; energies with a relative tolerance of 1e-9
(summation order may change). Regenerate only for a change that is meant to change costs, and say so. The
``search`` section was regenerated for issue 20's static cost model (no runtime calibration run; the estimates
moved by at most 0.09 % energy and 0.43 % cycles, each now within 0.45 % of the runtime, docs/search.md); the
``runtime`` section is the pre-refactor one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "costs.json"
IMAGES = 4
REL = 1e-9

MODELS = {"mlp": "mlp_digits", "lenet": "lenet5_digits", "resnet": "resnet_digits"}
TECHNIQUES = {"all+adc5": {"w_enc": "sce", "in_enc": "csd", "skip": 4, "adc_bits": 5},
              "tc+adc5": {"w_enc": "tc", "in_enc": "csd", "skip": 4, "adc_bits": 5},
              "nonuniform": {"w_scheme": "nonuniform", "w_bits": 4}}


def cases() -> dict[str, dict[str, Any]]:
    """Case name -> compile arguments: every bundled model x precision preset x mapping mode on the default
    chip, the PUMA chip, the seed techniques, replication, the densest temporal budget and the PUMA MLP."""
    out: dict[str, dict[str, Any]] = {}
    for m in MODELS:
        for prec in ("16bit", "8bit", "4bit"):
            for mapping in ("naive", "spatial", "temporal"):
                out[f"{m}/{prec}/{mapping}"] = {"model": m, "precision": prec, "mapping": mapping}
        out[f"{m}/8bit/spatial/puma"] = {"model": m, "precision": "8bit", "mapping": "spatial", "hw": "puma"}
        for t, cfg in TECHNIQUES.items():
            for mapping in ("naive", "spatial"):
                out[f"{m}/{t}/{mapping}"] = {"model": m, "precision": {"preset": "8bit", "default": cfg},
                                             "mapping": mapping}
    out["lenet/8bit/spatial/replicate3"] = {"model": "lenet", "precision": "8bit", "mapping": "spatial",
                                            "replicate": 3}
    out["lenet/16bit/temporal/budget0"] = {"model": "lenet", "precision": "16bit", "mapping": "temporal",
                                           "crossbar_budget": 0}
    out["puma_mlp/puma/naive"] = {"model": "puma_mlp", "precision": "puma", "mapping": "naive", "hw": "puma"}
    return out


def build(case: dict[str, Any]) -> tuple[Any, np.ndarray]:
    """The compiled model of one case and its input batch (the first test images)."""
    from support import compile_model
    from models.datasets import for_shape, load_dataset

    kw = {k: v for k, v in case.items() if k not in ("model", "precision")}
    if case["model"] == "puma_mlp":
        from models.puma_mlp import build_puma_mlp, puma_input

        return compile_model(build_puma_mlp(), case["precision"], **kw), np.repeat(puma_input(), 2, axis=0)
    cm = compile_model(ROOT / "models" / f"{MODELS[case['model']]}.onnx", case["precision"], **kw)
    loc = cm.program.inputs[0]
    x, _ = load_dataset(for_shape("digits", tuple(loc.shape)), "test")
    return cm, x[:IMAGES].reshape((IMAGES,) + tuple(loc.shape))


def measure(case: dict[str, Any]) -> dict[str, Any]:
    """Compile one case and run it; the counters of the run and digests of its assembly text and binary."""
    from compiler import runner
    from isa import encode_program, format_program

    cm, x = build(case)
    st = runner.run(cm, {cm.program.inputs[0].name: x}).stats
    return {"cycles": st.cycles, "energy_pj": st.energy_pj, "per_component": st.per_component,
            "per_instruction": st.per_instruction, "per_layer": st.per_layer, "per_core": st.per_core,
            "per_core_busy": st.per_core_busy, "dynamic_instructions": st.dynamic_instructions,
            "asm_sha256": hashlib.sha256(format_program(cm.program).encode()).hexdigest(),
            "bin_sha256": hashlib.sha256(encode_program(cm.program)).hexdigest()}


SEARCH = {"mlp/naive": ("models/mlp_digits.onnx", "digits", 3, "naive"),
          "mlp/spatial": ("models/mlp_digits.onnx", "digits", 2, "spatial"),
          "lenet/temporal": ("models/lenet5_digits.onnx", "digits32", 1, "temporal")}


def search_estimates(key: str) -> list[dict[str, Any]]:
    """The search environment's cost estimates of a few random configs (as `test_search` draws them)."""
    from compiler.search import EnvConfig, SearchEnv

    model, dataset, n, mapping = SEARCH[key]
    from support import DATA

    env = SearchEnv(EnvConfig(model, dataset, search_split="val", search_images=8, select_split="calib",
                              select_images=8, mapping=mapping, data=DATA))
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        acts = tuple(tuple(int(rng.integers(k)) for k in env.space.sizes) for _ in env.space.layers)
        r = env.evaluate(acts)
        out.append({"energy_pj": r.energy_pj, "cycles": r.cycles})
    return out


def _close(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=REL, abs=1e-12), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got} != {want}"


def _golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(cases()))
def test_runtime_counters_unchanged(name: str) -> None:
    want = _golden()["runtime"][name]
    _close(json.loads(json.dumps(measure(cases()[name]))), want, name)


@pytest.mark.parametrize("key", list(SEARCH))
def test_search_estimates_unchanged(key: str) -> None:
    _close(search_estimates(key), _golden()["search"][key], key)


GOLDEN_ASM = ROOT / "tests" / "golden" / "mlp_8bit_spatial.s"


def test_golden_program_text_and_binary() -> None:
    """The MLP at 8 bits (spatial mapping) prints to the committed text, which assembles and encodes back to the
    same bytes as the compiled program."""
    from isa import assemble, encode_program, format_program

    cm, _ = build(cases()["mlp/8bit/spatial"])
    text = format_program(cm.program)
    assert text == GOLDEN_ASM.read_text()
    again = assemble(text, hw=cm.program.hw)
    assert encode_program(again) == encode_program(cm.program)
    assert format_program(again) == text


def main() -> None:
    """``--write``: recompute every case and write the golden file."""
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_cost_golden.py --write")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    doc = {"runtime": {name: measure(c) for name, c in cases().items()},
           "search": {k: search_estimates(k) for k in SEARCH}}
    GOLDEN.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    from isa import format_program

    GOLDEN_ASM.write_text(format_program(build(cases()["mlp/8bit/spatial"])[0].program))
    print(f"wrote {GOLDEN}: {len(doc['runtime'])} runtime cases, {len(doc['search'])} search cases")


if __name__ == "__main__":
    main()
