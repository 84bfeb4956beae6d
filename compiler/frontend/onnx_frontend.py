"""ONNX -> graph IR: load, check, clean up (`cleanup.clean_model`: opsets, IR-3 inputs, input shapes, non-finite
constants, constant folding, Sum), split device/host parts, convert, and report every node that cannot be
converted (unsupported ops and converter errors alike) in one error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from isa.errors import ModelError

from ..ir import Graph, Value, verify
from .cleanup import DEFAULT_DOMAINS, clean_model
from .converters import CONVERTERS, Context, constant_value
from .qdq import strip_qdq, weight_quantizers

#: Ops evaluated on the host after the program, when everything downstream of them is host too.
HOST_OPS = ("Softmax", "LogSoftmax", "ArgMax", "ArrayFeatureExtractor", "Cast", "Reshape", "Identity",
            "Flatten", "ZipMap")


@dataclass
class FrontendResult:
    """The device graph, the ONNX model of the host tail (when the model ends in host-evaluated ops) and the
    cleaned model (constants folded, batch dimension symbolic: the onnxruntime reference for any batch)."""

    graph: Graph
    host_model: onnx.ModelProto | None
    model: onnx.ModelProto
    notes: list[str] = field(default_factory=list)  # what the frontend changed at the user's request (warnings)


def load_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """Load and check an ONNX model; errors name the file."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        path = Path(model)
        if not path.exists():
            raise ModelError(f"{path}: no such model file")
        try:
            proto = onnx.load(str(path))
        except Exception as e:  # noqa: BLE001 - protobuf raises several types
            raise ModelError(f"{path}: not a readable ONNX model ({e})") from None
    bad = _bad_text(proto)
    if bad:
        where = model if not isinstance(model, onnx.ModelProto) else "model"
        raise ModelError(f"{where}: damaged: {bad} is not valid UTF-8 text")
    try:  # a file is checked as it is on disk: no serialized copy of the model (VGG-16's 553 MB)
        onnx.checker.check_model(proto if isinstance(model, onnx.ModelProto) else str(model))
    except onnx.checker.ValidationError as e:
        raise ModelError(f"model fails onnx.checker: {str(e).splitlines()[0]}") from None
    return proto


def _bad_text(m: onnx.ModelProto) -> str | None:
    """The first text field of ``m`` that is not valid UTF-8, described; protobuf decodes strings lazily (and,
    with some backends, hands back bytes or raises on access), so a damaged file is named here, not deep inside a
    pass."""
    fields: list[tuple[str, object]] = [("the producer name", lambda: m.producer_name), ("the model domain",
                                        lambda: m.domain), ("the doc string", lambda: m.doc_string)]
    fields += [(f"metadata entry {i}", lambda p=p: p.key + p.value) for i, p in enumerate(m.metadata_props)]
    fields += [(f"opset import {i}", lambda o=o: o.domain) for i, o in enumerate(m.opset_import)]
    for what, get in fields + _graph_text(m.graph, "the graph"):
        try:
            value = get()  # type: ignore[operator]
        except (UnicodeDecodeError, TypeError):  # TypeError: bytes handed back, concatenated with text
            return what
        if not isinstance(value, str):
            return what
    return None


