"""Loading a report in headless Chromium (the browser check of the tests and the docs' screenshots): screenshot,
DOM after rendering, the console messages, and a stdlib PNG reader to tell a blank screenshot from a drawn one.

Nothing here is needed to write a report; a missing browser is `None` from `find_browser`, never an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0")


def find_browser() -> str | None:
    """The Chromium executable (``XBARC_CHROMIUM``, else the first of `BROWSERS` on PATH), or None."""
    env = os.environ.get("XBARC_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return next((p for b in BROWSERS if (p := shutil.which(b))), None)


@dataclass
class Loaded:
    """What the browser made of a page: its stdout (the DOM with ``--dump-dom``) and its console messages."""

    stdout: str
    console: list[str]
    seconds: float


def load(browser: str, page: str | Path, *args: str, timeout: float = 120.0) -> Loaded:
    """Open ``page`` (a file) in headless ``browser`` with a fresh profile and ``args``
    (e.g. ``--dump-dom``, ``--screenshot=FILE``, ``--window-size=W,H``)."""
    import time

    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="xbarc-chromium-") as profile:
        t0 = time.perf_counter()
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args, url], capture_output=True,
                              text=True, timeout=timeout, check=False)
        secs = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{browser} exited with {done.returncode}: {done.stderr[-2000:]}")
    return Loaded(done.stdout, console_messages(done.stderr), secs)


def console_messages(stderr: str) -> list[str]:
    """The page's console lines in Chromium's log (script errors, blocked loads, CSP violations)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def screenshot(browser: str, page: str | Path, png: str | Path, width: int = 1280, height: int = 900) -> Loaded:
    """A ``width`` x ``height`` screenshot of the top of ``page`` into ``png``."""
    return load(browser, page, f"--screenshot={Path(png).resolve()}", f"--window-size={width},{height}")


def dump_dom(browser: str, page: str | Path) -> Loaded:
    """The DOM of ``page`` after rendering (``stdout``)."""
    return load(browser, page, "--dump-dom")


def read_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG (non-interlaced, what Chromium writes) as a (height, width, channels) uint8
    array, decoded with zlib and the five PNG row filters."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, head = 8, [], b""
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    w, h = int.from_bytes(head[0:4], "big"), int.from_bytes(head[4:8], "big")
    depth, colour, interlace = head[8], head[9], head[12]
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(h, 1 + w * channels)
    out = np.zeros((h, w, channels), dtype=np.uint8)
    prior = np.zeros((w, channels), dtype=np.int64)
    for y in range(h):
        row = raw[y, 1:].reshape(w, channels).astype(np.int64)
        out[y] = prior = _unfilter(int(raw[y, 0]), row, prior)
    return out


def _unfilter(kind: int, row: np.ndarray, prior: np.ndarray) -> np.ndarray:
    if kind == 0:
        return row
    if kind in (1, 2):  # Sub: a running sum along the row, per channel; Up: plus the row above
        done: np.ndarray = (np.cumsum(row, axis=0) if kind == 1 else row + prior) % 256
        return done
    cur, up, bpp = row.reshape(-1).tolist(), prior.reshape(-1).tolist(), row.shape[1]
    for i in range(len(cur)):  # plain ints: much faster than numpy on one pixel at a time
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:  # Average
            cur[i] = (cur[i] + (a + b) // 2) & 255
            continue
        c = up[i - bpp] if i >= bpp else 0  # Paeth
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rec: np.ndarray = np.array(cur, dtype=np.int64).reshape(row.shape)
    return rec


def drawn_fraction(pixels: np.ndarray) -> float:
    """The fraction of pixels that differ from the most common colour (the background): 0 for a blank page."""
    rgb = pixels[..., :3].reshape(-1, 3)
    keys = (rgb[:, 0].astype(np.int64) << 16) | (rgb[:, 1].astype(np.int64) << 8) | rgb[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    return 1.0 - float(counts.max()) / len(keys)
