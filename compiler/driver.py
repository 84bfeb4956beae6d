"""The compiler driver: ONNX model -> IR -> passes -> precision -> mapping -> program, and the output directory."""

from __future__ import annotations

import json
from collections import abc
from collections.abc import Mapping as MappingOf, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from isa import Program, TensorLoc
from isa.errors import XbarcError
from isa.files import load_program, program_files, save_program
from isa.hardware import HardwareConfig, load_hardware

from .codegen import generate
from .codegen.generate import add_programming
from .codegen.memory import plan_memory
from .data import DatasetLoader, load
from .frontend import check_reference, import_onnx
from .inputs import checked_feeds
from .modelref import model_files, referenced_source, restore_model, stored_model
from .ir import Graph, dump
from .mapping import LayerMap, Mapping, place_layers
from .mapping.fit import place_to_fit
from .mapping.rounds import Round, partition, top_tile
from .passes import CANONICALIZE, reject_unfolded, run_pipeline
from .quant import Format, LayerPrecision, Ranges, assign_formats, calibrate, precision_to_json, resolve_precision
from .quant.blockcache import quantized
from .quant.qdq import QDQ, qdq_config
from .quant.health import FIDELITY_IMAGES, fidelity_warning, quantization_warnings
from .quant.calibrate import UniformInputs
from .quant.precision import check_resolved
from .quant.schemes import Score, finalize_weight_schemes

DATASET_KEY = "xbarc.dataset"


@dataclass
class CompiledModel:
    """Everything one compilation produced; ``save`` writes it as an output directory.

    A model read back by `load_compiled` (``outdir`` set) holds the program, formats, warnings and host tail at
    once, and reads the rest when first asked: ``model`` (model.onnx, any referenced weights restored: the
    onnxruntime reference), ``graph`` (the frontend over that model: the functional model of ``xbarc run
    --check`` needs its float weights) and ``precision`` (precision.json, checked against the graph's layers).
    Running the program needs none of them (VGG-16: the frontend took 11 of its 19 s of loading)."""

    _graph: Graph | None
    _precision: dict[str, LayerPrecision] | None
    mapping: Mapping | None
    program: Program
    _model: onnx.ModelProto | None
    host_model: onnx.ModelProto | None
    hw: HardwareConfig
    formats: dict[str, Format]
    calibration: str = ""
    warnings: list[str] = field(default_factory=list)  # quantization health (compiler.quant.health)
    rounds: list[Program] = field(default_factory=list)  # reprogramming rounds (`program` is the first), or none
    source: Path | None = None  # the model file compiled, if any (a large one is referenced: `compiler.modelref`)
    outdir: Path | None = None  # the output directory it was loaded from, if any
    _restored: bool = True  # False: ``_model`` is model.onnx as stored, referenced weights not yet read back

    @property
    def graph(self) -> Graph:
        """The graph IR (of a loaded model: re-imported from its model.onnx on first use)."""
        if self._graph is None:
            assert self.outdir is not None, "a compiled model without a graph has an output directory"
            options = self.program.meta.get("frontend", {})
            self._graph = import_graph(self.model, drop_lrn=bool(options.get("drop_lrn")))[0]
        return self._graph

    @property
    def precision(self) -> dict[str, LayerPrecision]:
        """Every crossbar layer's precision (of a loaded model: its precision.json, read on first use)."""
        if self._precision is None:
            assert self.outdir is not None, "a compiled model without a precision has an output directory"
            self._precision = resolve_precision(self.graph, self.outdir / "precision.json", Ranges(), self.hw,
                                                resolved=True)
        return self._precision

    @property
    def model(self) -> onnx.ModelProto:
        """The cleaned source model, the float reference (of a loaded model: model.onnx, read on first use)."""
        if self._model is None or not self._restored:
            assert self.outdir is not None, "a compiled model without a source model has an output directory"
            self._model, self._restored = restore_model(self.outdir, self._model), True
        return self._model

    @property
    def host_ops(self) -> list[str]:
        """The ops evaluated on the host after the program (recorded by the compile; else from the graph)."""
        recorded = self.program.meta.get("host_ops")
        return list(recorded) if isinstance(recorded, list) else list(self.graph.host_ops)

    @property
    def output_locs(self) -> list[TensorLoc]:
        """Where the device outputs are: the graph outputs of whichever round produces them."""
        if not self.rounds:
            return self.program.outputs
        names = set(self.program.meta.get("outputs", []))
        return [loc for p in self.rounds for loc in p.outputs if loc.name in names]

    def mapping_report(self) -> dict[str, Any]:
        """The mapping report with the hollows of the quantized weights."""
        assert self.mapping is not None
        weights = {op.name: quantized(op, self.precision[op.name]).weight for op in self.graph.crossbar_ops()}
        return self.mapping.report(self.precision, weights) | {"area": _area_summary(self.program)}

    def save(self, outdir: str | Path) -> None:
        """Write program.s, program.bin, image.npz, manifest.json, precision.json, mapping.json, ir.txt,
        model.onnx (the source model after `frontend.cleanup`: constants folded, any batch; the onnxruntime reference
        of `xbarc run`; a large model compiled from a file keeps its weights there, named in source.json:
        `compiler.modelref`) and host.onnx (the host tail), atomically."""
        extra: dict[str, str | bytes] = {
            "precision.json": precision_to_json(self.precision),
            "ir.txt": dump(self.graph) + "\n",
            **model_files(self.model, self.source),
        }
        if self.mapping is not None:
            extra["mapping.json"] = json.dumps(self.mapping_report(), indent=2) + "\n"
        if self.host_model is not None:
            extra["host.onnx"] = self.host_model.SerializeToString()
        for k, p in enumerate(self.rounds[1:], 1):
            extra.update(program_files(p, round_folder(k)))
        save_program(self.program, outdir, extra_files=extra)


