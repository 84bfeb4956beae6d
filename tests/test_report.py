"""`xbarc report` and ``--report``: one self-contained HTML file per compile, run and search (docs/report.md).

The page is parsed with the stdlib's html.parser and its numbers compared with `xbarc inspect --json`, the run's
JSON, precision.json and the search's files; the browser tests load it in headless Chromium (skipped without
one), check the console and the DOM, and look at the screenshot's pixels."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compiler.cli import main

from conftest import MLP, ROOT

pytest.importorskip("matplotlib")

LENET = ROOT / "models" / "lenet5_digits.onnx"


class Page(HTMLParser):
    """The parts of a report the tests read: sections, figures (with their SVG elements), tables by name
    (rows by their first cell, each cell's data-value), every src/href, and script/link tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.figures: dict[str, dict[str, int]] = {}
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.links: list[str] = []
        self.forbidden: list[str] = []
        self._figure: str | None = None
        self._table: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.forbidden.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag == "section":
            self.sections.append(a["id"] or "")
        elif tag == "figure":
            self._figure = a["id"]
            self.figures[a["id"] or ""] = {"section": len(self.sections) - 1}
        elif self._figure is not None:
            counts = self.figures[self._figure]
            counts[tag] = counts.get(tag, 0) + 1
        if tag == "table":
            self._table = a.get("data-table")
            self.tables.setdefault(self._table or "", [])
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append({})
        elif tag == "td" and self._table is not None and "data-field" in a:
            self.tables[self._table][-1][a["data-field"]] = json.loads(a.get("data-value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None
        elif tag == "table":
            self._table = None

    def rows(self, name: str, key: str) -> dict[Any, dict[str, Any]]:
        """Table ``name``'s data rows by their ``key`` cell."""
        return {r[key]: r for r in self.tables[name] if key in r}

    def pairs(self, name: str) -> dict[str, Any]:
        """A two-column table as one dict."""
        out: dict[str, Any] = {}
        for r in self.tables[name]:
            out.update(r)
        return out


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """LeNet compiled (with --report), run on 40 digits32 images with --report, and its inspect JSON."""
    tmp = tmp_path_factory.mktemp("report")
    out = tmp / "lenet"
    assert main(["compile", str(LENET), "-o", str(out), "--report", str(tmp / "compile.html")]) == 0
    run_json = tmp / "run.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["run", str(out), "--dataset", "digits32", "--limit", "40", "--json", "--report",
                     str(tmp / "run.html")]) == 0
    run_json.write_text(buf.getvalue())
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["inspect", str(out), "--json"]) == 0
    return {"dir": out, "tmp": tmp, "run": json.loads(run_json.read_text()), "run_json": run_json,
            "inspect": json.loads(buf.getvalue()), "html": (tmp / "run.html").read_text(),
            "compile_html": (tmp / "compile.html").read_text()}


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-evaluation RL search on the digits MLP, written with --report (OUT/report.html)."""
    out = tmp_path_factory.mktemp("report") / "search"
    assert main(["search", str(MLP), "-o", str(out), "--budget", "5", "--search-images", "64", "--select-images",
                 "64", "--test-images", "20", "--measure-front", "0", "--report"]) == 0
    return out


def test_lenet_report_sections_and_figures(lenet: dict[str, Any]) -> None:
    page = Page(lenet["html"])
    assert page.sections == ["summary", "occupancy", "placement", "energy"]
    layers = [lay["layer"] for lay in lenet["inspect"]["layers"] if "crossbars" in lay]
    want = {"fig-occupancy-totals", "fig-placement-chip", "fig-energy-breakdown", "fig-energy-cycles",
            "fig-energy-timeline"} | {f"fig-occupancy-{i}" for i in range(len(layers))}
    assert set(page.figures) == want
    for fid, counts in page.figures.items():
        assert counts.get("svg") == 1, fid
        assert counts.get("path", 0) + counts.get("image", 0) + counts.get("rect", 0) > 3, fid  # something drawn
    assert {page.figures[f"fig-occupancy-{i}"].get("image", 0) for i in range(len(layers))} == {3}  # 3 cell maps
    assert not page.forbidden
    assert all(link.startswith(("#", "data:")) for link in page.links), [x for x in page.links if x[:5] != "data:"]


def test_summary_equals_inspect_and_precision(lenet: dict[str, Any]) -> None:
    page, info = Page(lenet["html"]), lenet["inspect"]
    summary = page.pairs("summary")
    for key in ("crossbars", "mvmus", "cores", "tiles", "static_instructions", "utilization", "hardware"):
        assert summary[key] == info[key], key
    prec = json.loads((lenet["dir"] / "precision.json").read_text())["layers"]
    rows = page.rows("precision", "layer")
    assert list(rows) == list(prec)
    mapped = {lay["layer"]: lay for lay in info["layers"]}
    for name, opts in prec.items():
        for key in ("w_bits", "w_frac", "in_bits", "in_frac", "acc_bits", "acc_frac", "adc_bits", "w_enc", "in_enc",
                    "skip", "w_scheme"):
            assert rows[name][key] == opts[key], (name, key)
        for key in ("mvmus", "crossbars", "cores"):
            assert rows[name][key] == mapped[name][key], (name, key)


def test_run_figures_equal_run_json(lenet: dict[str, Any]) -> None:
    page, run = Page(lenet["html"]), lenet["run"]
    facts = page.pairs("run")
    for key in ("images", "accuracy", "reference_accuracy", "agreement", "max_abs_error", "energy_pj", "cycles",
                "pipeline_interval_cycles", "dynamic_instructions"):
        assert facts[key] == run[key], key
    layers = page.rows("energy-layers", "layer")
    assert set(layers) == set(run["per_layer"])
    for name, row in run["per_layer"].items():
        for key in ("energy_pj", "busy_cycles", "start", "end", "instructions"):
            assert layers[name][key] == row[key], (name, key)
    comps = page.rows("energy-components", "component")
    assert {k: v["energy_pj"] for k, v in comps.items()} == run["per_component"]
    without = Page(lenet["compile_html"])  # compile --report: no run, so no energy figures, and no run table
    assert "energy" in without.sections and "fig-energy-breakdown" not in without.figures
    assert "run" not in without.tables


def test_occupancy_equals_the_mapping(lenet: dict[str, Any]) -> None:
    """The report re-packs every MVMU under each mode: spatial must give the compiler's own (spatial) count, naive
    two crossbars per slice of every block, and the live lines the mapping report's."""
    page = Page(lenet["html"])
    rows = page.rows("occupancy", "layer")
    for lay in lenet["inspect"]["layers"]:
        if "crossbars" not in lay:
            continue
        r = rows[lay["layer"]]
        assert r["crossbars"] == r["spatial_crossbars"] == lay["crossbars"]
        assert r["naive_crossbars"] == 2 * lay["slices"] * lay["row_blocks"] * lay["col_blocks"]
        assert r["temporal_crossbars"] <= r["spatial_crossbars"]
        assert r["live_bit_lines"] == lay["live_bit_lines"]
        assert r["cell_utilization"] == lay["cell_utilization"]


