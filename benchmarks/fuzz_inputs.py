"""Fuzz campaign over everything a user hands xbarc: ONNX models (byte and structure mutations of the bundled
models), precision files, hardware files and damaged output directories. Every case runs through the command line
in this process (`compiler.cli.main`) and is classified:

- ``ok``: the command succeeded (and, for a model, the compiled program ran bit-exactly and agrees with
  onnxruntime on the same mutant model);
- ``error``: a clean error: exit code 2 and a message naming a file, field, option, node or tensor, no traceback
  (for a damaged output directory whose edit was re-signed in its checksums, also ``--check`` reporting the run
  not bit-exact with exit code 1);
- ``internal``: exit code 70 (an exception xbarc did not expect: a bug) or an exception escaping ``main``;
- ``wrong``: a silent wrong result: the run succeeded but is not bit-exact, or its predictions agree with
  onnxruntime's (on a mutant onnxruntime accepts) on fewer than `MIN_AGREEMENT` of the images and xbarc printed no
  warning about it;
- ``lenient``: xbarc compiled and ran a model that onnxruntime itself rejects (not an error of xbarc's numerics).

Run: ``python benchmarks/fuzz_inputs.py [--cases N] [--seed S] [--family NAME ...]``; prints one table of counts
and the first messages of every ``internal`` or ``wrong`` case. The CI suite runs a bounded version of each
family as hypothesis tests (tests/test_cli_bad_input.py, tests/test_fuzz_inputs.py).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _table import table  # noqa: E402

from compiler.cli import main  # noqa: E402

MODELS = {"mlp": ROOT / "models" / "mlp_digits.onnx", "lenet": ROOT / "models" / "lenet5_digits.onnx"}
DATASET = {"mlp": "digits", "lenet": "digits32"}
MIN_AGREEMENT = 0.9
CASE_SECONDS = 120


class Timeout(Exception):
    """A case ran longer than CASE_SECONDS (a hang)."""


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``xbarc argv`` in this process; 70 for an exception escaping main."""
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_: object) -> None:
        raise Timeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    except Timeout:
        code, err = 124, io.StringIO(f"timeout after {CASE_SECONDS} s: {argv}")
    except BaseException as e:  # noqa: BLE001 - the campaign counts what escapes
        code = 70
        err.write(f"escaped main: {type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, out.getvalue(), err.getvalue()


def classify_compile_and_run(model_path: Path, work: Path, extra: list[str], dataset: str,
                             ort_ok: bool | None) -> tuple[str, str]:
    """Compile ``model_path`` with ``extra`` options and run it on 32 images with --check: (outcome, message)."""
    out = work / "out"
    code, _, err = run_cli(["compile", str(model_path), "-o", str(out), *extra])
    if code != 0:
        return _failed(code, err)
    warned = "warning:" in err
    code, text, err = run_cli(["run", str(out), "--dataset", dataset, "--limit", "32", "--check", "--json"])
    if code == 2:
        return _failed(code, err)
    if code not in (0, 1):
        return _failed(code, err)
    report = json.loads(text)
    if report["bit_exact"] is False:
        return "wrong", "runtime differs from the functional model"
    if ort_ok is False:
        return "lenient", "onnxruntime rejects this model"
    if report["agreement"] < MIN_AGREEMENT and not warned:
        return "wrong", f"agreement with onnxruntime {report['agreement']:.2f} and no warning"
    return "ok", ""


def _failed(code: int, err: str) -> tuple[str, str]:
    first = err.strip().splitlines()[0] if err.strip() else ""
    if code == 2 and "Traceback" not in err and first:
        return "error", first
    return "internal", err.strip()[-400:]


def ort_accepts(model: onnx.ModelProto | bytes, dataset: str) -> bool:
    """Whether onnxruntime loads the model and runs it on a few images of its data set."""
    import onnxruntime as ort

    from models.datasets import load_dataset

    try:
        data = model if isinstance(model, bytes) else model.SerializeToString()
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        x, _ = load_dataset(dataset, "test")
        sess.run(None, {sess.get_inputs()[0].name: x[:4]})
        return True
    except Exception:  # noqa: BLE001 - any refusal counts
        return False


# ---- mutators ------------------------------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """A byte-level mutant: flips, truncation, insertion or a copied block."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["flip", "truncate", "insert", "copy", "zero"])
        i = rng.randrange(len(b)) if b else 0
        if kind == "flip" and b:
            b[i] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del b[i:]
        elif kind == "insert":
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "copy" and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 64)]
        elif kind == "zero" and b:
            b[i:i + rng.randint(1, 32)] = bytes(min(32, len(b) - i))
    return bytes(b)


_EXTREMES = [0.0, -0.0, 1e30, -1e30, 1e-30, float("nan"), float("inf"), -float("inf"), 65504.0, 2.0 ** -24]


