"""The schema of precision configs, checked before anything reads them (``--precision FILE``, a dict given to
`compile_model`, and the ``precision.json`` of a compiled directory).

A config is ``{"preset": NAME, "default": OPTIONS, "layers": {LAYER: OPTIONS}}`` (every key optional); OPTIONS
maps option names (`LayerPrecision` fields and the ``*_frac_delta`` options) to values; ``w_channels`` is a list of
``{"scheme": S, "bits": b}`` entries (codebook entries may add ``"k"`` and ``"bins"``). `check_config` rejects
the first violation with a `ConfigError` located in the document: ``SOURCE: layers.fc1.w_channels[3]: unknown
key 'foo'``. Limits that depend on the chip (weight and input widths, the ADC resolution) come from its
`HardwareConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from isa.errors import ConfigError, kind_text, number_text, value_text
from isa.hardware import HardwareConfig
from isa.numerics import INPUT_ENCODINGS, WEIGHT_ENCODINGS

FRAC_RANGE = (-16, 62)  # fraction bits of every format (compiler.quant.precision.frac_for clamps to it)
SCHEME_NAMES = ("uniform", "nonuniform", "varied")
MAX_REPLICAS = 1024  # the ``replicate`` option's limit (at most one replica per output row is used anyway)


@dataclass(frozen=True)
class Option:
    """One value's type and range: ``kind`` "int" (bool excluded), "number" (finite int or float), "choice"
    (a string of ``choices``) or "channels" (a list of channel schemes); ``lo``/``hi`` inclusive bounds;
    ``also`` one more legal number outside them (``w_k`` -1: search k); ``why`` where a limit comes from."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    also: float | None = None
    why: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is illegal, or None (``channels`` entries are checked by `check_channels`)."""
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return None
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value_text(value)}"
        if self.kind == "channels":
            return None if isinstance(value, (list, tuple)) else f"must be a list of channel schemes, got " \
                                                                  f"{value_text(value)}"
        if isinstance(value, bool) or not isinstance(value, int if self.kind == "int" else (int, float)):
            return f"must be {self._what()}, got {value_text(value)}"
        if not math.isfinite(value):
            return f"must be {self._what()}, got {value_text(value)}"
        if value == self.also or ((self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)):
            return None
        return f"must be {self._what()}, got {value_text(value)}"

    def _what(self) -> str:
        what = "an integer" if self.kind == "int" else "a finite number"
        if self.lo is not None and self.hi is not None:
            what += f" in [{number_text(self.lo)}, {number_text(self.hi)}]"
        elif self.lo is not None:
            what += f" >= {number_text(self.lo)}"
        if self.also is not None:
            what += f" or {number_text(self.also)}"
        return what + (f" ({self.why})" if self.why else "")




FRAC_DELTAS = ("w_frac_delta", "in_frac_delta", "acc_frac_delta")


def option_specs(hw: HardwareConfig) -> dict[str, Option]:
    """Every option of a layer, with the limits of chip ``hw``."""
    frac = Option("int", *FRAC_RANGE)
    return {
        "w_bits": Option("int", 2, hw.max_weight_bits, why="max_weight_bits of the chip"),
        "w_frac": frac,
        "in_bits": Option("int", 1, hw.max_input_bits, why="max_input_bits of the chip"),
        "in_frac": frac,
        "acc_bits": Option("int", 2, 64),
        "acc_frac": frac,
        "adc_bits": Option("int", 1, hw.full_adc_bits, also=0, why="0: full resolution"),
        "w_enc": Option("choice", choices=WEIGHT_ENCODINGS),
        "in_enc": Option("choice", choices=INPUT_ENCODINGS),
        "skip": Option("int", -1, 127),
        "w_scheme": Option("choice", choices=SCHEME_NAMES),
        "w_code_bits": Option("int", 0, hw.max_weight_bits),
        "w_k": Option("number", 0, 8, also=-1, why="-1: search k"),
        "w_channels": Option("channels"),
        "replicate": Option("int", 1, MAX_REPLICAS, why="copies of a conv layer's weights, one band of output "
                                                        "rows each"),
    } | {k: Option("int", -8, 8) for k in FRAC_DELTAS}


def channel_specs() -> dict[str, Option]:
    """The keys of one ``w_channels`` entry (``scheme`` and ``bits`` required; the upper limit of ``bits``, the
    layer's ``w_bits``, is checked once the layer's options are merged)."""
    from .weights import SCHEMES

    return {"scheme": Option("choice", choices=SCHEMES), "bits": Option("int", 1, 64),
            "k": Option("number", 0, 8), "bins": Option("int", 1, 1 << 20)}


TOP_KEYS = ("preset", "default", "layers")
#: Options a fully resolved config (a compiled directory's precision.json) gives every layer.
RESOLVED = ("w_bits", "w_frac", "in_bits", "in_frac", "acc_bits", "acc_frac", "adc_bits")


def _fail(source: str, where: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


def check_options(spec: Any, where: str, source: str, hw: HardwareConfig) -> None:
    """One OPTIONS object at ``where`` (``default`` or ``layers.NAME``)."""
    if not isinstance(spec, Mapping):
        raise _fail(source, where, f"must be an object of options, got {kind_text(spec)} {value_text(spec)}")
    opts = option_specs(hw)
    for key, value in spec.items():
        if key not in opts:
            raise _fail(source, where, f"unknown option {value_text(key)}; options: {', '.join(opts)}")
        problem = opts[key].problem(value)
        if problem:
            raise _fail(source, f"{where}.{key}", problem)
        if key == "w_channels":
            check_channels(value, f"{where}.w_channels", source)


def check_channels(chans: Sequence[Any], where: str, source: str) -> None:
    """Each ``w_channels`` entry: an object with a known ``scheme``, integer ``bits`` and no other key but the
    codebook's ``k`` and ``bins``."""
    keys = channel_specs()
    for i, ch in enumerate(chans):
        at = f"{where}[{i}]"
        if not isinstance(ch, Mapping):
            raise _fail(source, at, f"must be an object {{\"scheme\": ..., \"bits\": ...}}, got {value_text(ch)}")
        for key, value in ch.items():
            if key not in keys:
                raise _fail(source, at, f"unknown key {value_text(key)}; keys: {', '.join(keys)}")
            problem = keys[key].problem(value)
            if problem:
                raise _fail(source, f"{at}.{key}", problem)
        for key in ("scheme", "bits"):
            if key not in ch:
                raise _fail(source, at, f"missing key '{key}'")
        if ch["scheme"] != "codebook" and ("k" in ch or "bins" in ch):
            raise _fail(source, at, f"keys 'k' and 'bins' belong to the codebook scheme, not {ch['scheme']!r}")