def test_placement_lists_every_core(lenet: dict[str, Any]) -> None:
    page = Page(lenet["html"])
    cores = page.rows("cores", "core")
    man = json.loads((lenet["dir"] / "manifest.json").read_text())
    for m in man["mvmus"]:
        assert cores[f"{m['tile']}.{m['core']}"]["layer"] == m["node"]
    mapping = json.loads((lenet["dir"] / "mapping.json").read_text())
    for name, (tile, core) in mapping["vector_ops"].items():
        assert cores[f"{tile}.{core}"]["layer"] == name
    assert len(cores) == lenet["inspect"]["cores"]


def test_report_is_deterministic(lenet: dict[str, Any]) -> None:
    """The same inputs give the same bytes: `xbarc report` gives what run --report and compile --report gave."""
    a = lenet["tmp"] / "a.html"
    assert main(["report", str(lenet["dir"]), "--run", str(lenet["run_json"]), "-o", str(a)]) == 0
    assert a.read_bytes() == lenet["html"].encode()
    assert main(["report", str(lenet["dir"]), "-o", str(a)]) == 0
    assert a.read_text() == lenet["compile_html"]


def test_search_report(search: Path) -> None:
    page = Page((search / "report.html").read_text())
    assert page.sections == ["search"]
    assert set(page.figures) == {"fig-search-curves", "fig-search-pareto"}
    assert page.figures["fig-search-curves"].get("path", 0) > 20
    records = [json.loads(line) for line in (search / "log.jsonl").read_text().splitlines()]
    pareto = json.loads((search / "pareto.json").read_text())
    facts = page.pairs("search")
    assert facts["evaluations"] == len(records)
    assert facts["best_reward"] == max(r["reward"] for r in records)
    chosen = next(p for p in pareto["points"] if p["chosen"])
    for key in ("energy_pj", "cycles", "select_accuracy", "select_bound", "meets_max_drop"):
        assert facts[f"chosen_{key}"] == chosen[key], key
    assert facts["pareto_points"] == len(pareto["points"]) and facts["max_drop"] == pareto["max_drop"]
    best = json.loads((search / "best.json").read_text())
    rows = page.rows("search-config", "layer")
    assert {name: {k: v for k, v in r.items() if k != "layer"} for name, r in rows.items()} == best["layers"]
    out = search.parent / "again.html"
    assert main(["report", str(search), "-o", str(out)]) == 0
    assert out.read_bytes() == (search / "report.html").read_bytes()


