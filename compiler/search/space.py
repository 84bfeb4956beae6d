"""The per-layer action space of the precision search (seed 000's table, trimmed to this hardware).

One action per crossbar layer is a vector of indices, one per knob of `KNOBS`:

====================  =================================================
knob                  values
====================  =================================================
``w_bits``            2, 3, 4, 5, 6, 8, 16 (16 = ``hw.max_weight_bits``)
``in_bits``           2, 3, 4, 5, 6, 8, 16
``acc_bits``          16, 32
``w_frac``            0, 1, 2: fraction bits added to the calibrated w_frac (the range clipped by 1, 2, 4)
``in_frac``           0, 1, 2: the same for in_frac
``acc_frac``          0, 1, 2: the same for acc_frac (fixed at 0 for a layer whose output is a graph output)
``adc_bits``          1 .. ``hw.full_adc_bits`` (10 on the default chip)
``w_enc``             twos, sce
``in_enc``            twos, csd
``skip``              -1 (none), 2, 4, 8 (dynamic-quantization threshold)
``w_scheme``          uniform, nonuniform (seed 001's codebook with ``w_bits`` code bits and k = 1, held
                      on the grid the compiler chooses for it, up to the widest weight width), varied
                      (seed 003: every output channel its own uniform ``w_bits``-bit code, scaled to the
                      channel's range by a power of two, on the layer's common widest-width grid; the
                      bit positions a channel does not use are hollows the spatial mapping leaves out)
====================  =================================================

Fractions are searched relative to calibration: the seed's action picks the fraction bits outright (1 ..
bits - 1), most of which overflow or waste the range; here a fraction knob picks how many bits finer than the
calibrated fraction (the one that just holds the calibrated range) the format is, i.e. how much range is
clipped for resolution (config options ``*_frac_delta``). Layers that read the same tensor must share its
format, so a layer whose input tensor is already read by an earlier crossbar layer takes that layer's
``in_bits`` and ``in_frac`` (its own choices are ignored; `canonical` gives the effective actions). A
nonuniform or varied layer's weight grid is the scheme's, so its ``w_frac`` choice is ignored too. A layer
that writes a graph output keeps the calibrated ``acc_frac``: clipping the logits only lowers the softmax's
confidence, which lowers the cross-entropy of the wrong answers and so games the reward's accuracy term (seen:
-0.055 nats at -2.7 % accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from isa.errors import ConfigError
from isa.hardware import HardwareConfig

from ..ir import Graph

KNOBS = ("w_bits", "in_bits", "acc_bits", "w_frac", "in_frac", "acc_frac", "adc_bits", "w_enc", "in_enc", "skip",
         "w_scheme")
SKIPS = (-1, 2, 4, 8)
WIDTHS = (2, 3, 4, 5, 6, 8, 16)  # weight and input bit widths (the seed had 4, 8, 16, 32)
FRAC_STEPS = (0, 1, 2)  # fraction bits over the calibrated fraction
ORDINAL = ("w_bits", "in_bits", "acc_bits", "w_frac", "in_frac", "acc_frac", "adc_bits", "skip")  # ordered knobs

_OPTION = {"w_frac": "w_frac_delta", "in_frac": "in_frac_delta", "acc_frac": "acc_frac_delta"}  # knob -> option


@dataclass(frozen=True)
class SearchSpace:
    """The knob values of every crossbar layer of one graph on one chip."""

    layers: tuple[str, ...]
    inputs: tuple[str, ...]  # the tensor each layer reads
    values: dict[str, tuple[Any, ...]]
    writes_output: tuple[bool, ...] = ()  # per layer: its output is a graph output (acc_frac not searched)

    @classmethod
    def build(cls, g: Graph, hw: HardwareConfig) -> "SearchSpace":
        ops = g.crossbar_ops()
        wb = tuple(b for b in WIDTHS if b <= hw.max_weight_bits)
        ib = tuple(b for b in WIDTHS if b <= hw.max_input_bits)
        ab = tuple(b for b in (16, 32) if b <= hw.max_acc_bits)
        if not ab:
            raise ConfigError(f"hardware: field 'max_acc_bits': the precision search needs at least 16 (its "
                              f"accumulator widths are 16 and 32), got {hw.max_acc_bits}")
        values = {"w_bits": wb, "in_bits": ib, "acc_bits": ab, "w_frac": FRAC_STEPS, "in_frac": FRAC_STEPS,
                  "acc_frac": FRAC_STEPS, "adc_bits": tuple(range(1, hw.full_adc_bits + 1)),
                  "w_enc": ("twos", "sce"), "in_enc": ("twos", "csd"), "skip": SKIPS,
                  "w_scheme": ("uniform", "nonuniform", "varied")}
        outs = set(g.outputs)
        return cls(tuple(op.name for op in ops), tuple(op.inputs[0] for op in ops), values,
                   tuple(op.outputs[0] in outs for op in ops))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values of each knob, in `KNOBS` order."""
        return tuple(len(self.values[k]) for k in KNOBS)

    @property
    def ordinal(self) -> tuple[bool, ...]:
        """Whether each knob's values are ordered (`ORDINAL`), in `KNOBS` order."""
        return tuple(k in ORDINAL for k in KNOBS)

    def size(self) -> int:
        """Number of distinct configurations (before in_bits sharing)."""
        n = 1
        for s in self.sizes:
            n *= s
        return n ** len(self.layers)

    def baseline(self) -> tuple[tuple[int, ...], ...]:
        """The 16-bit baseline's actions: widest weights, inputs, accumulator, full ADC, plain encodings."""
        one = tuple(len(self.values[k]) - 1 if k in ("w_bits", "in_bits", "acc_bits", "adc_bits") else 0
                    for k in KNOBS)
        return tuple(one for _ in self.layers)

    def canonical(self, actions: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
        """The effective actions: in_bits and in_frac of a layer reading an already-read tensor copied from the
        first reader; w_frac 0 for a nonuniform or varied layer (its grid is the scheme's); acc_frac 0 for a layer
        writing a graph output."""
        if len(actions) != len(self.layers):
            raise ValueError(f"{len(actions)} actions for {len(self.layers)} layers")
        out, first = [], {}
        shared = [KNOBS.index("in_bits"), KNOBS.index("in_frac")]
        i_wf, i_sch, i_af = KNOBS.index("w_frac"), KNOBS.index("w_scheme"), KNOBS.index("acc_frac")
        for li, (name, tensor, a) in enumerate(zip(self.layers, self.inputs, actions)):
            b = [int(v) for v in a]
            if len(b) != len(KNOBS) or any(not 0 <= v < n for v, n in zip(b, self.sizes)):
                raise ValueError(f"layer {name}: action {tuple(b)} outside the space {self.sizes}")
            if tensor in first:
                for i, v in zip(shared, first[tensor]):
                    b[i] = v
            else:
                first[tensor] = [b[i] for i in shared]
            if self.values["w_scheme"][b[i_sch]] != "uniform":
                b[i_wf] = 0
            if li < len(self.writes_output) and self.writes_output[li]:
                b[i_af] = 0
            out.append(tuple(b))
        return tuple(out)

    def moves(self, actions: Sequence[Sequence[int]], layer: int, knob: int, lower_only: bool = False
              ) -> list[tuple[tuple[int, ...], ...]]:
        """The distinct effective configurations one value of (``layer``, ``knob``) away from ``actions``: every
        other value, or only the lower ones with ``lower_only``; in value order, ``actions`` itself left out."""
        cur = self.canonical(actions)
        vals = range(cur[layer][knob]) if lower_only else range(self.sizes[knob])
        out = []
        for v in vals:
            a = [list(x) for x in cur]
            a[layer][knob] = v
            out.append(self.canonical(a))
        return [c for c in dict.fromkeys(out) if c != cur]

    def neighbours(self, actions: Sequence[Sequence[int]]) -> list[tuple[tuple[int, ...], ...]]:
        """Every distinct configuration one knob value away from ``actions`` (all layers, all knobs)."""
        out: dict[tuple[tuple[int, ...], ...], None] = {}
        for li in range(len(self.layers)):
            for ki in range(len(KNOBS)):
                out.update(dict.fromkeys(self.moves(actions, li, ki)))
        return list(out)

    def decode(self, actions: Sequence[Sequence[int]]) -> dict[str, Any]:
        """Action indices -> a precision config dict for `resolve_precision` (fractions left to calibration)."""
        acts = self.canonical(actions)
        layers = {name: {_OPTION.get(k, k): self.values[k][v] for k, v in zip(KNOBS, a)}
                  for name, a in zip(self.layers, acts)}
        for spec in layers.values():
            if spec["w_scheme"] != "uniform":
                del spec["w_frac_delta"]
            if spec["w_scheme"] == "nonuniform":  # the code width is the choice; the grid is the compiler's
                spec.update(w_code_bits=spec["w_bits"], w_bits=max(self.values["w_bits"]), w_k=1.0)
            if spec["w_scheme"] == "varied":  # one uniform code per channel, each scaled to its channel
                spec.update(w_channels=[{"scheme": "uniform", "bits": spec["w_bits"]}],
                            w_bits=max(self.values["w_bits"]))
        return {"preset": "16bit", "layers": layers}

    def encode(self, config: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
        """A config dict (as `decode` writes it; missing knobs take the baseline's) -> action indices."""
        base = self.baseline()
        out = []
        for name, b in zip(self.layers, base):
            spec = dict((config.get("layers") or {}).get(name, {}))
            if spec.get("w_scheme") == "nonuniform":
                spec["w_bits"] = spec.get("w_code_bits") or spec.get("w_bits")
            if spec.get("w_scheme") == "varied":
                spec["w_bits"] = spec["w_channels"][0]["bits"]
            out.append(tuple(self.values[k].index(spec[_OPTION.get(k, k)]) if _OPTION.get(k, k) in spec else v
                             for k, v in zip(KNOBS, b)))
        return self.canonical(out)
