"""Per-layer precision annotations: presets, JSON config files, validation, and fraction bits from calibration."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

from isa.errors import ConfigError
from isa.hardware import HardwareConfig

from ..ir import Graph
from .calibrate import LayerRange, Ranges
from .precision_schema import FRAC_DELTAS, check_config, option_specs


@dataclass(frozen=True)
class LayerPrecision:
    """Fixed-point formats of one crossbar layer: weights Q(w_bits, w_frac), inputs Q(in_bits, in_frac),
    accumulator Q(acc_bits, acc_frac), the ADC resolution in bits (signed, clipping), the weight encoding on
    the crossbars (``twos``, ``sce`` or ``tc``), the input digit encoding (``twos`` or ``csd``) and the
    dynamic-quantization threshold ``skip`` (conversions of significance input digit + cell_bits x slice <= skip are not made; -1:
    none), and the weight scheme: ``uniform``; ``nonuniform`` (seed 001: a codebook of 2^w_code_bits + 1 levels
    from the importance g(x)|x|^w_k, held on the Q(w_bits, w_frac) grid; w_k -1 asks the compiler to search k);
    or ``varied`` (seed 003: one scheme per output channel from ``w_channels``, repeated over the channels, on
    the common Q(w_bits, w_frac) grid). ``replicate`` is a mapping knob, not a format: the copies of a conv
    layer's weights, each computing a band of its output rows (1: none; > 1 overrides the compile's
    ``replicate``; a dense or recurrent layer takes only 1)."""

    w_bits: int
    w_frac: int
    in_bits: int
    in_frac: int
    acc_bits: int
    acc_frac: int
    adc_bits: int
    w_enc: str = "twos"
    in_enc: str = "twos"
    skip: int = -1
    w_scheme: str = "uniform"
    w_code_bits: int = 0
    w_k: float = 1.0
    w_channels: tuple[Any, ...] = ()
    replicate: int = 1

    @property
    def mvm_shift(self) -> int:
        """Right shift from the product format Q(., in_frac + w_frac) to the accumulator's."""
        return self.in_frac + self.w_frac - self.acc_frac

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        d["w_channels"] = [dict(c) for c in self.w_channels]
        if self.replicate == 1:  # the default: written only when it says something
            del d["replicate"]
        return d


#: Config-only options (not stored in `LayerPrecision`): fraction bits added to the calibrated choice of
#: ``w_frac`` / ``in_frac`` / ``acc_frac`` (positive: finer steps, the range clipped by 2^delta; negative: more
#: headroom). They apply only where the fraction itself is not given (`precision_schema.FRAC_DELTAS`).
OPTIONS = tuple(f.name for f in fields(LayerPrecision)) + FRAC_DELTAS
BITS_OPTIONS = ("w_bits", "in_bits", "acc_bits", "adc_bits")

#: Presets give bit widths; fraction bits come from calibration unless a config fixes them. adc_bits 0 = full.
PRESETS: dict[str, dict[str, int]] = {
    "16bit": {"w_bits": 16, "in_bits": 16, "acc_bits": 32, "adc_bits": 0},
    "8bit": {"w_bits": 8, "in_bits": 8, "acc_bits": 16, "adc_bits": 0},
    "4bit": {"w_bits": 4, "in_bits": 4, "acc_bits": 16, "adc_bits": 0},
    "puma": {"w_bits": 16, "w_frac": 12, "in_bits": 16, "in_frac": 12, "acc_bits": 16, "acc_frac": 12,
             "adc_bits": 8},
}


def frac_for(maxabs: float, bits: int, headroom: int = 0) -> int:
    """Largest fraction f with maxabs * 2^headroom <= (2^(bits-1) - 1) / 2^f, within [-16, 62]."""
    top = (1 << (bits - 1)) - 1
    if maxabs <= 0 or not math.isfinite(maxabs):
        return min(62, bits - 1)
    return max(-16, min(62, math.floor(math.log2(top / (maxabs * (1 << headroom))))))