def _area_summary(program: Program) -> dict[str, Any]:
    """The mapping report's area: used mm^2 and the ADC area the layers' resolutions saved against the full
    resolution, in total and per layer (`isa.area.used_area`)."""
    from isa.area import used_area

    a = used_area(program)
    return {"node_nm": a.node_nm, "used_mm2": a.total_mm2, "adc_saved_um2": a.adc_saved,
            "adc_saved_per_layer_um2": a.layer_adc_saved}


def model_dataset(model: onnx.ModelProto) -> str | None:
    """The data set a model declares in its metadata (key ``xbarc.dataset``), if any."""
    for prop in model.metadata_props:
        if prop.key == DATASET_KEY:
            return prop.value
    return None


NOISE = "noise"  # ``calib="noise"``: calibrate on uniform [0, 1) noise, on purpose
CALIB_IMAGES = 256  # default bound of a loaded calibration batch


def calibration_inputs(g: Graph, model: onnx.ModelProto, calib: str | dict[str, np.ndarray] | None,
                       seed: int = 0, data: DatasetLoader | None = None, images: int = CALIB_IMAGES
                       ) -> tuple[dict[str, np.ndarray] | UniformInputs, str]:
    """Calibration batch: given arrays, the first ``images`` of the calib split of a data set named by ``calib``
    (or declared by the model) loaded through ``data``, or ``images`` uniform [0, 1) noise inputs drawn chunk by
    chunk (``calib="noise"``, or nothing else available: the description says "noise", which `compile_model`
    turns into a warning)."""
    if isinstance(calib, abc.Mapping):
        return checked_feeds(calib, {v.name: v.shape for v in g.inputs}, "calibration input"), "given arrays"
    if calib is not None and not isinstance(calib, str):
        raise XbarcError(f"calibration: expected a data set name or a dict of arrays by input name, got "
                         f"{type(calib).__name__}")
    name = calib or model_dataset(model)
    if name and name != NOISE:
        if len(g.inputs) != 1:
            raise XbarcError(f"calibration: the model has {len(g.inputs)} inputs; a data set gives one (pass "
                             f"calibration arrays by input name)")
        x, _ = load(data, name, "calib", g.inputs[0].shape)
        x = x[:images]
        return ({g.inputs[0].name: x.reshape((len(x),) + g.inputs[0].shape)},
                f"{name} calib split ({len(x)} images)")
    return (UniformInputs({v.name: v.shape for v in g.inputs}, images, seed),
            f"synthetic uniform [0, 1) noise ({images} inputs)")


