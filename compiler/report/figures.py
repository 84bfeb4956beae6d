"""Matplotlib figures rendered as deterministic inline SVG (the report's one plotting library).

Why matplotlib: it is the plotting library the project already uses (`compiler.search.plots`, the ``plot``
extra), it renders offline to SVG that a browser draws without any script, and its SVG output is reproducible:
``svg.hashsalt`` fixes the element ids (here one salt per figure, so the ids of figures inlined in one page never
collide), ``metadata={'Date': None}`` drops the timestamp, and ``svg.fonttype = 'none'`` keeps text as text
(small files, selectable labels). Raster parts (cell maps, dense timelines) are embedded PNGs inside the SVG.
"""

from __future__ import annotations

import io
import re
from typing import Any

from isa.errors import XbarcError

MISSING = ("xbarc report needs matplotlib, which is not installed: pip install 'xbarc[report]' "
           "(or pip install matplotlib)")

#: The report's text style (DejaVu Sans ships with matplotlib; the page's CSS names it first too).
FONT = {"font.family": "DejaVu Sans", "font.size": 9.0}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a clear `XbarcError` naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise XbarcError(MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kw: Any) -> tuple[Any, Any]:
    """A figure of ``width`` x ``height`` inches with a grid of axes (`pyplot.subplots`)."""
    plt = pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kw)
    return fig, axes


def to_svg(fig: Any, salt: str) -> str:
    """The figure as an ``<svg>`` element for inlining (no XML prolog), byte-identical for the same figure and
    ``salt``; closes the figure."""
    plt = pyplot()
    buf = io.StringIO()
    try:
        with plt.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none", "svg.image_inline": True} | FONT):
            fig.savefig(buf, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    text = buf.getvalue()
    start = text.find("<svg")
    text = text[start:]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
