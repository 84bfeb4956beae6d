"""One location type and one user-error base class for the whole toolchain.

Every error a user can cause (bad assembly, unsupported model, bad config, runtime fault) is an `XbarcError`;
its ``str`` is the complete message the CLI prints, with ``file:line:col``, the source line and a caret when a
source location is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Location:
    """A position in a source text: file name, 1-based line and column, and the line's text."""

    file: str
    line: int
    col: int
    text: str = ""

    def render(self, message: str) -> str:
        """``file:line:col: message`` followed by the source line and a caret under the column.

        The line is shown as printable text (control and line-separator characters as U+FFFD, so the caret stays
        under its column; tabs kept in both lines) and cut to a window of `WINDOW` characters around the column
        when it is longer."""
        head = f"{self.file}:{self.line}:{self.col}: {message}"
        if not self.text:
            return head
        text, col = self.text, self.col
        if len(text) > WINDOW:
            start = max(0, min(col - 1 - WINDOW // 2, len(text) - WINDOW))
            cut = text[start:start + WINDOW]
            left, right = ("..." if start else ""), ("..." if start + WINDOW < len(text) else "")
            text, col = left + cut + right, col - start + len(left)
        shown = "".join(c if c.isprintable() or c == "\t" else "\ufffd" for c in text)
        caret = "".join("\t" if c == "\t" else " " for c in shown[:col - 1]) + "^"
        return f"{head}\n{shown}\n{caret}"


WINDOW = 160  # characters of a long source line shown around an error's column


class XbarcError(Exception):
    """Base class of every error caused by user input; the message is complete and printable as is."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(location.render(message) if location else message)


class AsmError(XbarcError):
    """A syntax or semantic error in assembly text or a malformed binary."""


class ModelError(XbarcError):
    """A model that xbarc cannot compile (unsupported ops, bad shapes); names the ONNX node(s)."""


class ConfigError(XbarcError):
    """An invalid precision or hardware configuration; names the layer and the option."""


class RuntimeFault(XbarcError):
    """A fault while executing a program: names core, pc, assembly line and ONNX node."""


class DeadlockError(XbarcError):
    """Every live core is blocked; lists the blocked cores, their pcs and what each waits for."""


# ---- words for values in messages (config files, hardware files) -------------------------------------------------
def number_text(x: float) -> str:
    """``8`` for 8.0, ``0.5`` for 0.5."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def value_text(value: Any) -> str:
    """``repr(value)``, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def kind_text(value: Any) -> str:
    """What a JSON value is, in words: "an object", "a list", "a number", ..."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def config_object(d: Any, what: str, presets: Mapping[str, Any], default: str,
                  source: str) -> tuple[dict[str, Any], str]:
    """A JSON object describing ``what`` (``"a hardware description"``, ...) as a dict without its optional
    ``"preset"`` key, and that preset's name (``default`` when absent); a `ConfigError` names a non-object or
    an unknown preset."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: {what} is a JSON object, got {kind_text(d)}")
    d = dict(d)
    preset = d.pop("preset", default)
    if not isinstance(preset, str) or preset not in presets:
        raise ConfigError(f"{source}: field 'preset': must be one of {', '.join(map(repr, presets))}, "
                          f"got {preset!r}")
    return d, preset