InputShapes = MappingOf[str, Sequence[int]]


def import_graph(model: str | Path | onnx.ModelProto, input_shapes: InputShapes | None = None,
                 drop_lrn: bool = False, notes: list[str] | None = None
                 ) -> tuple[Graph, onnx.ModelProto | None, onnx.ModelProto]:
    """Frontend and canonicalization: (graph, host tail model, cleaned source model). ``input_shapes``: full
    shapes (batch entry ignored) for graph inputs with dynamic per-sample dims; ``drop_lrn``: LRN as identity;
    ``notes`` receives what the frontend changed at the user's request."""
    fr = import_onnx(model, input_shapes, drop_lrn)
    graph = run_pipeline(fr.graph, CANONICALIZE)
    reject_unfolded(graph)
    if notes is not None:
        notes.extend(fr.notes)
    return graph, fr.host_model, fr.model


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME:1,3,224,224`` -> (NAME, (1, 3, 224, 224)) (the ``--input-shape`` option's value)."""
    import argparse

    name, sep, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"'{text}': expected NAME:D0,D1,... with positive integer dims, "
                                         f"e.g. x:1,3,224,224")
    return name, shape


def shapes_for_import(calib: object, input_shapes: InputShapes | None) -> dict[str, tuple[int, ...]]:
    """Input shapes for the frontend: the given ones, else those of calibration arrays (batch entry ignored)."""
    shapes = {k: tuple(np.shape(v)) for k, v in calib.items()} if isinstance(calib, dict) else {}
    shapes.update({k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()})
    return shapes


def compile_model(model: str | Path | onnx.ModelProto, precision: str | dict[str, Any] | Path | None = None,
                  hw: HardwareConfig | str | Path | None = None,
                  calib: str | dict[str, np.ndarray] | None = None, mapping: str = "spatial",
                  crossbar_budget: int | None = None, replicate: int = 1,
                  input_shapes: InputShapes | None = None, data: DatasetLoader | None = None,
                  calib_images: int = CALIB_IMAGES, drop_lrn: bool = False, rounds: bool = False,
                  fit_words: int | None = None) -> CompiledModel:
    """Compile an ONNX model for the crossbar accelerator (``mapping``: "naive", "spatial" (hollow-aware) or
    "temporal"; with ``crossbar_budget``, temporal packs only as many layers as the budget needs; ``replicate``
    N copies each conv layer's weights N times to split its output rows; ``input_shapes``, e.g.
    ``{"x": (1, 3, 224, 224)}``, fixes the dynamic per-sample dims of graph inputs, which otherwise come from the
    calibration arrays; ``drop_lrn`` compiles LRN nodes as identities, with a warning). ``calib`` is calibration
    arrays or a data set name loaded through ``data``
    (`compiler.data.DatasetLoader`); without either, the data set the model declares is loaded through
    ``data``. ``precision``: a preset name, a config (dict or JSON file) or ``"qdq"``, the model's own
    QuantizeLinear/DequantizeLinear quantizers (`quant.qdq`); None: ``"qdq"`` for a model with Q/DQ nodes, else
    ``"16bit"``. ``rounds``: when the weights need more tiles than the chip has, compile the layers in
    reprogramming rounds (`mapping.rounds`) instead of failing. The placement keeps each tile's holdings within
    its memory where it can (`mapping.fit`); ``fit_words`` places for tiles of that many words instead of
    ``hw``'s (a benchmark's chip grown only to what that placement still needs)."""
    hwc = hw if isinstance(hw, HardwareConfig) else load_hardware(hw)
    notes: list[str] = []
    graph, host, proto = import_graph(model, shapes_for_import(calib, input_shapes), drop_lrn, notes)
    if precision is None:
        precision = QDQ if graph.qdq else "16bit"
    qdq_report: list[str] = []
    if isinstance(precision, str) and precision == QDQ:
        precision, qdq_report = qdq_config(graph, hwc)
    session = check_reference(proto)  # onnxruntime can load the model; reused by the fidelity check
    inputs, how = calibration_inputs(graph, proto, calib, data=data, images=calib_images)
    ranges: Ranges = calibrate(graph, inputs, hwc.xbar_rows)
    prec = resolve_precision(graph, precision, ranges, hwc)
    fmt = assign_formats(graph, prec, ranges)
    if any(p.w_scheme == "nonuniform" for p in prec.values()):
        prec = finalize_weight_schemes(graph, prec, _accuracy_score(graph, proto, calib, fmt, hwc, data))
    weights = {op.name: quantized(op, prec[op.name]).weight for op in graph.crossbar_ops()}  # narrow, cached
    programs: list[Program] = []
    if rounds:
        placed, programs = _compile_rounds(graph, prec, hwc, weights, fmt, mapping, replicate, crossbar_budget)
    else:
        fit = hwc if fit_words is None else hwc.with_changes(tile_mem_words=fit_words)
        placed = place_to_fit(partial(place_layers, graph, prec, hwc, weights, mapping, replicate, crossbar_budget),
                              lambda m: plan_memory(graph, prec, m, fit, fmt).top, fit.tile_mem_words)
    program = programs[0] if programs else generate(graph, prec, placed, hwc, fmt)
    warnings = notes + qdq_report + quantization_warnings(graph, prec, weights, ranges.values, fmt,
                                                         ranges.exponents)
    sample = (inputs.chunk(0, min(len(inputs), FIDELITY_IMAGES)) if isinstance(inputs, UniformInputs)
              else {k: np.asarray(v)[:FIDELITY_IMAGES] for k, v in inputs.items()})
    far = fidelity_warning(graph, prec, fmt, hwc, proto, sample, session)
    del session
    if far:
        warnings.append(far)
    if "noise" in how:
        warnings.insert(0, f"calibrated on {how}{' (no data set given or declared)' if calib != NOISE else ''}: "
                           f"activation ranges of real inputs may differ; pass calibration data (--calib FILE)")
    program.meta.update({"calibration": how, "layers": [op.name for op in graph.crossbar_ops()],
                         "warnings": warnings, "frontend": {"drop_lrn": drop_lrn}, "host_ops": graph.host_ops})
    source = Path(model).resolve() if isinstance(model, (str, Path)) else None
    return CompiledModel(graph, prec, placed, program, proto, host, hwc, fmt, how, warnings, programs, source)