def _graph_text(g: onnx.GraphProto, where: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [(f"{where}'s name", lambda: g.name + g.doc_string)]
    for i, v in enumerate(list(g.input) + list(g.output) + list(g.value_info)):
        out.append((f"value {i} of {where}", lambda v=v: v.name + "".join(d.dim_param for d in
                                                                           v.type.tensor_type.shape.dim)))
    out += [(f"initializer {i} of {where}", lambda t=t: t.name) for i, t in enumerate(g.initializer)]
    for i, n in enumerate(g.node):
        out.append((f"node {i} of {where}", lambda n=n: n.name + n.op_type + n.domain + n.doc_string
                    + "".join(n.input) + "".join(n.output) + "".join(a.name for a in n.attribute)))
        for a in n.attribute:
            subs = ([a.g] if a.type == onnx.AttributeProto.GRAPH else []) + list(a.graphs)
            for sub in subs:
                out += _graph_text(sub, f"a subgraph of node {i}")
    return out


def check_reference(model: onnx.ModelProto) -> Any:
    """ModelError unless onnxruntime, the float reference of `xbarc run`, can load ``model`` (a clash of types or
    shapes, an op without a kernel at the model's opset): found at compile time rather than after it. Returns
    the session (`runner.reference_outputs` may reuse it: VGG-16's costs 5 s and a copy of its weights)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = str(e).strip().splitlines()
        raise ModelError(f"onnxruntime, the reference xbarc checks against, cannot load this model: "
                         f"{(text[0] if text else type(e).__name__)[:400]}") from None


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset version."""
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


def import_onnx(model: str | Path | onnx.ModelProto,
                input_shapes: Mapping[str, Sequence[int]] | None = None, drop_lrn: bool = False) -> FrontendResult:
    """Convert an ONNX model to the graph IR (see module docstring). ``input_shapes`` gives the full shapes
    (batch entry ignored) of graph inputs whose per-sample dims the model leaves dynamic. ``drop_lrn``: compile
    every LRN as an identity (the user's choice, said in ``notes``; the reference model keeps the LRN, so the
    run's agreement with onnxruntime shows what dropping it costs)."""
    proto = load_model(model)
    quantizers = weight_quantizers(proto)
    cleaned = clean_model(proto, input_shapes)
    proto = cleaned.model  # the reference keeps the activation Q/DQ pairs; the device graph does not
    device_model, qdq = strip_qdq(proto, quantizers)
    notes: list[str] = []
    if drop_lrn:
        device_model, notes = _without_lrn(device_model)
    device_model = _shuffles_as_gathers(device_model, cleaned.shapes)
    g = device_model.graph
    host_nodes = _host_nodes(g)
    device_nodes = [n for k, n in enumerate(g.node) if k not in host_nodes]
    ctx = Context(opset_of(proto), skipped=cleaned.skipped)
    known = cleaned.consts  # decoded by the cleanup; initializers added since are decoded here
    ctx.consts.update({t.name: known[t.name] if t.name in known else numpy_helper.to_array(t)
                       for t in g.initializer})
    for n in g.node:
        for i in n.input:
            ctx.uses[i] = ctx.uses.get(i, 0) + 1
    for o in g.output:
        ctx.uses[o.name] = ctx.uses.get(o.name, 0) + 1
    inputs = _graph_inputs(g, ctx)
    _convert(device_nodes, ctx, cleaned.shapes)
    device_outputs = _device_outputs(g, host_nodes, device_nodes)
    for name in device_outputs:
        if name not in ctx.values:
            raise ModelError(f"device output '{name}' is a constant or graph input; nothing to compute")
    host = [n for k, n in enumerate(g.node) if k in host_nodes]
    graph = Graph(g.name or "model", inputs, ctx.ops, device_outputs, dict(ctx.values),
                  host_outputs=[o.name for o in g.output] if host else [],
                  host_ops=[f"{n.op_type}({n.name})" for n in host], qdq=qdq)
    verify(graph)
    return FrontendResult(graph, _host_model(device_model, host, device_outputs) if host else None, proto, notes)


def _shuffles_as_gathers(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """ShuffleNet's channel shuffle, ``Reshape (N, C, H, W) -> (N, g, C/g, H, W)``, ``Transpose(perm=[0, 2, 1, 3,
    4])``, ``Reshape -> (N, C, H, W)``, as the one permutation of channels it is: ``Gather(x, idx, axis=1)``
    (the converter folds it into the crossbar layer that produces ``x``). Other chains are left alone."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    swaps = []
    for t in g.node:
        perm = [list(a.ints) for a in t.attribute if a.name == "perm"]
        if t.op_type != "Transpose" or perm != [[0, 2, 1, 3, 4]]:
            continue
        r1 = producer.get(t.input[0])
        r2 = [n for n in g.node if t.output[0] in n.input]
        if r1 is None or r1.op_type != "Reshape" or len(r2) != 1 or r2[0].op_type != "Reshape":
            continue
        a, mid, out = r1.input[0], shapes.get(r1.output[0]), shapes.get(r2[0].output[0])
        full = shapes.get(a)
        if (full is None or mid is None or out is None or len(full) != 4 or len(mid) != 5 or tuple(out) != tuple(full)
                or mid[1] * mid[2] != full[1] or tuple(mid[3:]) != tuple(full[2:])
                or uses.get(r1.output[0]) != 1 or uses.get(t.output[0]) != 1):
            continue
        swaps.append((r1, t, r2[0], np.arange(full[1]).reshape(mid[1], mid[2]).T.reshape(-1)))
    if not swaps:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    by_out = {n.output[0]: k for k, n in enumerate(m.graph.node)}
    drop = {by_out[n.output[0]] for _, t, r2, _ in swaps for n in (t, r2)}
    for k, (r1, t, r2, idx) in enumerate(swaps):
        name = f"{r2.output[0]}__shuffle_idx"
        m.graph.initializer.append(numpy_helper.from_array(idx.astype(np.int64), name))
        names = " -> ".join(n.name or n.output[0] for n in (r1, t, r2))
        gather = onnx.helper.make_node("Gather", [r1.input[0], name], [r2.output[0]], axis=1,
                                       name=t.name or r2.output[0],
                                       doc_string=f"the channel shuffle {names} (Reshape, Transpose, Reshape)")
        m.graph.node[by_out[r1.output[0]]].CopyFrom(gather)
    keep = [n for k, n in enumerate(m.graph.node) if k not in drop]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


def _without_lrn(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` whose LRN nodes are Identity nodes, and one note naming them."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    dropped = []
    for n in m.graph.node:
        if n.op_type == "LRN":
            dropped.append(n.name or n.output[0])
            n.op_type = "Identity"
            del n.attribute[:]
    notes = [f"LRN compiled as identity at your request (--drop-lrn): {', '.join(dropped)}; the outputs differ "
             f"from the model's by that normalization (the run's agreement with onnxruntime shows how much)"]
    return m, notes if dropped else []


def _convert(nodes: list[onnx.NodeProto], ctx: Context, inferred: dict[str, tuple[int, ...]]) -> None:
    """Run every node's converter; collect every failure (an unsupported op, a foreign domain, a converter's
    error) and raise them together. A failed node's outputs take their inferred shapes so that the nodes after
    it are still checked; nodes reading a tensor of unknown shape behind a failure are not reported."""
    unsupported: list[onnx.NodeProto] = []
    rejected: list[str] = []
    lost: set[str] = set()
    for node in nodes:
        unfolded = [ctx.skipped[o] for o in node.output if o in ctx.skipped]
        if unfolded:
            rejected.append(f"node '{node.name or node.output[0]}' ({node.op_type}): a constant the frontend did "
                            f"not fold: {unfolded[0]}")
        elif node.domain not in DEFAULT_DOMAINS or (node.op_type not in CONVERTERS and node.op_type != "Constant"):
            unsupported.append(node)
        elif any(i in lost for i in node.input):
            pass
        else:
            n_ops = len(ctx.ops)
            try:
                if node.op_type == "Constant":
                    ctx.consts[node.output[0]] = constant_value(node)
                else:
                    CONVERTERS[node.op_type](node, ctx)
                continue
            except ModelError as e:
                del ctx.ops[n_ops:]
                rejected.append(str(e))
            except (ValueError, TypeError, IndexError, KeyError) as e:  # a malformed node a converter misread
                del ctx.ops[n_ops:]
                rejected.append(f"node '{node.name or node.output[0]}' ({node.op_type}): malformed inputs or "
                                f"attributes ({type(e).__name__}: {e})")
        for out in node.output:
            shape = inferred.get(out)
            if shape:
                ctx.define(out, tuple(shape[1:]))
            else:
                lost.add(out)
    if len(rejected) == 1 and not unsupported:
        raise ModelError(rejected[0])
    if unsupported or rejected:
        parts = []
        if unsupported:
            listed = "\n".join(f"  {_qualified(n)} (node '{n.name or n.output[0]}')" for n in unsupported)
            parts.append(f"{len(unsupported)} unsupported ONNX op(s):\n{listed}")
        if rejected:
            listed = "\n".join("  " + r.replace("\n", "\n    ") for r in rejected)
            parts.append(f"{len(rejected)} node(s) whose attributes or inputs are not supported:\n{listed}")
        supported = ", ".join(sorted(set(CONVERTERS) | {"Constant"}))
        host = ", ".join(HOST_OPS)
        raise ModelError("\n".join(parts) + f"\nsupported on the device: {supported}\n"
                         f"supported on the host at the graph output: {host}")


def _qualified(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"


def _graph_inputs(g: onnx.GraphProto, ctx: Context) -> list[Value]:
    """The graph inputs with their per-sample shapes (dim 0 is the batch; `clean_model` made the rest static)."""
    values = []
    for inp in g.input:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
        if not dims or any(d <= 0 for d in dims[1:]):
            raise ModelError(f"graph input '{inp.name}': need a static per-sample shape, got {dims}")
        values.append(ctx.define(inp.name, tuple(int(d) for d in dims[1:])))
    return values


def _host_nodes(g: onnx.GraphProto) -> set[int]:
    """Indices of HOST_OPS nodes all of whose outputs feed only host nodes or graph outputs (the graph's tail),
    excluding nodes that read a graph input directly (those belong to the device part)."""
    nodes = list(g.node)
    users: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for name in n.input:
            users.setdefault(name, []).append(i)
    inputs = {i.name for i in g.input}
    host: set[int] = set()
    for i in reversed(range(len(nodes))):
        n = nodes[i]
        foreign = n.domain not in DEFAULT_DOMAINS + ("ai.onnx.ml",)
        if n.op_type not in HOST_OPS or foreign or any(name in inputs for name in n.input):
            continue
        if all(u in host for o in n.output for u in users.get(o, [])):
            host.add(i)
    return host


def _device_outputs(g: onnx.GraphProto, host: set[int], device: list[onnx.NodeProto]) -> list[str]:
    produced = [o for n in device for o in n.output]
    needed = {i for k, n in enumerate(g.node) if k in host for i in n.input} | {o.name for o in g.output}
    return [o for o in produced if o in needed]


def _host_model(model: onnx.ModelProto, host: list[onnx.NodeProto], device_outputs: list[str]) -> onnx.ModelProto:
    """An ONNX model of the host tail: inputs are the device outputs, outputs the original graph outputs."""
    g = model.graph
    used = {i for n in host for i in n.input}
    inits = [t for t in g.initializer if t.name in used]
    inputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in device_outputs]
    graph = helper.make_graph(list(host), "host_tail", inputs, list(g.output), inits)
    tail = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return tail


def host_eval(host_model: onnx.ModelProto, device_values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the host tail with onnxruntime on dequantized device outputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(host_model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    feeds = {k: v.astype(np.float32) for k, v in device_values.items() if k in {i.name for i in sess.get_inputs()}}
    return dict(zip(names, sess.run(names, feeds)))
