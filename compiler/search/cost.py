"""Hardware cost of a precision configuration, estimated per candidate without running anything on the runtime
(docs/search.md, "Cost model"); the precision-independent part comes from the baseline program, statically.

`CostModel.estimate` rebuilds, from the mapping and the same functions of `isa.costs` that the runtime's
accountant charges:

* per crossbar block (one MVMU) and per execution (1 for a dense layer, OH x OW output pixels for a conv):
  `isa.costs.mvmu_energy` (ADC, sample-and-hold, shift-and-add, MVMU registers) and `isa.costs.mvmu_cycles`;
* the data-dependent DAC and crossbar energy, `isa.costs.mvm_data_energy`, from the layer's actual integer
  inputs on the calibration images (`trace_functional` records them) and the cell levels of each block's rows;
* a replicated conv (`LayerPrecision.replicate`) charges each replica's blocks for its band of output rows
  only (those pixels' executions and input digits);
* latency: a crossbar layer's MVM step is the slowest of its blocks' MVMU latencies; every op computes its
  output pixels one per (step + its share of the precision-independent loads, stores and vector work), and the
  ops run as a pixel-level pipeline, each replica on its band, tensors forwarded to other tiles once complete
  (`pipeline.PipelineModel`). The precision-independent parts (each core's busy time outside MVMs per op, the
  transfer stages, and the energy of the vector ALU, registers, tile memory, network and control) come from the
  program of the 16-bit baseline with the candidate's replicas, counted statically (`static_costs`: no runtime
  run); ADC leakage is recomputed from the ADC bits of every MVMU (replicas included) and the estimated cycles.

The search's hardware cost is a weighted set of named terms (`COST_TERMS`: ``energy``, ``latency``, the
seed's ``analytic`` formula and the ``area`` the mapping uses, `mapping_area`), each over the 16-bit baseline's
value; another term is one more entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from isa import numerics as nx
from isa.area import Area, blocks_area
from isa.costs import (MvmuShape, conductance_pj, leakage_pj, mvm_data_energy, mvmu_cycles, mvmu_energy,
                       row_levels)
from isa.hardware import HardwareConfig
from isa.layout import summarize
from isa.program import Program

from ..ir import Graph
from ..mapping import MAPPINGS, LayerMap, Mapping, place_layers, replicas
from ..ops import crossbar_kind
from ..quant import LayerPrecision
from ..quant.blockcache import quantized
from ..quant.calibrate import layer_inputs, out_hw
from ..quant.formats import Format
from ..quant.functional import op_output
from .memo import LayerMemo, array_key
from .pipeline import OpWork, PipelineModel
from .static_costs import Profile, program_profile

MVMU_COMPONENTS = ("crossbar", "dac", "adc", "sample_hold", "shift_add", "mvmu_regs")


def mapping_modes() -> tuple[str, ...]:
    """Mappings the cost model reproduces: every mode `compile_model` has (`compiler.mapping.MAPPINGS`)."""
    return MAPPINGS


@dataclass
class LayerFeatures:
    """Static features of one crossbar layer (the MDP state and the analytic cost use them)."""

    name: str
    kind: str
    fan_in: int
    fan_out: int
    pixels: int  # MVM executions per inference: 1 for dense, OH*OW for conv
    mvmus: int  # crossbar blocks at full size


def layer_features(g: Graph, hw: HardwareConfig) -> list[LayerFeatures]:
    """Features of every crossbar layer, in order."""
    out = []
    for op in g.crossbar_ops():
        k, n = op.params["weight"].shape
        px = int(np.prod(out_hw(g, op))) if op.kind == "conv" else crossbar_kind(op).pixels(g, op)
        blocks = -(-k // hw.xbar_rows) * -(-n // hw.xbar_cols)
        out.append(LayerFeatures(op.name, op.kind, int(k), int(n), px, blocks))
    return out


def trace_functional(g: Graph, prec: dict[str, LayerPrecision], inputs: dict[str, np.ndarray],
                     hw: HardwareConfig, fmt: dict[str, Format], memo: LayerMemo | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`run_functional` (inputs already flat HWC or ONNX layout, quantized) that also returns each crossbar
    layer's integer input tensor (before im2col). With ``memo``, a layer whose inputs, precision and formats
    were seen before takes its stored output instead of recomputing it (exact; arrays come back read-only)."""
    from ..quant.windows import to_hwc

    env: dict[str, np.ndarray] = {}
    keys: dict[str, Any] = {}
    for v in g.inputs:
        arr = np.asarray(inputs[v.name], dtype=np.int64)
        env[v.name] = to_hwc(arr, v.shape) if arr.ndim > 2 else arr
        keys[v.name] = (v.name, fmt[v.name], array_key(arr)) if memo is not None else None
    seen = {}
    for op in g.ops:
        if op.is_crossbar:
            seen[op.name] = env[op.inputs[0]]
        out = op.outputs[0]
        if memo is not None:
            keys[out] = (op.name, repr(replace(prec[op.name], replicate=1)) if op.is_crossbar else None,
                         tuple(fmt[i] for i in op.inputs), fmt[out], tuple(keys[i] for i in op.inputs))
            hit = memo.get(keys[out])
            if hit is not None:
                env[out] = hit
                continue
        y, frac = op_output(g, op, [env[i] for i in op.inputs], prec, fmt, hw)
        bits, out_frac = fmt[out]
        env[out] = nx.requantize(y, frac - out_frac, bits)
        if memo is not None:
            memo.put(keys[out], env[out])
    return {o: env[o].reshape(len(env[o]), -1) for o in g.outputs}, seen


