"""``python -m isa.recordgen`` writes ``isa/ops.py`` from the instruction table (``--check``: exit 1 if stale)."""

from __future__ import annotations

import sys

from .records import OPS_PATH, module_source


def main() -> int:
    """Write ``isa/ops.py`` (``--check``: exit 1 if it is stale)."""
    text = module_source()
    if sys.argv[1:] == ["--check"]:
        return 0 if OPS_PATH.read_text() == text else 1
    OPS_PATH.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
