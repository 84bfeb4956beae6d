"""The report's HTML: one self-contained page (inline style and SVG, no script, no external resource).

Every figure the tests and readers look for carries a fixed id and ``data-`` attributes: a section is
``<section id=NAME data-section=NAME>``, a figure ``<figure id=... data-figure=...>``, and every number in a table
cell is ``<td data-field=KEY data-value=RAW>`` with RAW the exact value as JSON (floats round-trip) beside its rounded
text, so a parser can compare the page with `xbarc inspect --json` and the run's JSON.
"""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

STYLE = """
body{font-family:"DejaVu Sans",Verdana,sans-serif;margin:0;color:#222;background:#fafafa;font-size:14px}
header{background:#263238;color:#fff;padding:12px 24px}header h1{margin:0 0 4px 0;font-size:20px}
nav a{color:#b2dfdb;margin-right:16px;text-decoration:none}
section{background:#fff;margin:16px 24px;padding:8px 20px 16px;border:1px solid #ddd;border-radius:4px}
h2{border-bottom:2px solid #00897b;padding-bottom:4px}h3{margin-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:12px}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eceff1}
td:first-child,th:first-child{text-align:left}
figure{margin:8px 0}figure svg{max-width:100%;height:auto}figcaption{font-size:12px;color:#555}
.note{color:#555;font-size:12px}.layer{border-top:1px solid #eee;margin-top:12px}
.scroll{overflow-x:auto;max-width:100%}.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
"""


#: Nothing may load from outside the file: inline style, images only from data: URLs, no script at all.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def esc(text: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def fmt(value: Any) -> str:
    """A number as people read it (floats to 4 significant digits, big integers with separators)."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def cell(key: str, value: Any, text: str | None = None) -> str:
    """One ``<td>`` with its field name and raw value."""
    raw = json.dumps(value, separators=(",", ":"))
    return f'<td data-field="{esc(key)}" data-value="{esc(raw)}">{esc(fmt(value) if text is None else text)}</td>'


def table(name: str, header: Sequence[str], keys: Sequence[str], rows: Sequence[dict[str, Any]],
          texts: dict[str, Any] | None = None) -> str:
    """A table named ``name`` (``data-table``): one row per dict, columns ``keys`` titled ``header``; the first
    key names the row (``data-row``). ``texts[key](value)`` formats a column's text."""
    texts = texts or {}
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r in rows:
        tds = "".join(cell(k, r.get(k), texts[k](r.get(k)) if k in texts and r.get(k) is not None else None)
                      for k in keys)
        body.append(f'<tr data-row="{esc(r.get(keys[0]))}">{tds}</tr>')
    return f'<div class="scroll"><table data-table="{esc(name)}"><tr>{head}</tr>{"".join(body)}</table></div>'


def pairs(name: str, items: Sequence[tuple[str, str, Any]]) -> str:
    """A two-column table of (key, label, value)."""
    rows = "".join(f"<tr><th>{esc(label)}</th>{cell(key, value)}</tr>" for key, label, value in items)
    return f'<table data-table="{esc(name)}">{rows}</table>'


def figure(fid: str, svg: str, caption: str) -> str:
    """An inline SVG figure with a fixed id."""
    return f'<figure id="{esc(fid)}" data-figure="{esc(fid)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def section(sid: str, title: str, body: str) -> str:
    """One report section."""
    return f'<section id="{esc(sid)}" data-section="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def note(text: str) -> str:
    """A paragraph of explanation."""
    return f'<p class="note">{esc(text)}</p>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: (id, title, html) per section, a navigation bar linking them."""
    nav = "".join(f'<a href="#{esc(sid)}">{esc(t)}</a>' for sid, t, _ in sections)
    body = "".join(section(sid, t, h) for sid, t, h in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{esc(title)}</title>'
            f'<style>{STYLE}</style></head><body><header><h1>{esc(title)}</h1><div>{esc(subtitle)}</div>'
            f'<nav>{nav}</nav></header>{body}</body></html>\n')
