"""One self-contained HTML report per compile, run and search (`build_report`, `write_report`; docs/report.md).

Sections: summary, crossbar occupancy, placement, energy and cycles (with a run), search (with a search's
output). Figures are matplotlib SVG inlined in the page (`figures.py`), so the file needs no network, no server
and no script; the same inputs give a byte-identical file. Needs the ``report`` extra (matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from isa.errors import XbarcError
from isa.outputs import write_file

from .figures import FONT, MISSING, pyplot
from .sources import CompileView, SearchView, is_search_dir, load_run

SECTIONS = ("summary", "occupancy", "placement", "energy", "search")
TITLES = {"summary": "Summary", "occupancy": "Crossbar occupancy", "placement": "Placement",
          "energy": "Energy and cycles", "search": "Search"}

__all__ = ["build_report", "write_report", "report_dir", "CompileView", "SearchView", "load_run", "is_search_dir",
           "SECTIONS", "MISSING"]


def build_report(view: CompileView | None = None, run: dict[str, Any] | None = None,
                 search: SearchView | None = None, sections: Sequence[str] = SECTIONS) -> str:
    """The report's HTML text for a compile (``view``), its ``run`` (the JSON of `compiler.runner.evaluate`) and
    a ``search``; ``sections`` limits the sections drawn (those without data are left out)."""
    from .energy import energy_section
    from .occupancy import occupancy_section
    from .placement import placement_section
    from .page import page
    from .search import search_section
    from .summary import summary_section

    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise XbarcError(f"report sections {unknown}: not among {', '.join(SECTIONS)}")
    if view is None and search is None:
        raise XbarcError("a report needs a compiled output directory or a search's output directory")
    draw = {"summary": lambda: summary_section(view, run), "occupancy": lambda: occupancy_section(view),
            "placement": lambda: placement_section(view, run), "energy": lambda: energy_section(view, run),
            "search": lambda: search_section(search)}
    have = [s for s in sections if (s == "search" and search is not None) or (s != "search" and view is not None)]
    with pyplot().rc_context(FONT):
        parts = [(s, TITLES[s], draw[s]()) for s in have]
    title = f"xbarc report: {view.model if view is not None else 'search'}"
    bits = []
    if view is not None:
        bits.append(f"{view.path.name}: {view.info['hardware']} chip, {view.mapping.get('mapping', '?')} mapping")
    if run is not None:
        bits.append(f"run on {run['images']} inputs")
    if search is not None:
        bits.append(f"{search.method or 'search'} search, {len(search.records)} evaluations")
    return page(title, "; ".join(bits), parts)


def report_dir(path: str | Path, run: dict[str, Any] | None = None) -> str:
    """The report of an output directory: a search's (log.jsonl, best.json) or a compile's (with ``run``)."""
    if is_search_dir(path):
        if run is not None:
            raise XbarcError(f"{path}: a search's output directory; --run goes with a compiled output directory")
        return build_report(search=SearchView.load(path))
    if not Path(path).is_dir():
        raise XbarcError(f"{path}: not a directory (give a compiled output directory or a search's)")
    return build_report(CompileView.load(path), run)


def write_report(path: str | Path, text: str) -> Path:
    """Write the report atomically (`isa.outputs.write_file`)."""
    return write_file(path, text)