@dataclass
class CostEstimate:
    """Estimated energy (pJ per inference) by component and layer, and cycles per inference."""

    energy_pj: float
    cycles: int
    per_component: dict[str, float] = field(default_factory=dict)
    per_layer: dict[str, dict[str, float]] = field(default_factory=dict)
    area_mm2: float = 0.0  # the mapping's area (`mapping_area`): a hardware-cost term the search can weigh


def _shape(lm: LayerMap, i: int, rows: int, cols: int) -> MvmuShape:
    """The charged shape of block ``i`` of ``lm``: naive, or packed by its bit-line layout."""
    layout = lm.layout(i)
    if layout is None:
        return MvmuShape(rows, cols, lm.slices)
    return MvmuShape.packed(rows, cols, lm.slices, summarize(layout))


def _band_rows(rows: np.ndarray, batch: int, per_row: int, band: tuple[int, int] | None) -> np.ndarray:
    """The rows of a (batch * pixels, fan_in) input matrix that a replica computing output rows ``band``
    (pixels ``per_row`` to an output row; None: all) multiplies."""
    if band is None:
        return rows
    lo, hi = band[0] * per_row, band[1] * per_row
    return rows.reshape(batch, -1, rows.shape[1])[:, lo:hi].reshape(-1, rows.shape[1])


