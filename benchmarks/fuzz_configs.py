"""The larger run of the hardware-file and precision-file fuzzers (the CI runs 50 examples each in
tests/test_hardware_config.py and tests/test_precision_schema.py, with the same strategies).

Usage: python benchmarks/fuzz_configs.py [--examples 3000]
Prints, per fuzzer, how many inputs passed, how many gave an XbarcError, and how many raised anything else
(must be 0); for precision documents that resolve, every layer is also quantized (an error there counts too);
``--chips`` random chips near the fields' limits each compile and run the bundled MLP (bit-exact, or an
XbarcError).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from hypothesis import HealthCheck, given, settings  # noqa: E402

from _table import table  # noqa: E402
from compiler import compile_model, runner  # noqa: E402
from compiler.driver import import_graph  # noqa: E402
from compiler.quant import calibrate, quantize_layer, resolve_precision  # noqa: E402
from isa.errors import XbarcError  # noqa: E402
from isa.hardware import DEFAULT, HARDWARE_FIELDS, HardwareConfig  # noqa: E402
from models.datasets import load_dataset  # noqa: E402
import test_hardware_config as hw_fuzz  # noqa: E402
import test_precision_schema as prec_fuzz  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--chips", type=int, default=60, help="random chips the MLP is compiled and run on")
    a = ap.parse_args()
    runs = settings(max_examples=a.examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    counts = {"hardware": [0, 0, 0], "precision": [0, 0, 0]}
    other: list[str] = []

    def tally(kind: str, fn) -> None:  # type: ignore[no-untyped-def]
        try:
            fn()
            counts[kind][0] += 1
        except XbarcError:
            counts[kind][1] += 1
        except Exception as e:  # noqa: BLE001 - what the fuzzer looks for
            counts[kind][2] += 1
            other.append(f"{kind}: {type(e).__name__}: {e}"[:200])

    @runs
    @given(doc=hw_fuzz._DOCS)
    def hardware(doc) -> None:  # type: ignore[no-untyped-def]
        tally("hardware", lambda: HardwareConfig.from_dict(doc, "fuzz.json"))

    g, _, _ = import_graph(ROOT / "models" / "mlp_digits.onnx")
    x, _ = load_dataset("digits", "calib")
    ranges = calibrate(g, {"input": x[:64]}, DEFAULT.xbar_rows)

    def resolve_and_quantize(doc, resolved: bool) -> None:  # type: ignore[no-untyped-def]
        prec = resolve_precision(g, doc, ranges, DEFAULT, resolved=resolved)
        for op in g.crossbar_ops():
            quantize_layer(op, prec[op.name])

    @runs
    @given(doc=prec_fuzz._DOCS)
    def precision(doc) -> None:  # type: ignore[no-untyped-def]
        if isinstance(doc, str):  # a preset name or a file name, not a document
            return
        for resolved in (False, True):
            tally("precision", lambda: resolve_and_quantize(doc, resolved))

    counts["compile+run"] = [0, 0, 0]
    images = load_dataset("digits", "test")[0][:2]
    rnd = random.Random(0)
    near = {name: [spec.lo, spec.hi, 2, 3, 16, 100, 1000] for name, spec in HARDWARE_FIELDS.items()
            if spec.kind == "int"}

    def compile_and_run(hw: HardwareConfig, prec: str) -> None:
        cm = compile_model(ROOT / "models" / "mlp_digits.onnx", prec, hw=hw)
        feeds = {cm.program.inputs[0].name: images}
        out = runner.run(cm, feeds)
        if not runner.bit_exact(cm, feeds, out):
            raise AssertionError("runtime != functional model")

    for _ in range(a.chips):  # chips a few fields away from the default, values near the limits
        changes = {k: rnd.choice([v for v in near[k] if v is not None]) for k in rnd.sample(sorted(near), 3)}
        try:
            hw = DEFAULT.with_changes(**changes)
        except XbarcError:
            continue
        tally("compile+run", lambda: compile_and_run(hw, rnd.choice(["16bit", "8bit", "4bit"])))

    hardware()
    precision()
    print(table([[k, *v] for k, v in counts.items()], ["fuzzer", "passed", "XbarcError", "other exception"]))
    for line in other[:20]:
        print(line)


if __name__ == "__main__":
    main()
