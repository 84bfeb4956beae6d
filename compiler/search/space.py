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

Two more knobs join when the search is given more than one value for them (`EXTRA_KNOBS`; without, the space
and the search are what they were):

====================  =================================================
``replicate``         copies of a conv layer's weights, each computing a band of its output rows (`replicas`,
                      e.g. 1, 2, 4, 8; a dense layer keeps 1; values giving the same bands are one action)
``w_narrow``          under ``varied``: the least important half of the output channels (by the L2 norm of
                      their weights, `narrow_channels`) get a code this many bits narrower than ``w_bits``
                      (e.g. 0, 1, 2; at least 2 bits), the rest ``w_bits``
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

import numpy as np

from isa.errors import ConfigError
from isa.hardware import HardwareConfig

from ..ir import Graph

KNOBS = ("w_bits", "in_bits", "acc_bits", "w_frac", "in_frac", "acc_frac", "adc_bits", "w_enc", "in_enc", "skip",
         "w_scheme")
SKIPS = (-1, 2, 4, 8)
WIDTHS = (2, 3, 4, 5, 6, 8, 16)  # weight and input bit widths (the seed had 4, 8, 16, 32)
FRAC_STEPS = (0, 1, 2)  # fraction bits over the calibrated fraction
EXTRA_KNOBS = ("replicate", "w_narrow")  # in the space only when given more than one value
ORDINAL = ("w_bits", "in_bits", "acc_bits", "w_frac", "in_frac", "acc_frac", "adc_bits", "skip", "replicate",
           "w_narrow")  # ordered knobs
NARROW_SHARE = 0.5  # the share of a layer's output channels that ``w_narrow`` narrows (the least important)


def narrow_channels(weight: np.ndarray, share: float = NARROW_SHARE) -> tuple[int, ...]:
    """The least important ``share`` of the output channels (columns) of a (fan-in, fan-out) weight matrix,
    by the L2 norm of each channel's weights (the smallest first; ties by index), in channel order."""
    norms = np.sqrt((np.asarray(weight, dtype=np.float64) ** 2).sum(axis=0))
    k = int(len(norms) * share)
    return tuple(sorted(int(c) for c in np.argsort(norms, kind="stable")[:k]))