def round_folder(k: int) -> str:
    """The sub-folder of an output directory holding round ``k`` (>= 1; round 0 is the directory itself)."""
    return f"round{k}"


def _compile_rounds(graph: Graph, prec: dict[str, LayerPrecision], hw: HardwareConfig,
                    weights: dict[str, np.ndarray], fmt: dict[str, Format], mode: str, replicate: int,
                    budget: int | None) -> tuple[Mapping, list[Program]]:
    """The placement (all rounds' layers, on the one chip; split layers whole again) and the programs of a model
    compiled in rounds; no program list when one round holds the model (it compiles as usual, without prog)."""
    plan = partition(graph, prec, hw, weights, fmt, mode, replicate, budget,
                     lambda g, p, m, f: plan_memory(g, p, m, hw, f).top)
    if len(plan.rounds) == 1:
        return plan.rounds[0].mapping, []
    programs = [add_programming(generate(r.graph, plan.prec, r.mapping, hw, plan.fmt)) for r in plan.rounds]
    table = [round_summary(r, p) for r, p in zip(plan.rounds, programs)]
    for k, p in enumerate(programs):
        p.meta.update({"round": k, "of": len(programs)})
    programs[0].meta.update({"rounds": table, "outputs": [graph.external_name(v) for v in graph.outputs],
                             "joins": plan.joins})
    layers = {k: v for r in plan.rounds for k, v in r.mapping.layers.items()}
    vector = {k: v for r in plan.rounds for k, v in r.mapping.vector.items()}
    whole = {op.name: join_parts(op.name, [(layers.pop(n), c0) for n, c0 in plan.splits[op.name]], hw)
             if op.name in plan.splits else layers[op.name] for op in graph.crossbar_ops()}
    return Mapping(hw, whole, vector, plan.rounds[0].mapping.mode), programs