class CostModel:
    """Energy and latency of a precision config on a graph, from the mapping, `isa.costs`, digit statistics and
    the static profile of the program (`static_costs`; ``program`` compiles the 16-bit baseline with given
    per-layer replicas: their loads, stores, vector work and transfers do not depend on the precision)."""

    def __init__(self, g: Graph, hw: HardwareConfig, mapping: str = "naive",
                 program: Callable[[dict[str, int]], Program] | None = None) -> None:
        self.g, self.hw, self.mapping, self.program = g, hw, mapping, program
        self.pipeline = PipelineModel(g)
        self.profiles: dict[tuple[tuple[str, int], ...], Profile] = {}

    def profile(self, prec: dict[str, LayerPrecision]) -> Profile | None:
        """The static profile of the program with ``prec``'s replicas (one compile per distinct replica set)."""
        if self.program is None:
            return None
        key = tuple((op.name, replicas(prec, op.name)) for op in self.g.crossbar_ops() if op.kind == "conv")
        if key not in self.profiles:
            self.profiles[key] = program_profile(self.program(dict(key)))
        return self.profiles[key]

    def _work(self, prof: Profile, per_layer: dict[str, dict[str, float]], mp: Mapping) -> dict[str, OpWork]:
        """Every op's `OpWork`: per band its busiest core's static non-MVM cycles (after its prologue) per pixel."""
        out = {}
        for op in self.g.ops:
            busy, pro, lead = prof.node_busy(op.name), prof.node_prologue(op.name), prof.node_lead(op.name)
            lay = per_layer.get(op.name)
            if lay is None:
                if op.name not in mp.vector:
                    continue
                shape = self.g.values[op.outputs[0]].shape
                px = int(np.prod(shape[1:])) if len(shape) == 3 else 1
                tile, core = mp.vector[op.name]
                name = f"{tile}.{core}"
                first = pro.get(name, 0.0)
                out[op.name] = OpWork(((busy.get(name, 0.0) - first) / px,), 0.0, px, (None,), (tile,), (first,),
                                      (lead.get(name, 0.0),))
                continue
            lm, px = mp.layers[op.name], int(lay["pixels"])
            per_row = px // (self.g.values[op.outputs[0]].shape[1] if lm.replicas > 1 else 1)
            bands = tuple(dict.fromkeys(b.out_rows for b in lm.blocks))
            other, tiles, pros, leads = [], [], [], []
            for bd in bands:
                mine = [b for b in lm.blocks if b.out_rows == bd]
                n = px if bd is None else (bd[1] - bd[0]) * per_row
                cores = [f"{t}.{c}" for t, c in dict.fromkeys(b.where for b in mine)]
                other.append(max(busy.get(c, 0.0) - pro.get(c, 0.0) for c in cores) / max(1, n))
                pros.append(min(pro.get(c, 0.0) for c in cores))
                leads.append(min(lead.get(c, 0.0) for c in cores))
                tiles.append(mine[0].tile)
            out[op.name] = OpWork(tuple(other), lay["step"], px, bands, tuple(tiles), tuple(pros), tuple(leads))
        return out

    def _stages(self, prof: Profile) -> dict[str, float]:
        """Transfer stages: busy cycles of the instructions whose node is a tensor (moved to another tile)."""
        ops = {op.name for op in self.g.ops}
        return {n: sum(prof.node_busy(n).values()) for n in prof.nodes() if n not in ops and n in self.g.values}

    def _latency(self, prof: Profile | None, per_layer: dict[str, dict[str, float]], mp: Mapping) -> int:
        """Pipelined makespan (`pipeline.PipelineModel` on the static profile); without a program to profile,
        MVM times add up."""
        if prof is None:
            return int(sum(v["mvm_cycles"] for v in per_layer.values()))
        ends = self.pipeline.ends(self._work(prof, per_layer, mp), self._stages(prof))
        return int(round(max(ends.values(), default=0.0)))

    def estimate(self, prec: dict[str, LayerPrecision], inputs: dict[str, np.ndarray]) -> CostEstimate:
        """The estimate for ``prec``; ``inputs`` are the crossbar layers' integer inputs (`trace_functional`)."""
        hw = self.hw
        weights = {op.name: quantized(op, prec[op.name]).weight for op in self.g.crossbar_ops()}  # cached
        mp = place_layers(self.g, prec, hw, weights, self.mapping)
        comp = {k: 0.0 for k in MVMU_COMPONENTS}
        per_layer, adcs = {}, []
        conductive = conductance_pj(hw) > 0
        for op in self.g.crossbar_ops():
            p, lm, q = prec[op.name], mp.layers[op.name], weights[op.name]
            x = inputs[op.name]
            batch = max(1, len(x))
            rows = layer_inputs(self.g, op, x)  # (batch * pixels, fan_in), pixels in raster order
            px = len(rows) // batch
            per_row = px // (self.g.values[op.outputs[0]].shape[1] if lm.replicas > 1 else 1)
            enc = p.in_enc
            lay = {k: 0.0 for k in MVMU_COMPONENTS}
            worst = 1
            for i, b in enumerate(lm.blocks):
                qb = q[b.rows[0]:b.rows[1], b.cols[0]:b.cols[1]]
                shape = _shape(lm, i, *qb.shape)
                mine = _band_rows(rows, batch, per_row, b.out_rows)
                execs = len(mine) // batch
                for k, v in mvmu_energy(hw, shape, p.in_bits, p.adc_bits, p.skip).items():
                    lay[k] = lay.get(k, 0.0) + v * execs
                worst = max(worst, mvmu_cycles(hw, shape, p.in_bits, p.adc_bits, p.skip))
                if shape.idle:  # no crossbar: no ADC to leak, no row driven
                    continue
                adcs.append(p.adc_bits)
                pulses = nx.nonzero_digits(mine[:, b.rows[0]:b.rows[1]], p.in_bits, enc).sum(axis=0)
                gsum = row_levels(*nx.weight_slices(qb, p.w_bits, hw.cell_bits, p.w_enc)) if conductive else None
                for k, v in mvm_data_energy(hw, pulses, gsum, batch).items():
                    lay[k] = lay.get(k, 0.0) + v
            for k, v in lay.items():
                comp[k] = comp.get(k, 0.0) + v
            bands = list(dict.fromkeys(b.out_rows for b in lm.blocks))
            widest = max(px if bd is None else (bd[1] - bd[0]) * per_row for bd in bands)
            per_layer[op.name] = {"energy_pj": sum(lay.values()), "mvm_cycles": widest * worst, "step": worst,
                                  "pixels": px}
        prof = self.profile(prec)
        cycles = max(1, self._latency(prof, per_layer, mp))
        if prof is not None:  # what no MVM charges: vector ALU, registers, tile memory, network, control
            comp.update({k: v for k, v in prof.energy.items() if k not in MVMU_COMPONENTS})
        comp["leakage"] = leakage_pj(hw, adcs, cycles)
        area = mapping_area(hw, mp, prec)
        for name, row in area.per_layer.items():
            per_layer[name]["area_um2"] = sum(row.values())
        return CostEstimate(float(sum(comp.values())), int(cycles), comp, per_layer, area.total_mm2)


