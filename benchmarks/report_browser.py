"""The HTML report in a real browser: one screenshot per section for the docs, and the size and load time of
reports against a baseline measured in the same run.

Usage:
  python benchmarks/report_browser.py screenshots [--out docs/report]   # LeNet compile + run, a small search
  python benchmarks/report_browser.py scale OUT... [vgg16:64]           # reports of compiled output directories

``screenshots`` compiles the bundled LeNet (on the default chip with 2 cores per tile, so that it spans tiles),
runs it on 100 digits32 test images, runs a 12-evaluation search on the digits MLP, and writes
``docs/report/<section>.png`` (each section rendered alone, cropped to its content).
``scale`` builds each directory's report (compile sections, no run; ``vgg16:RES`` compiles VGG-16 first) in a
subprocess limited to 6 GB and prints the build time, file size and headless Chromium's load time (start, load,
render, exit: ``--dump-dom``, best of two) next to an empty page's, measured in this run. Needs Chromium and
matplotlib.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _table import table  # noqa: E402

from compiler.report import SECTIONS, CompileView, SearchView, build_report, load_run  # noqa: E402
from compiler.report.browser import dump_dom, find_browser, screenshot  # noqa: E402


def xbarc(*args: str) -> str:
    """Run the command line; its stdout."""
    return subprocess.run([sys.executable, "-m", "compiler.cli", *args], check=True, capture_output=True, text=True,
                          cwd=ROOT).stdout


def crop(png: Path, margin: int = 12) -> None:
    """Cut the screenshot below its last non-background row (keeping a margin) and store it with a 96-colour
    palette (Pillow comes with matplotlib), so the docs' PNGs stay small."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    background = img[-1, 0]
    rows = np.nonzero((img != background).any(axis=(1, 2)))[0]
    bottom = min(len(img), int(rows.max()) + margin) if len(rows) else len(img)
    Image.fromarray(img[:bottom]).quantize(96, dither=Image.Dither.NONE).save(png, optimize=True)


def screenshots(out: Path) -> None:
    """One PNG per section into ``out``."""
    browser = find_browser()
    if browser is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "chip.json").write_text('{"cores_per_tile": 2}')  # a few tiles, so the placement shows traffic
        xbarc("compile", "models/lenet5_digits.onnx", "-o", str(t / "lenet"), "--hardware", str(t / "chip.json"))
        (t / "run.json").write_text(xbarc("run", str(t / "lenet"), "--dataset", "digits32", "--limit", "100",
                                          "--json"))
        xbarc("search", "models/mlp_digits.onnx", "-o", str(t / "search"), "--budget", "12",
              "--search-images", "128",
              "--test-images", "50")
        view, run, search = CompileView.load(t / "lenet"), load_run(t / "run.json"), SearchView.load(t / "search")
        for sec in SECTIONS:
            page = t / f"{sec}.html"
            page.write_text(build_report(view, run, sections=[sec]) if sec != "search" else
                            build_report(search=search))
            screenshot(browser, page, out / f"{sec}.png", 1100, 2600 if sec != "search" else 1800)
            crop(out / f"{sec}.png")
            print(f"{out / sec}.png")


def compile_vgg16(resolution: int, out: Path) -> Path:
    """VGG-16 (models.cnn_zoo, random weights) at ``resolution`` compiled at 16 bits onto a chip grown to fit, saved
    to ``out``. Its mapping.json is written without the hollow figures: `Mapping.hollows` slices a whole layer
    at once (8 x 4096 x 4096 int64 for fc7), more than this machine's 6 GB per process allows."""
    from compiler import compile_model
    from compiler.driver import CompiledModel
    from isa.hardware import DEFAULT
    from models import cnn_zoo

    model = cnn_zoo.vgg16(resolution=resolution)
    calib = {model.graph.input[0].name: np.random.default_rng(0).uniform(0, 1, (1, 3, resolution, resolution))}
    t0 = time.perf_counter()
    cm = compile_model(model, "16bit", hw=DEFAULT.with_changes(tiles=4096, tile_mem_words=1 << 24), calib=calib)
    CompiledModel.mapping_report = lambda self: self.mapping.report(self.precision)  # type: ignore[method-assign]
    cm.save(out)
    print(f"VGG-16 at {resolution}x{resolution}: {len(cm.program.mvmus)} MVMUs, {len(cm.program.cores)} cores, "
          f"compiled and saved in {time.perf_counter() - t0:.0f} s")
    return out


MEMORY_LIMIT = 6_000_000_000  # bytes of address space for the compile and report builds (not for the browser)


def build(source: str, html: Path) -> None:
    """Write the report of ``source`` (a compiled output directory, or ``vgg16:RES``) to ``html``; print the build
    time."""
    if source.startswith("vgg16:"):
        res = int(source.split(":")[1])
        source = str(compile_vgg16(res, html.parent / f"vgg16_{res}"))
    t0 = time.perf_counter()
    text = build_report(CompileView.load(source))
    print(f"{time.perf_counter() - t0:.2f}")
    html.write_text(text)


def scale(sources: list[str]) -> None:
    """Build time, size and browser load time of each report against an empty page's, measured in this run; the
    builds run in subprocesses limited to MEMORY_LIMIT (Chromium reserves more address space than that)."""
    import resource

    browser = find_browser()
    if browser is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>\n")
        base = min(dump_dom(browser, empty).seconds for _ in range(2))
        rows.append(["empty page", "-", "0.00", f"{base:.2f}", "1.0x", 0])
        for i, src in enumerate(sources):
            page = Path(tmp) / f"report{i}.html"
            done = subprocess.run([sys.executable, __file__, "build", src, str(page)], capture_output=True,
                                  text=True, preexec_fn=limit, check=True)
            lines = done.stdout.strip().splitlines()
            print("\n".join(lines[:-1]))
            loaded = min((dump_dom(browser, page) for _ in range(2)), key=lambda x: x.seconds)
            rows.append([Path(src).name, lines[-1], f"{page.stat().st_size / 1e6:.2f}", f"{loaded.seconds:.2f}",
                         f"{loaded.seconds / base:.1f}x", len(loaded.console)])
    print(table(rows, ["report", "build s", "MB", "browser load s", "vs empty page", "console messages"]))


def main() -> None:
    """Parse the command line and run one job."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="job", required=True)
    s = sub.add_parser("screenshots")
    s.add_argument("--out", default=str(ROOT / "docs" / "report"))
    c = sub.add_parser("scale")
    c.add_argument("sources", nargs="+", help="compiled output directories, or vgg16:RES to compile VGG-16 at "
                   "RES x RES (a multiple of 32) first")
    b = sub.add_parser("build")  # one build, run by `scale` in a memory-limited subprocess
    b.add_argument("source")
    b.add_argument("html")
    a = ap.parse_args()
    if a.job == "screenshots":
        screenshots(Path(a.out))
    elif a.job == "build":
        build(a.source, Path(a.html))
    else:
        scale(a.sources)


if __name__ == "__main__":
    main()