def join_parts(name: str, parts: list[tuple[LayerMap, int]], hw: HardwareConfig) -> LayerMap:
    """The placement of a layer split across rounds, as one layer: each part's blocks with their columns shifted
    by the part's first column ``c0``."""
    first = parts[0][0]
    lm = LayerMap(name, first.row_blocks, sum(p.col_blocks for p, _ in parts), first.slices,
                  layouts=None if first.layouts is None else [])
    for p, c0 in parts:
        lm.blocks += [replace(b, layer=name, c=b.c + c0 // hw.xbar_cols, cols=(b.cols[0] + c0, b.cols[1] + c0))
                      for b in p.blocks]
        if lm.layouts is not None and p.layouts is not None:
            lm.layouts += p.layouts
    return lm


def round_summary(r: Round, p: Program) -> dict[str, Any]:
    """What `xbarc inspect` shows of one round: its ops, the tensors it reads and spills, tiles, MVMUs, crossbars
    and the cells its prog instructions write."""
    from isa.costs import image_shape, mvmu_write

    cells = sum(mvmu_write(p.hw, image_shape(img, p.hw)).cells for img in p.mvmus)
    return {"round": r.index, "ops": r.ops, "layers": [op.name for op in r.graph.crossbar_ops()],
            "inputs": [v.name for v in r.graph.inputs], "outputs": list(r.graph.outputs),
            "tiles": top_tile(r.mapping), "mvmus": r.mapping.mvmus, "crossbars": r.mapping.crossbars,
            "cells_written": cells}


def _accuracy_score(g: Graph, model: onnx.ModelProto, calib: object, fmt: dict[str, Format],
                    hw: HardwareConfig, data: DatasetLoader | None) -> Score | None:
    """Accuracy of the functional model on the labelled calib split of the model's data set (None without a
    data set or a loader for it)."""
    name = calib if isinstance(calib, str) else model_dataset(model)
    if not name or name == NOISE or data is None:
        return None
    from isa import numerics as nx

    from .quant import run_functional

    inp = g.inputs[0]
    x, y = load(data, name, "calib", inp.shape)
    if y is None:  # no labels: the schemes fall back to their unscored choice
        return None
    x = x.reshape((len(x),) + inp.shape)
    bits, frac = fmt[inp.name]
    q = {inp.name: nx.quantize(x, bits, frac)}

    def score(prec: dict[str, LayerPrecision]) -> float:
        out = run_functional(g, prec, q, hw, fmt)[g.outputs[0]]
        return float((out.argmax(axis=1) == y).mean())

    return score


def load_compiled(outdir: str | Path) -> CompiledModel:
    """Reload an output directory written by `CompiledModel.save`: the program (and its rounds), formats,
    warnings and host.onnx now; the source model, graph IR and precision when first used (`CompiledModel`)."""
    out = Path(outdir)
    program = load_program(out)
    if not (out / "model.onnx").exists():
        raise XbarcError(f"{out}: no model.onnx; was it written by `xbarc compile`?")
    fmt = {k: (int(v[0]), int(v[1])) for k, v in program.meta.get("formats", {}).items()}
    rounds = len(program.meta.get("rounds", []))
    programs = [program] + [load_program(out / round_folder(k)) for k in range(1, rounds)] if rounds else []
    host = _read_onnx(out / "host.onnx") if (out / "host.onnx").exists() else None
    stored = stored_model(out)  # a missing or changed source file is named now, not after a run
    layers = program.meta.get("layers")  # precision.json checked now against the layers the compile recorded
    check_resolved(out / "precision.json", program.hw, layers if isinstance(layers, list) else [])
    return CompiledModel(None, None, None, program, stored, host, program.hw, fmt,
                         program.meta.get("calibration", ""), list(program.meta.get("warnings", [])), programs,
                         referenced_source(out), out, _restored=False)


def _read_onnx(path: Path) -> onnx.ModelProto:
    """An ONNX file of an output directory (its checksum was verified by `load_program`)."""
    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise XbarcError(f"{path}: not a readable ONNX model ({e})") from None