def mutate_structure(model: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    """A structural mutant: values, attributes, shapes, ops, opsets and wiring changed the way bad exports do."""
    m = copy.deepcopy(model)
    g = m.graph
    kind = rng.choice(["value", "scale", "attr", "drop_node", "op_type", "shape", "opset", "dtype", "drop_init",
                       "rename_input", "zero_weight", "duplicate_node"])
    if kind in ("value", "scale", "zero_weight", "dtype") and g.initializer:
        t = rng.choice(list(g.initializer))
        a = numpy_helper.to_array(t).astype(np.float64).copy()
        if kind == "value" and a.size:
            a.flat[rng.randrange(a.size)] = rng.choice(_EXTREMES)
        elif kind == "scale":
            a = a * rng.choice([0.0, 1e-30, 1e30, -1.0, 1e6])
        elif kind == "zero_weight":
            a[...] = 0.0
        dtype = rng.choice([np.float16, np.float64, np.int64, np.int8]) if kind == "dtype" else np.float32
        with np.errstate(all="ignore"):
            t.CopyFrom(numpy_helper.from_array(a.astype(dtype), t.name))
    elif kind == "attr":
        nodes = [n for n in g.node if n.attribute]
        if nodes:
            a = rng.choice(list(rng.choice(nodes).attribute))
            if a.type == onnx.AttributeProto.INT:
                a.i = rng.choice([-1, 0, 2, 3, 1 << 40])
            elif a.type == onnx.AttributeProto.INTS and a.ints:
                a.ints[rng.randrange(len(a.ints))] = rng.choice([-1, 0, 7, 99])
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rng.choice(_EXTREMES)
    elif kind == "drop_node" and len(g.node) > 1:
        del g.node[rng.randrange(len(g.node))]
    elif kind == "duplicate_node":
        g.node.append(copy.deepcopy(rng.choice(list(g.node))))
    elif kind == "op_type":
        rng.choice(list(g.node)).op_type = rng.choice(["Relu", "Sigmoid", "Tanh", "Gemm", "Conv", "MaxPool",
                                                        "Identity", "Exp", "Softmax", "Add", "Flatten", "LRN"])
    elif kind == "shape":
        dims = g.input[0].type.tensor_type.shape.dim
        d = dims[rng.randrange(len(dims))]
        d.Clear()
        choice = rng.choice([0, 1, 3, 7, 4096, "sym"])
        if choice == "sym":
            d.dim_param = "H"
        else:
            d.dim_value = int(choice)
    elif kind == "opset":
        m.opset_import[0].version = rng.choice([1, 6, 7, 11, 17, 21, 99])
    elif kind == "drop_init" and g.initializer:
        del g.initializer[rng.randrange(len(g.initializer))]
    elif kind == "rename_input":
        g.input[0].name = "renamed"
    return m


_KEYS = ["w_bits", "w_frac", "in_bits", "in_frac", "acc_bits", "acc_frac", "adc_bits", "w_enc", "in_enc", "skip",
         "w_scheme", "w_k", "w_channels", "preset", "layers", "bogus"]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value biased towards the shapes of xbarc's config files."""
    kind = rng.choice(["int", "float", "str", "bool", "null", "list", "dict"] if depth < 3 else ["int", "str"])
    if kind == "int":
        return rng.choice([0, 1, 2, 4, 8, 16, 32, 64, -1, -5, 10 ** 20, 7])
    if kind == "float":
        return rng.choice([0.5, -1.5, 1e308, 3.0])
    if kind == "str":
        return rng.choice(["16bit", "8bit", "sce", "tc", "csd", "twos", "uniform", "varied", "nonuniform", "", "x"])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(_KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_precision(rng: random.Random, layers: list[str]) -> Any:
    """A precision file: mostly well-formed structure with bad values, sometimes bad structure."""
    if rng.random() < 0.2:
        return random_json(rng)
    doc: dict[str, Any] = {"preset": rng.choice(["16bit", "8bit", "4bit", "puma", "nope", 16])}
    doc["layers"] = {rng.choice(layers + ["ghost"]): {rng.choice(_KEYS[:13]): random_json(rng, 2)
                                                        for _ in range(rng.randint(1, 3))}
                     for _ in range(rng.randint(0, 3))}
    return doc


def random_hardware(rng: random.Random, fields: list[str], cost_fields: list[str]) -> Any:
    """A hardware file: a few fields of the real schema with random values (and sometimes unknown ones)."""
    if rng.random() < 0.15:
        return random_json(rng)
    doc: dict[str, Any] = {f: random_json(rng, 2) for f in rng.sample(fields, rng.randint(1, 3))}
    if rng.random() < 0.4:
        doc["costs"] = {f: rng.choice([-5, 0, float("nan"), 1e30, "x", 1.0]) for f in rng.sample(cost_fields, 2)}
    return doc


# ---- families ------------------------------------------------------------------------------------------------------
def family_onnx_bytes(rng: random.Random, work: Path) -> tuple[str, str]:
    name = rng.choice(list(MODELS))
    data = mutate_bytes(MODELS[name].read_bytes(), rng)
    path = work / "m.onnx"
    path.write_bytes(data)
    return classify_compile_and_run(path, work, [], DATASET[name], ort_accepts(data, DATASET[name]))


def family_onnx_structure(rng: random.Random, work: Path) -> tuple[str, str]:
    name = rng.choice(list(MODELS))
    m = mutate_structure(onnx.load(MODELS[name]), rng)
    path = work / "m.onnx"
    path.write_bytes(m.SerializeToString())
    return classify_compile_and_run(path, work, [], DATASET[name], ort_accepts(m, DATASET[name]))


def family_precision(rng: random.Random, work: Path) -> tuple[str, str]:
    name = rng.choice(list(MODELS))
    layers = [n.name for n in onnx.load(MODELS[name]).graph.node if n.op_type in ("Gemm", "Conv")]
    path = work / "p.json"
    path.write_text(json.dumps(random_precision(rng, layers)))
    return classify_compile_and_run(MODELS[name], work, ["--precision", str(path)], DATASET[name], True)


def family_hardware(rng: random.Random, work: Path) -> tuple[str, str]:
    import dataclasses

    from isa.hardware import CostTable, HardwareConfig

    fields = [f.name for f in dataclasses.fields(HardwareConfig) if f.name != "costs"] + ["bogus"]
    cost_fields = [f.name for f in dataclasses.fields(CostTable)]
    path = work / "hw.json"
    path.write_text(json.dumps(random_hardware(rng, fields, cost_fields)))
    return classify_compile_and_run(MODELS["mlp"], work, ["--hardware", str(path)], "digits", True)


_COMPILED: dict[str, Path] = {}


def family_outdir(rng: random.Random, work: Path) -> tuple[str, str]:
    from isa.files import write_checksums

    if "mlp" not in _COMPILED:
        base = Path(tempfile.mkdtemp(prefix="xbarc-fuzz-base-")) / "mlp"
        code, _, err = run_cli(["compile", str(MODELS["mlp"]), "-o", str(base)])
        assert code == 0, err
        _COMPILED["mlp"] = base
    out = work / "out"
    shutil.copytree(_COMPILED["mlp"], out)
    victim = rng.choice(sorted(p.name for p in out.iterdir()))
    path = out / victim
    path.write_bytes(mutate_bytes(path.read_bytes(), rng)) if rng.random() < 0.9 else path.unlink()
    if rng.random() < 0.5 and victim != "checksums.json":
        write_checksums(out)  # a consistent hand edit: the loaders' own checks must catch what is wrong
    code, text, err = run_cli(["run", str(out), "--dataset", "digits", "--limit", "32", "--check", "--json"])
    if code in (0, 1):
        if json.loads(text)["bit_exact"] is False:  # a re-signed edit of the image: --check names it, exit 1
            return ("error", "--check: not bit-exact (exit 1)") if code == 1 else ("wrong", "not bit-exact, exit 0")
        return "ok", ""
    return _failed(code, err)


FAMILIES: dict[str, Callable[[random.Random, Path], tuple[str, str]]] = {
    "onnx-bytes": family_onnx_bytes, "onnx-structure": family_onnx_structure, "precision": family_precision,
    "hardware": family_hardware, "outdir": family_outdir,
}
OUTCOMES = ("ok", "error", "lenient", "internal", "wrong")


def campaign(cases: int, seed: int, families: list[str]) -> dict[str, Counter]:
    """Run ``cases`` cases of each family; the counts per outcome, and the messages of the bad ones printed."""
    counts: dict[str, Counter] = {}
    for fam in families:
        rng = random.Random(f"{seed}-{fam}")
        counts[fam] = Counter()
        bad: list[str] = []
        t0 = time.perf_counter()
        for i in range(cases):
            with tempfile.TemporaryDirectory(prefix="xbarc-fuzz-") as d:
                outcome, msg = FAMILIES[fam](rng, Path(d))
            counts[fam][outcome] += 1
            if outcome in ("internal", "wrong") and len(bad) < 8:
                bad.append(f"  case {i}: {outcome}: {msg}")
        print(f"{fam}: {cases} cases in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for line in bad:
            print(line, file=sys.stderr)
    return counts


def main_cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200, help="cases per family")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", action="append", choices=list(FAMILIES), help="default: every family")
    a = p.parse_args()
    counts = campaign(a.cases, a.seed, a.family or list(FAMILIES))
    rows = [[fam] + [c[o] for o in OUTCOMES] + [sum(c.values())] for fam, c in counts.items()]
    total = Counter()
    for c in counts.values():
        total.update(c)
    rows.append(["total"] + [total[o] for o in OUTCOMES] + [sum(total.values())])
    print(table(rows, ["family", *OUTCOMES, "cases"]))


if __name__ == "__main__":
    main_cli()