def check_config(doc: Any, source: str, hw: HardwareConfig, layers: Sequence[str], resolved: bool = False) -> None:
    """The whole document: its keys, the preset, ``default`` and every ``layers`` entry (a crossbar layer of
    ``layers``, each an OPTIONS object). With ``resolved`` (a compiled directory's precision.json) every layer
    must be present with every option of `RESOLVED` and a found ``w_k``."""
    from .precision import PRESETS

    if not isinstance(doc, Mapping):
        raise _fail(source, "", f"a precision config is a JSON object, got {kind_text(doc)}")
    for key in doc:
        if key not in TOP_KEYS:
            raise _fail(source, "", f"unknown key {value_text(key)}; keys: {', '.join(TOP_KEYS)}")
    preset = doc.get("preset", "16bit")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise _fail(source, "preset", f"unknown precision preset {value_text(preset)}; presets: {', '.join(PRESETS)}")
    if doc.get("default") is not None:
        check_options(doc["default"], "default", source, hw)
    entries = doc.get("layers")
    if entries is None:
        entries = {}
    if not isinstance(entries, Mapping):
        raise _fail(source, "layers", f"must be an object mapping layer names to options, got {kind_text(entries)} "
                                      f"{value_text(entries)}")
    for name, spec in entries.items():
        if name not in layers:
            raise _fail(source, f"layers.{name}", f"not a crossbar layer of the model; layers: {', '.join(layers)}")
        check_options(spec, f"layers.{name}", source, hw)
    if resolved:
        for name in layers:
            if name not in entries:
                raise _fail(source, "layers", f"missing layer '{name}' (a compiled precision.json lists every "
                                              f"crossbar layer: {', '.join(layers)})")
            missing = [k for k in RESOLVED if k not in entries[name]]
            if missing:
                raise _fail(source, f"layers.{name}", f"missing option(s) {', '.join(missing)} (a compiled "
                                                      f"precision.json holds every resolved option)")
            if entries[name].get("w_k") == -1:
                raise _fail(source, f"layers.{name}.w_k", "-1 (search k) is not a resolved value")