def _check_merged(source: str, layer: str, spec: dict[str, Any], own: Any, default: Any, preset: str,
                  hw: HardwareConfig) -> None:
    """One layer's merged options (preset, ``default`` and its own entry ``own``): each in its range on chip
    ``hw`` (a preset's widths may exceed a small chip's limits), and the rules across options, located where
    the layer's entry is (or ``default`` when the layer has none)."""
    opts = option_specs(hw)
    for key, value in spec.items():
        problem = opts[key].problem(value)
        if problem:
            at = f"layers.{layer}.{key}" if key in (own or {}) else f"default.{key}" if key in (default or {}) \
                else f"preset {preset!r}: option '{key}' (layer {layer})"
            raise ConfigError(f"{source}: {at}: {problem}")
    where = f"layers.{layer}" if isinstance(own, dict) and own else "default"
    for key in FRAC_DELTAS:
        if key in spec and key[:-6] in spec:
            raise ConfigError(f"{source}: {where}: options '{key}' and '{key[:-6]}' exclude each other "
                              f"(the delta shifts the calibrated fraction)")
    w_bits = spec.get("w_bits")
    for i, ch in enumerate(spec.get("w_channels", ())):
        lo = 1 if ch["scheme"] == "codebook" else 2
        if w_bits is not None and not lo <= ch["bits"] <= w_bits:
            at = f"layers.{layer}" if isinstance(own, dict) and "w_channels" in own else "default"
            raise ConfigError(f"{source}: {at}.w_channels[{i}].bits: must be an integer in [{lo}, {w_bits}] "
                              f"(the layer's w_bits), got {ch['bits']}")


def resolve_precision(g: Graph, config: str | dict[str, Any] | Path | None, ranges: Ranges,
                      hw: HardwareConfig, resolved: bool = False) -> dict[str, LayerPrecision]:
    """Precision of every crossbar layer from a preset name, a config dict or JSON file, and calibrated ranges.

    Config format: ``{"preset": "16bit", "default": {...}, "layers": {"fc1": {"adc_bits": 4, ...}}}``; missing
    ``*_frac`` options are chosen so the calibrated range fits; ``adc_bits`` 0 or absent means full resolution.
    The document is checked against the schema first (`precision_schema.check_config`; ``resolved``: a
    compiled directory's precision.json, which needs no ranges), so every error names its place in the file.
    """
    cfg, source = _load_config(config)
    names = [op.name for op in g.crossbar_ops()]
    check_config(cfg, source, hw, names, resolved)
    preset = cfg.get("preset", "16bit")
    layers = cfg.get("layers") or {}
    base = dict(PRESETS[preset]) | dict(cfg.get("default") or {})
    out = {}
    for op in g.crossbar_ops():
        own = layers.get(op.name)
        spec = {k: v for k, v in (base | dict(own or {})).items() if not (k == "adc_bits" and v == 0)}
        _check_merged(source, op.name, spec, own, cfg.get("default"), preset, hw)
        where = f"{source}: layers.{op.name}" if own else f"{source}: default (layer {op.name})"
        x_range = ranges.values.get(op.inputs[0])
        if op.kind == "recurrent" and x_range is not None and op.name in ranges:
            x_range = max(x_range, ranges[op.name].input)  # the MVM input holds h_{t-1} too
        if op.kind != "conv" and own and own.get("replicate", 1) != 1:
            raise ConfigError(f"{source}: layers.{op.name}.replicate: replication splits a conv layer's output "
                              f"rows; {op.name} is a {op.kind} layer (give it 1 or leave the option out)")
        if op.kind != "conv":
            spec.pop("replicate", None)  # a default's replicate applies to the conv layers
        out[op.name] = _complete(where, spec, ranges.get(op.name), hw, x_range)
        if op.attrs.get("act") in ("sigmoid", "tanh") or op.kind == "recurrent":
            out[op.name] = _bounded_act_frac(where, out[op.name], "acc_frac" in spec)
    return out