def mapping_area(hw: HardwareConfig, mp: Any, prec: dict[str, LayerPrecision]) -> Area:
    """`isa.area.blocks_area` of a mapping: each block's physical arrays (its layout's, or one per slice and
    sign; none when idle) with ADCs at its layer's resolution, on the mapping's cores and tiles (vector layers'
    included): what `isa.area.used_area` finds in the program compiled from it."""
    blocks = []
    for name, lm in mp.layers.items():
        for i, b in enumerate(lm.blocks):
            shape = _shape(lm, i, b.rows[1] - b.rows[0], b.cols[1] - b.cols[0])
            blocks.append((name, 0 if shape.idle else shape.crossbars, prec[name].adc_bits))
    return blocks_area(hw, blocks, mp.cores, mp.tiles)


#: Defaults of the seed's analytic cost (docs/search.md).
ALPHA = 1.1
B_FULL = 16


def analytic_terms(feats: list[LayerFeatures], prec: dict[str, LayerPrecision], alpha: float = ALPHA,
                   b_full: int = B_FULL) -> list[float]:
    """Seed 000's per-layer terms alpha^B_ADC,i (f_in,i B_in,i / B_full + f_w,i B_w,i / B_full), with f_in,i layer
    i's share of all input values fed to crossbars (fan-in x executions), f_w,i its share of all weights and
    B_w,i the bits its codes use (`code_bits`: per channel group under varied)."""
    fin = np.array([f.fan_in * f.pixels for f in feats], dtype=np.float64)
    fw = np.array([f.fan_in * f.fan_out for f in feats], dtype=np.float64)
    fin, fw = fin / fin.sum(), fw / fw.sum()
    out = []
    for f, a, b in zip(feats, fin, fw):
        p = prec[f.name]
        out.append(float(alpha ** p.adc_bits * (a * p.in_bits / b_full + b * code_bits(p, f.fan_out) / b_full)))
    return out