def test_timeline_covers_the_busy_cycles(mlp16: Any, digits_test: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmerged (resolution 1), a core's busy intervals add up to the accountant's busy cycles (latency x
    executions), are ordered and disjoint, and end by the core's final clock."""
    import runtime.stats as stats
    from compiler import runner

    monkeypatch.setattr(stats, "TIMELINE_SPAN", 1 << 60)
    s = runner.run(mlp16, {mlp16.program.inputs[0].name: digits_test[0][:3]}).stats
    assert s.timeline_resolution == 1 and set(s.timeline) == set(s.per_core_busy)
    for core, spans in s.timeline.items():
        assert sum(e - b for b, e in spans) == s.per_core_busy[core]
        assert all(b < e for b, e in spans) and all(e1 < b2 for (_, e1), (b2, _) in zip(spans, spans[1:]))
        assert spans[-1][1] == s.per_core[core]


def test_search_result_in_memory(search: Path) -> None:
    """``compile --search --report`` draws the search from its `SearchResult` (no files): the chosen record's
    figures, and a note instead of the Pareto chart."""
    from types import SimpleNamespace

    from compiler.report import build_report
    from compiler.report.sources import search_view
    from compiler.search.record import Evaluation

    records = [Evaluation.from_json(json.loads(line)) for line in (search / "log.jsonl").read_text().splitlines()]
    pick = records[-1]
    result = SimpleNamespace(chosen=pick, records=records, config=json.loads((search / "best.json").read_text()),
                             baseline=None, method="rl", met=False)
    page = Page(build_report(search=search_view(result)))
    facts = page.pairs("search")
    assert (facts["chosen_energy_pj"], facts["chosen_cycles"], facts["chosen_reward"]) == \
        (pick.energy_pj, pick.cycles, pick.reward)
    assert facts["chosen_meets_max_drop"] is False and "fig-search-pareto" not in page.figures


def test_fast_mode_timeline_equals_the_interpreters(lenet: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast mode runs LeNet's pixel loops batched and reports every core's busy intervals exactly as the
    one-at-a-time interpreter records them (unmerged)."""
    import runtime.stats as stats
    from compiler.driver import load_compiled
    from compiler.runner import quantize_inputs
    from models.datasets import load_for_shape
    from runtime import Machine

    monkeypatch.setattr(stats, "TIMELINE_SPAN", 1 << 60)
    cm = load_compiled(lenet["dir"])
    x, _ = load_for_shape("digits32", "test", tuple(cm.program.inputs[0].shape))
    feeds = quantize_inputs(cm, {cm.program.inputs[0].name: x[:2]})
    fast = Machine(cm.program)
    got = fast.run(feeds).stats
    want = Machine(cm.program, reference=True).run(feeds).stats
    assert fast.batched > 0
    assert got.timeline == want.timeline and got.traffic == want.traffic
    assert {k: sum(e - b for b, e in v) for k, v in got.timeline.items()} == want.per_core_busy


def test_merge_gaps() -> None:
    from runtime.stats import merge_gaps

    spans = [(0, 4), (6, 9), (20, 21), (21, 30)]
    assert merge_gaps(spans, 1) == [[0, 4], [6, 9], [20, 30]]  # touching intervals are one
    assert merge_gaps(spans, 3) == [[0, 9], [20, 30]]
    assert merge_gaps(spans, 100) == [[0, 30]]


def test_traffic_between_tiles(tmp_path: Path) -> None:
    """With one core per tile every MLP layer sits on its own tile; the words the run counts as sent equal the
    words the program receives on each tile pair (straight-line code: every instruction executes once)."""
    from isa import ops
    from isa.files import load_program

    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"cores_per_tile": 1}))
    out = tmp_path / "mlp"
    assert main(["compile", str(MLP), "-o", str(out), "--hardware", str(hw)]) == 0
    prog = load_program(out)
    received: dict[str, int] = {}
    for cc in prog.cores:
        for i in cc.instrs:
            if isinstance(i, ops.Recv):
                received[f"{i.tile}->{cc.tile}"] = received.get(f"{i.tile}->{cc.tile}", 0) + i.n
    from compiler.runner import run
    from compiler.driver import load_compiled

    cm = load_compiled(out)
    stats = run(cm, {cm.program.inputs[0].name: np.zeros((2, 64))}).stats
    assert stats.traffic == dict(sorted(received.items())) and len(received) >= 2
    from compiler.report import CompileView, build_report

    page = Page(build_report(CompileView.load(out), {"images": 2, "energy_pj": stats.energy_pj,
                                                     "cycles": stats.cycles, "per_layer": stats.per_layer,
                                                     "per_component": stats.per_component,
                                                     "traffic": stats.traffic, "timeline": stats.timeline}))
    assert {k: v["words"] for k, v in page.rows("traffic", "pair").items()} == stats.traffic
    assert "fig-placement-traffic" in page.figures


def test_report_errors(lenet: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r.html")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["report", str(lenet["dir"]), "--run", str(lenet["dir"] / "manifest.json"),
                 "-o", str(tmp_path / "r.html")]) == 2
    assert "xbarc run --dataset" in capsys.readouterr().err
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 32, 32), dtype=np.float32))
    assert main(["run", str(lenet["dir"]), "--inputs", str(x), "--report"]) == 2
    assert "--report" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    assert main(["report", str(lenet["dir"]), "-o", str(tmp_path / "r.html")]) == 2
    assert "xbarc[report]" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


# ---- in a real browser -------------------------------------------------------------------------------------------
def _browser() -> str:
    from compiler.report.browser import find_browser

    found = find_browser()
    if found is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    return found


@pytest.mark.parametrize("which", ["lenet", "search"])
def test_report_renders_in_chromium(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Headless Chromium loads the report without a console message (no script error, nothing blocked by the
    page's no-network policy), its DOM holds every section and chart, and the screenshot is not blank."""
    from compiler.report.browser import drawn_fraction, dump_dom, read_png, screenshot

    browser = _browser()
    if which == "lenet":
        path, sections = request.getfixturevalue("lenet")["tmp"] / "run.html", 4
    else:
        path, sections = request.getfixturevalue("search") / "report.html", 1
    dom = dump_dom(browser, path)
    assert dom.console == []
    page = Page(dom.stdout)
    assert len(page.sections) == sections and page.figures
    assert all(counts.get("svg") == 1 for counts in page.figures.values())
    shot = tmp_path / "shot.png"
    loaded = screenshot(browser, path, shot, 1000, 800)
    assert loaded.console == []
    pixels = read_png(shot.read_bytes())
    assert pixels.shape[:2] == (800, 1000)
    assert drawn_fraction(pixels) > 0.05
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50  # text, tables and charts, not a flat fill


def test_browser_checks_can_fail(tmp_path: Path) -> None:
    """The checks above see what they look for: a blocked external image is a console message, a blank page a
    blank screenshot."""
    from compiler.report.browser import drawn_fraction, dump_dom, read_png, screenshot
    from compiler.report.page import CSP

    browser = _browser()
    bad = tmp_path / "bad.html"
    bad.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}">'
                   '</head><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    assert dump_dom(browser, bad).console
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    screenshot(browser, blank, tmp_path / "blank.png", 400, 300)
    assert drawn_fraction(read_png((tmp_path / "blank.png").read_bytes())) == 0.0