def check_resolved(path: Path, hw: HardwareConfig, layers: Sequence[str]) -> None:
    """The schema check of a compiled directory's precision.json (`resolve_precision`'s first step), against
    the crossbar layers the compile recorded, without the graph: loading names a damaged file at once."""
    cfg, source = _load_config(path)
    check_config(cfg, source, hw, layers, True)


def _complete(where: str, spec: dict[str, int], r: LayerRange | None, hw: HardwareConfig,
              input_range: float | None = None) -> LayerPrecision:
    """Fill the missing options: full ADC, fractions from the calibrated ranges (the input's from the tensor's
    range, so every layer reading one tensor picks the same format)."""
    full = dict(spec)
    full.setdefault("adc_bits", hw.full_adc_bits)
    delta = {k[:-6]: full.pop(k, 0) for k in FRAC_DELTAS}
    if any(k not in full for k in ("w_frac", "in_frac", "acc_frac")) and r is None:
        raise ConfigError(f"{where}: no calibrated ranges to choose the missing fraction bits from")
    if "w_frac" not in full:
        full["w_frac"] = frac_for(r.weight, full["w_bits"]) + delta["w_frac"]
    if "in_frac" not in full:
        full["in_frac"] = frac_for(r.input if input_range is None else input_range, full["in_bits"]) + delta["in_frac"]
    if "acc_frac" not in full:
        full["acc_frac"] = frac_for(r.acc, full["acc_bits"], headroom=1) + delta["acc_frac"]
    if "w_channels" in full:
        full["w_channels"] = tuple(dict(c) for c in full["w_channels"])
    p = LayerPrecision(**{k: full[k] for k in OPTIONS if k in full})
    if p.w_scheme == "varied" and not p.w_channels:
        raise ConfigError(f"{where}: option 'w_scheme'='varied' needs 'w_channels'")
    if p.w_scheme != "varied" and p.w_channels:
        raise ConfigError(f"{where}: option 'w_channels' needs 'w_scheme'='varied'")
    return p


def _bounded_act_frac(where: str, p: LayerPrecision, explicit: bool) -> LayerPrecision:
    """Sigmoid and tanh reach +-1.0, which Q(acc_bits, acc_frac) holds only if acc_frac <= acc_bits - 2."""
    if p.acc_frac <= p.acc_bits - 2:
        return p
    if explicit:
        raise ConfigError(f"{where}: option 'acc_frac'={p.acc_frac} cannot hold the activation's value "
                          f"1.0 in {p.acc_bits} bits; use acc_frac <= {p.acc_bits - 2}")
    return replace(p, acc_frac=p.acc_bits - 2)


def _load_config(config: str | dict[str, Any] | Path | None) -> tuple[Any, str]:
    """The config document and the name its errors carry (the file, or "precision config" for a dict)."""
    if config is None:
        return {}, "precision config"
    if not isinstance(config, (str, Path)):
        return config, "precision config"  # a dict, or anything else the schema check rejects
    if str(config) in PRESETS:
        return {"preset": str(config)}, "precision config"
    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"precision '{config}': neither a preset ({', '.join(PRESETS)}) nor a file")
    try:
        return json.loads(path.read_text()), str(path)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: cannot read the precision config ({type(e).__name__}: {e})") from None


def precision_to_json(prec: dict[str, LayerPrecision], preset: str | None = None) -> str:
    """The fully resolved config (every option of every layer), loadable by `resolve_precision`."""
    doc: dict[str, Any] = {"layers": {k: v.to_dict() for k, v in prec.items()}}
    if preset:
        doc = {"preset": preset} | doc
    return json.dumps(doc, indent=2) + "\n"


def with_layer(prec: dict[str, LayerPrecision], layer: str, **changes: int) -> dict[str, LayerPrecision]:
    """A copy with one layer's options changed."""
    return prec | {layer: replace(prec[layer], **changes)}