def band_count(rows: int, replicate: int) -> int:
    """Bands (replicas actually made) of a conv with ``rows`` output rows asked for ``replicate`` copies (as
    `compiler.mapping.row_bands` cuts them); 1 for a layer without rows (dense)."""
    if rows < 2 or replicate <= 1:
        return 1
    q = -(-rows // min(replicate, rows))
    return -(-rows // q)

_OPTION = {"w_frac": "w_frac_delta", "in_frac": "in_frac_delta", "acc_frac": "acc_frac_delta"}  # knob -> option


@dataclass(frozen=True)
class SearchSpace:
    """The knob values of every crossbar layer of one graph on one chip."""

    layers: tuple[str, ...]
    inputs: tuple[str, ...]  # the tensor each layer reads
    values: dict[str, tuple[Any, ...]]
    writes_output: tuple[bool, ...] = ()  # per layer: its output is a graph output (acc_frac not searched)
    knobs: tuple[str, ...] = KNOBS  # `KNOBS` and the `EXTRA_KNOBS` given more than one value
    out_rows: tuple[int, ...] = ()  # per layer: output rows of a conv (what replicas split), 0 for others
    narrowed: tuple[tuple[int, ...], ...] = ()  # per layer: the channels ``w_narrow`` narrows
    channels: tuple[int, ...] = ()  # per layer: output channels

    @classmethod
    def build(cls, g: Graph, hw: HardwareConfig, replicas: Sequence[int] = (1,), narrow: Sequence[int] = (0,)
              ) -> "SearchSpace":
        """The space of graph ``g`` on chip ``hw``; ``replicas`` and ``narrow`` are the values of the
        ``replicate`` and ``w_narrow`` knobs (each in the space only with more than one value)."""
        for name, opt, vals, lo in (("replicate", "--replicas", replicas, 1), ("w_narrow", "--narrow", narrow, 0)):
            if not vals or any(int(v) != v or v < lo for v in vals) or list(vals) != sorted(set(vals)) \
                    or vals[0] != lo:
                raise ConfigError(f"search knob '{name}' ({opt}): values {list(vals)} must be increasing integers "
                                  f"starting at {lo} (the plain {'mapping' if lo else 'width'})")
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
                  "w_scheme": ("uniform", "nonuniform", "varied"),
                  "replicate": tuple(int(v) for v in replicas), "w_narrow": tuple(int(v) for v in narrow)}
        knobs = KNOBS + tuple(k for k in EXTRA_KNOBS if len(values[k]) > 1)
        outs = set(g.outputs)
        rows = tuple(int(g.values[op.outputs[0]].shape[1]) if op.kind == "conv" else 0 for op in ops)
        return cls(tuple(op.name for op in ops), tuple(op.inputs[0] for op in ops), values,
                   tuple(op.outputs[0] in outs for op in ops), knobs, rows,
                   tuple(narrow_channels(op.params["weight"]) for op in ops),
                   tuple(int(op.params["weight"].shape[1]) for op in ops))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values of each knob, in `knobs` order."""
        return tuple(len(self.values[k]) for k in self.knobs)

    @property
    def ordinal(self) -> tuple[bool, ...]:
        """Whether each knob's values are ordered (`ORDINAL`), in `knobs` order."""
        return tuple(k in ORDINAL for k in self.knobs)

    def size(self) -> int:
        """Number of distinct configurations (before in_bits sharing)."""
        n = 1
        for s in self.sizes:
            n *= s
        return n ** len(self.layers)

    def baseline(self) -> tuple[tuple[int, ...], ...]:
        """The 16-bit baseline's actions: widest weights, inputs, accumulator, full ADC, plain encodings."""
        one = tuple(len(self.values[k]) - 1 if k in ("w_bits", "in_bits", "acc_bits", "adc_bits") else 0
                    for k in self.knobs)
        return tuple(one for _ in self.layers)

    def canonical(self, actions: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
        """The effective actions: in_bits and in_frac of a layer reading an already-read tensor copied from the
        first reader; w_frac 0 for a nonuniform or varied layer (its grid is the scheme's); acc_frac 0 for a layer
        writing a graph output; ``replicate`` the first value making the same bands (0 for a dense layer);
        ``w_narrow`` 0 unless varied, else the first value narrowing by as much (codes keep 2 bits)."""
        if len(actions) != len(self.layers):
            raise ValueError(f"{len(actions)} actions for {len(self.layers)} layers")
        out, first = [], {}
        ix = {k: i for i, k in enumerate(self.knobs)}
        shared = [ix["in_bits"], ix["in_frac"]]
        i_wf, i_sch, i_af = ix["w_frac"], ix["w_scheme"], ix["acc_frac"]
        for li, (name, tensor, a) in enumerate(zip(self.layers, self.inputs, actions)):
            b = [int(v) for v in a]
            if len(b) != len(self.knobs) or any(not 0 <= v < n for v, n in zip(b, self.sizes)):
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
            if "replicate" in ix:
                vals = [band_count(self.out_rows[li], r) for r in self.values["replicate"]]
                b[ix["replicate"]] = vals.index(vals[b[ix["replicate"]]])
            if "w_narrow" in ix:
                wb = self.values["w_bits"][b[ix["w_bits"]]]
                cut = [min(v, wb - 2) if self.values["w_scheme"][b[i_sch]] == "varied" and self.narrowed[li]
                       else 0 for v in self.values["w_narrow"]]
                b[ix["w_narrow"]] = cut.index(cut[b[ix["w_narrow"]]])
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
            for ki in range(len(self.knobs)):
                out.update(dict.fromkeys(self.moves(actions, li, ki)))
        return list(out)

    def decode(self, actions: Sequence[Sequence[int]]) -> dict[str, Any]:
        """Action indices -> a precision config dict for `resolve_precision` (fractions left to calibration)."""
        acts = self.canonical(actions)
        layers = {name: {_OPTION.get(k, k): self.values[k][v] for k, v in zip(self.knobs, a)}
                  for name, a in zip(self.layers, acts)}
        for li, spec in enumerate(layers.values()):
            narrow = spec.pop("w_narrow", 0)
            if spec.get("replicate") == 1:  # the default, left out (a dense layer's too)
                del spec["replicate"]
            if spec["w_scheme"] != "uniform":
                del spec["w_frac_delta"]
            if spec["w_scheme"] == "nonuniform":  # the code width is the choice; the grid is the compiler's
                spec.update(w_code_bits=spec["w_bits"], w_bits=max(self.values["w_bits"]), w_k=1.0)
            if spec["w_scheme"] == "varied":  # one uniform code per channel, each scaled to its channel
                spec.update(w_channels=self._channels(li, spec["w_bits"], narrow), w_bits=max(self.values["w_bits"]))
        return {"preset": "16bit", "layers": layers}

    def _channels(self, layer: int, bits: int, narrow: int) -> list[dict[str, Any]]:
        """``w_channels`` of a varied layer: one ``bits``-bit code, or per channel (``narrow`` > 0) the
        narrowed channels ``narrow`` bits less (codes keep at least 2 bits)."""
        narrow = min(narrow, bits - 2)
        if not narrow:
            return [{"scheme": "uniform", "bits": bits}]
        low = set(self.narrowed[layer])
        return [{"scheme": "uniform", "bits": bits - narrow if c in low else bits}
                for c in range(self.channels[layer])]

    def encode(self, config: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
        """A config dict (as `decode` writes it; missing knobs take the baseline's) -> action indices."""
        base = self.baseline()
        out = []
        for name, b in zip(self.layers, base):
            spec = dict((config.get("layers") or {}).get(name, {}))
            if spec.get("w_scheme") == "nonuniform":
                spec["w_bits"] = spec.get("w_code_bits") or spec.get("w_bits")
            if spec.get("w_scheme") == "varied":
                widths = [c["bits"] for c in spec["w_channels"]]
                spec["w_bits"], spec["w_narrow"] = max(widths), max(widths) - min(widths)
            out.append(tuple(self.values[k].index(spec[_OPTION.get(k, k)]) if _OPTION.get(k, k) in spec else v
                             for k, v in zip(self.knobs, b)))
        return self.canonical(out)