def code_bits(p: LayerPrecision, channels: int) -> float:
    """The weight bits a layer's codes use, averaged over its ``channels`` output channels: per channel group
    for a varied layer (its ``w_channels``, repeated over the channels), the code width for a nonuniform one,
    else ``w_bits``."""
    if p.w_scheme == "varied" and p.w_channels:
        return float(np.mean([p.w_channels[c % len(p.w_channels)]["bits"] for c in range(channels)]))
    if p.w_scheme == "nonuniform" and p.w_code_bits:
        return float(p.w_code_bits)
    return float(p.w_bits)


def analytic_cost(feats: list[LayerFeatures], prec: dict[str, LayerPrecision], alpha: float = ALPHA,
                  b_full: int = B_FULL) -> float:
    """Seed 000's analytic hardware cost: the sum of `analytic_terms`."""
    return float(sum(analytic_terms(feats, prec, alpha, b_full)))


class CostInputs(NamedTuple):
    """What a cost term may read about one configuration."""

    estimate: CostEstimate
    prec: dict[str, LayerPrecision]
    features: list[LayerFeatures]


#: A term's raw value for a configuration and its per-layer parts (layer name -> value; empty if not additive).
TermValue = tuple[float, dict[str, float]]


def _energy(c: CostInputs) -> TermValue:
    return c.estimate.energy_pj, {n: v["energy_pj"] for n, v in c.estimate.per_layer.items()}


def _latency(c: CostInputs) -> TermValue:
    return float(c.estimate.cycles), {n: v["mvm_cycles"] for n, v in c.estimate.per_layer.items()}


def _analytic(c: CostInputs) -> TermValue:
    parts = analytic_terms(c.features, c.prec)
    return float(sum(parts)), {f.name: v for f, v in zip(c.features, parts)}


def _area(c: CostInputs) -> TermValue:
    """The chip area the mapping uses (`mapping_area`, mm^2), per layer its MVMUs'."""
    return c.estimate.area_mm2, {n: v.get("area_um2", 0.0) / 1e6 for n, v in c.estimate.per_layer.items()}


#: The named hardware cost terms the search objective can weigh (`weighted_cost`).
COST_TERMS: dict[str, Callable[[CostInputs], TermValue]] = {"energy": _energy, "latency": _latency,
                                                            "analytic": _analytic, "area": _area}

#: The default objective: energy and latency, each over the 16-bit baseline's, weighted equally.
DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (("energy", 0.5), ("latency", 0.5))


def parse_weights(spec: str) -> tuple[tuple[str, float], ...]:
    """``"energy=0.5,latency=0.5"`` -> ((name, weight), ...); ValueError naming a term that is not in
    `COST_TERMS`, a weight that is not a non-negative number, or a set whose weights are all 0."""
    out = []
    for part in spec.split(","):
        name, eq, w = part.strip().partition("=")
        if name not in COST_TERMS:
            raise ValueError(f"cost term '{name}': expected one of {', '.join(COST_TERMS)}")
        try:
            weight = float(w) if eq else 1.0
        except ValueError:
            raise ValueError(f"cost term '{name}': weight '{w}' is not a number") from None
        if not weight >= 0:
            raise ValueError(f"cost term '{name}': weight {w} must be >= 0")
        out.append((name, weight))
    if not any(w for _, w in out):
        raise ValueError(f"cost terms '{spec}': at least one weight must be > 0")
    return tuple(out)


def measure_terms(weights: Sequence[tuple[str, float]], inputs: CostInputs) -> dict[str, TermValue]:
    """Every weighted term's raw value and per-layer parts."""
    return {name: COST_TERMS[name](inputs) for name, _ in weights}


def weighted_cost(weights: Sequence[tuple[str, float]], raw: dict[str, TermValue], base: dict[str, TermValue],
                  layers: Sequence[str]) -> tuple[float, dict[str, float], list[float]]:
    """The objective: sum of weight x term / baseline term; also each term's ratio and each layer's share of the
    weighted sum (its per-layer parts over the baseline totals; the non-additive rest is not in any share)."""
    ratios = {name: raw[name][0] / base[name][0] for name, _ in weights}
    shares = [sum(w * raw[name][1].get(n, 0.0) / base[name][0] for name, w in weights) for n in layers]
    return float(sum(w * ratios[name] for name, w in weights)), ratios, shares
