"""The nine real zoo architectures onnx ships in its wheel: how far each gets through xbarc.

Usage: python benchmarks/real_models.py [--models squeezenet vgg19 ...] [--run] [--random-weights]
                                       [--drop-lrn] [--tile-mem-words N] [--upto TENSOR] [--timeout 900] [--json]

The models are ``onnx/backend/test/data/light/light_*.onnx`` (real architectures, IR version 3, opset 9, weights
as ConstantOfShape of one value, initializers listed among the graph inputs). For each one, in its own subprocess
(so a crash or the memory of one does not affect the others): load, import (frontend + canonicalization),
compile at the 16-bit preset on a hardware description large enough for any of them (chip size is a separate
issue), calibrating on the input onnx ships the expected output for (``arange(n) / n``), and with ``--run``
execute that image on the runtime, check it bit for bit against the functional model and report the largest
error relative to the largest magnitude, of the device output against onnxruntime's value of that tensor and of
the model's output against onnx's expected output (the light models' constant weights make the final Softmax
nearly uniform, so the device output is the informative one; those weights, all 0.02, also make activations
grow to ~1e10 in SqueezeNet and VGG-19, beyond what the 16-bit preset's 32-bit accumulators hold, so the device
output saturates there: a precision question, not a frontend one). ``--random-weights`` replaces the Conv/Gemm
weights by He-initialized random ones (`randomized`), and compares with onnxruntime on that model instead. The table says, per model,
the stage reached and the first error that stops it.
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _table import table  # noqa: E402

MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
          "vgg19", "zfnet512")
#: The default hardware with room for a 224x224 ImageNet network (the compile_scale benchmark's chip).
HW = {"tiles": 4096, "tile_mem_words": 1 << 24}


def light_dir() -> Path:
    """Where the installed onnx package keeps its light zoo models."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def reference_input(model: Any) -> tuple[str, Any]:
    """The data input's name and onnx's test input ``arange(n) / n`` in its declared shape."""
    import numpy as np

    inits = {t.name for t in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    shape = [1] + [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]  # one image
    n = int(np.prod(shape))
    return inp.name, (np.arange(n, dtype=np.float64) / n).reshape(shape)


def _first_line(e: BaseException) -> str:
    """The error's first line; for the frontend's lists (unsupported ops, rejected nodes, unfoldable constant
    arithmetic), what blocks, by op type with counts."""
    text = str(e).strip().splitlines()
    head = text[0] if text else ""
    listed: collections.Counter[str] = collections.Counter()
    for line in text[1:]:
        if not line.startswith("  ") or line.startswith("   "):
            continue
        words = line.split()
        if words[0] == "node" and len(words) > 2:  # "node 'n8' (Transpose): perm=... moves data"
            listed[words[2].strip("():") + ": " + " ".join(words[3:7]) + " ..."] += 1
        elif "(node" in line:  # "LRN (node 'n2')"
            listed[words[0]] += 1
        elif ": not into" in line:  # "BatchNormalization 'n8' + Mul 'n10': not into the layer before it (...)"
            prefix = line.split(": not into")[0].split()
            listed["+".join(w for w in prefix if w[0] != "'" and w != "+") + " (not foldable)"] += 1
    if listed:
        head = ", ".join(f"{k} x{n}" for k, n in listed.most_common())
    return f"{type(e).__name__}: {head}"


def randomized(model: Any, seed: int = 0) -> Any:
    """The model with its constant subgraphs folded and every Conv/Gemm weight replaced by He-initialized random
    values (normal, std sqrt(2 / fan_in)), so activations stay of order 1 through the network."""
    import numpy as np
    from onnx import numpy_helper

    from compiler.frontend.cleanup import clean_model

    m = clean_model(model).model
    rng = np.random.default_rng(seed)
    fan_in = {}
    for n in m.graph.node:
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 1:
            trans_b = any(a.name == "transB" and a.i for a in n.attribute)
            fan_in[n.input[1]] = (n.op_type, trans_b)
    for k, t in enumerate(m.graph.initializer):
        if t.name in fan_in:
            shape = tuple(t.dims)
            op, trans_b = fan_in[t.name]
            n_in = int(np.prod(shape[1:])) if op == "Conv" else shape[1 if trans_b else 0]
            w = rng.normal(0.0, np.sqrt(2.0 / n_in), shape).astype(np.float32)
            m.graph.initializer[k].CopyFrom(numpy_helper.from_array(w, t.name))
    return m


def cut(model: Any, output: str) -> Any:
    """The part of ``model`` that computes tensor ``output`` from the data input (onnx.utils.Extractor)."""
    import onnx.shape_inference
    import onnx.utils

    inits = {t.name for t in model.graph.initializer}
    data = [i.name for i in model.graph.input if i.name not in inits]
    return onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model(data, [output])


def measure(name: str, run: bool, random_weights: bool = False, drop_lrn: bool = False,
            tile_mem_words: int = HW["tile_mem_words"], upto: str = "") -> dict[str, Any]:
    """Take one model as far as it goes; return the figures and the first blocking error."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from compiler import runner
    from compiler.driver import compile_model, import_graph
    from isa.hardware import DEFAULT

    path = light_dir() / f"light_{name}.onnx"
    model = onnx.load(str(path))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    nodes = len(model.graph.node)
    if random_weights:
        model = randomized(model)
    if upto:  # with random weights only: onnx's expected output is the whole model's
        model = cut(model, upto)
        name = f"{name} up to {upto}"
    r: dict[str, Any] = {"model": name, "nodes": nodes, "ops": len(ops), "stage": "import",
                         "error": "", "op_types": dict(ops), "random_weights": random_weights}
    t0 = time.perf_counter()
    try:
        graph = import_graph(model, drop_lrn=drop_lrn)[0]
        r["layers"] = len(graph.crossbar_ops())
        r["stage"] = "compile"
        in_name, x = reference_input(model)
        hw = DEFAULT.with_changes(**{**HW, "tile_mem_words": tile_mem_words})
        cm = compile_model(model, "16bit", hw=hw, calib={in_name: x}, drop_lrn=drop_lrn)
        rep = cm.mapping.report(cm.precision) if cm.mapping is not None else {}
        r.update(crossbars=rep.get("crossbars"), tiles=rep.get("tiles"))
        r["compile_s"] = time.perf_counter() - t0
        r["stage"] = "run" if run else "compiled"
        if run:
            t1 = time.perf_counter()
            outcome = runner.run(cm, {in_name: x})
            r["run_s"] = time.perf_counter() - t1
            r["bit_exact"] = runner.bit_exact(cm, {in_name: x}, outcome)
            out = model.graph.output[0].name
            expected = (runner.reference_outputs(model, {in_name: x}, [out])[out] if random_weights else
                        numpy_helper.to_array(onnx.load_tensor(str(light_dir() / f"light_{name}_output_0.pb"))))
            got = outcome.host.get(out, outcome.device_float.get(out))
            got = np.asarray(got).reshape(expected.shape)
            r["max_rel_err"] = _rel_err(got, expected)
            dev = cm.program.outputs[0].name  # the device output (before a host Softmax), against onnxruntime
            ref = runner.reference_outputs(cm.model, {in_name: x}, [dev])[dev]
            r["device_rel_err"] = _rel_err(outcome.device_float[dev].reshape(ref.shape), ref)
            r["device_ref_max"] = float(np.abs(ref).max())
            r["stage"] = "ran"
    except Exception as e:  # noqa: BLE001 - the benchmark reports whatever stops a model
        r["error"] = _first_line(e)
    r["seconds"] = time.perf_counter() - t0
    r["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return r


def _rel_err(got: Any, ref: Any) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    import numpy as np

    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def _row(r: dict[str, Any]) -> list[object]:
    status = r["error"] or r["stage"]
    if r["stage"] == "ran" and not r["error"]:
        status = (f"ran: bit-exact={r['bit_exact']}, rel err {r['device_rel_err']:.1e} (device output vs "
                  f"onnxruntime, whose max |value| is {r['device_ref_max']:.1e}), {r['max_rel_err']:.1e} (output vs "
                  f"{'onnxruntime' if r.get('random_weights') else 'onnx expected'})")
    elif r["error"]:
        status = f"{r['stage']}: {r['error']}"
    if len(status) > 200:
        status = status[:197] + "..."
    return [r["model"], r["nodes"], r["ops"], status, f"{r['seconds']:.1f}", f"{r.get('peak_mb', 0):,.0f}"]


def main() -> None:
    """Measure every model in a subprocess and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--run", action="store_true", help="also run the image on the runtime (slow for big models)")
    ap.add_argument("--random-weights", action="store_true",
                    help="replace the constant Conv/Gemm weights by He-initialized random ones (see `randomized`)")
    ap.add_argument("--drop-lrn", action="store_true", help="compile LRN as identity (xbarc compile --drop-lrn)")
    ap.add_argument("--tile-mem-words", type=int, default=HW["tile_mem_words"],
                    help="words of each tile's memory (smaller: less runtime memory, if the model fits)")
    ap.add_argument("--upto", default="", help="with --random-weights: only the part of each model computing this "
                                               "tensor (e.g. r7: AlexNet's and ZFNet's two LRN blocks)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    ap.add_argument("--json", action="store_true", help="print one JSON line per model instead of the table")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.upto and not a.random_weights:
        ap.error("--upto needs --random-weights (onnx's expected output is the whole model's)")
    if a.one:
        print(json.dumps(measure(a.one, a.run, a.random_weights, a.drop_lrn, a.tile_mem_words, a.upto)))
        return
    rows = []
    for name in a.models:
        t0 = time.perf_counter()
        try:
            flags = (["--run"] if a.run else []) + (["--random-weights"] if a.random_weights else []) + \
                (["--drop-lrn"] if a.drop_lrn else []) + ["--tile-mem-words", str(a.tile_mem_words)] + \
                (["--upto", a.upto] if a.upto else [])
            proc = subprocess.run([sys.executable, __file__, "--one", name] + flags,
                                  capture_output=True, text=True, timeout=a.timeout)
            lines = proc.stdout.strip().splitlines()
            r = json.loads(lines[-1]) if proc.returncode == 0 and lines else {
                "model": name, "nodes": "?", "ops": "?", "stage": "crashed",
                "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        except subprocess.TimeoutExpired:
            r = {"model": name, "nodes": "?", "ops": "?", "stage": "timeout", "error": f"over {a.timeout:.0f} s"}
        r.setdefault("seconds", time.perf_counter() - t0)
        if a.json:
            print(json.dumps(r), flush=True)
        rows.append(_row(r))
    if not a.json:
        hw = {**HW, "tile_mem_words": a.tile_mem_words}
        print(f"hardware: default preset with {hw}; precision 16bit; calibration on the reference input")
        print(table(rows, ["model", "nodes", "ops", "status / first blocking error", "seconds", "peak MB"]))


if __name__ == "__main__":
    main()
