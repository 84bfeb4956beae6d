"""QDQ import: QuantizeLinear/DequantizeLinear pairs become fixed-point formats, not device ops.

What `onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QDQ)` and QCDQ exporters emit:

- **weights** (and biases): an integer initializer -> ``DequantizeLinear`` -> Conv/Gemm/MatMul. Constant folding
  (`cleanup.clean_model`) turns it into float weights ``(q - zp) * scale``; `weight_quantizers` records the
  quantizer first (before folding), so the layer's weight format can be derived from it.
- **activations**: ``x -> QuantizeLinear(s, zp) -> DequantizeLinear(s, zp) -> y`` (one Q, one or more DQ of the
  same parameters). `strip_qdq` removes the pair (``y`` is ``x`` again) and records the quantizer of ``x``. The
  pair also clips to [lo, hi] = [(qmin - zp) s, (qmax - zp) s]; when lo = 0 (zero point = qmin, e.g. int8 with
  zero point -128, the form onnxruntime gives a ReLU it fused away) and ``x`` is not already non-negative, a
  ``Relu`` takes the pair's place (the lower clip, exactly); a graph input's lower clip is not applied (inputs are
  taken to be in range) and the upper clip becomes the format's saturation: both are reported by
  `compiler.quant.qdq.qdq_config`.

Every Q/DQ node that is not one of these patterns (a QuantizeLinear whose output is not only dequantized, a
DequantizeLinear of an activation no QuantizeLinear produced, per-channel or blocked activation quantizers,
scales that are not constants, an integer type other than (u)int4/8/16) is a `ModelError` naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import onnx
from onnx import helper, numpy_helper

from isa.errors import ModelError

from .cleanup import DEFAULT_DOMAINS, node_label

#: ONNX integer element types a quantizer may produce: (bits, signed).
QTYPES = {onnx.TensorProto.INT8: (8, True), onnx.TensorProto.UINT8: (8, False), onnx.TensorProto.INT16: (16, True),
          onnx.TensorProto.UINT16: (16, False), onnx.TensorProto.INT4: (4, True), onnx.TensorProto.UINT4: (4, False),
          onnx.TensorProto.INT32: (32, True)}
#: Ops that keep a non-negative input non-negative (the Relu of a lower clip at 0 is then not needed).
_KEEPS_SIGN = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Squeeze",
               "Unsqueeze", "Identity", "Transpose", "Concat", "Relu", "Dropout")
_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class Quantizer:
    """One QuantizeLinear/DequantizeLinear's parameters: ``scale`` and ``zero_point`` (scalars, or one per
    channel along ``axis``), the integer type (``bits``, ``signed``) and the node it came from."""

    node: str
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int
    signed: bool
    axis: int | None = None
    per_output: bool = False  # per-channel along the layer's output channels (a weight quantizer of a layer)

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def bounds(self) -> tuple[float, float]:
        """The real range [lo, hi] the quantizer clips to (per-tensor)."""
        s, z = float(self.scale.reshape(-1)[0]), int(self.zero_point.reshape(-1)[0])
        return (self.qmin - z) * s, (self.qmax - z) * s


@dataclass
class QdqInfo:
    """The quantizers of a QDQ model: of activations by (device-graph) tensor name, of weights by crossbar layer
    (op) name, and remarks about clips the device does not reproduce exactly."""

    acts: dict[str, Quantizer] = field(default_factory=dict)
    weights: dict[str, Quantizer] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    nodes: int = 0  # Q/DQ nodes removed from the device graph (weight DQs folded included)

    def __bool__(self) -> bool:
        return self.nodes > 0


def _const(name: str, consts: dict[str, np.ndarray], node: onnx.NodeProto, what: str) -> np.ndarray:
    if name not in consts:
        raise ModelError(f"{node_label(node)}: its {what} '{name}' must be a constant (an initializer) to become "
                         f"a fixed-point format")
    return np.asarray(consts[name])


def quantizer_of(node: onnx.NodeProto, consts: dict[str, np.ndarray], dtypes: dict[str, int]) -> Quantizer:
    """The parameters of a QuantizeLinear or DequantizeLinear node (constants), checked."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if int(attrs.get("block_size", 0) or 0):  # type: ignore[call-overload]
        raise ModelError(f"{node_label(node)}: blocked quantization (block_size) cannot be mapped to fixed-point "
                         f"formats")
    scale = _const(node.input[1], consts, node, "scale").astype(np.float64)
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise ModelError(f"{node_label(node)}: scale must be positive and finite, got {scale.reshape(-1)[:4]}")
    has_zp = len(node.input) > 2 and bool(node.input[2])
    if has_zp:
        zp = _const(node.input[2], consts, node, "zero point")
        dtype = dtypes.get(node.input[2], helper.np_dtype_to_tensor_dtype(zp.dtype))
    else:
        zp = np.zeros(1, dtype=np.int64)
        dtype = int(attrs.get("output_dtype", 0) or 0) or onnx.TensorProto.UINT8  # type: ignore[call-overload]
        if node.op_type == "DequantizeLinear" and node.input[0] in dtypes:
            dtype = dtypes[node.input[0]]
    if dtype not in QTYPES:
        raise ModelError(f"{node_label(node)}: integer type {onnx.TensorProto.DataType.Name(dtype)} cannot be "
                         f"mapped to a fixed-point format (supported: int4/8/16, uint4/8/16, int32 biases)")
    bits, signed = QTYPES[dtype]
    zp = np.asarray(zp).astype(np.int64)
    if zp.size not in (1, scale.size):
        raise ModelError(f"{node_label(node)}: {zp.size} zero points for {scale.size} scales")
    axis = int(attrs.get("axis", 1)) if scale.size > 1 else None  # type: ignore[call-overload]
    return Quantizer(node.name or node.output[0], scale.reshape(-1), zp.reshape(-1), bits, signed, axis)


def _dtypes(g: onnx.GraphProto) -> dict[str, int]:
    return {t.name: t.data_type for t in g.initializer}


def weight_quantizers(model: onnx.ModelProto) -> dict[str, Quantizer]:
    """The quantizers of DequantizeLinear nodes applied to integer initializers, by the DQ's output name (read
    before constant folding, which replaces them by their float values)."""
    g = model.graph
    read = {i for n in g.node if n.op_type == "DequantizeLinear" for i in n.input}  # (not every weight: VGG-16)
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer if t.name in read}
    for n in g.node:
        if n.op_type == "Constant" and n.output:
            try:
                consts[n.output[0]] = numpy_helper.to_array(next(a.t for a in n.attribute if a.name == "value"))
            except StopIteration:
                pass
    dtypes = _dtypes(g)
    out = {}
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.domain in DEFAULT_DOMAINS and n.input[0] in consts:
            q = quantizer_of(n, consts, dtypes)
            rank = np.ndim(consts[n.input[0]])
            out[n.output[0]] = q if q.axis is None or not rank else replace(q, axis=q.axis % rank)
    return out


def strip_qdq(model: onnx.ModelProto, weights: dict[str, Quantizer]) -> tuple[onnx.ModelProto, QdqInfo]:
    """A copy of the cleaned ``model`` without activation Q/DQ pairs, and the quantizers (module docstring).
    ``weights``: `weight_quantizers` of the model before cleaning."""
    info = QdqInfo(nodes=len(weights))
    g0 = model.graph
    if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.domain in DEFAULT_DOMAINS for n in g0.node):
        info.weights = _layer_weights(g0, weights)
        return model, info
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    dtypes = _dtypes(g)
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    inputs = {i.name for i in g.input}
    rename: dict[str, str] = {}
    nonneg: set[str] = set()
    dropped: set[str] = set()  # outputs of the DequantizeLinear nodes of removed pairs
    kept: list[onnx.NodeProto] = []
    out_rename: dict[str, str] = {}  # device tensor -> graph output name it must carry
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.output and n.output[0] in dropped:
            continue
        for k, i in enumerate(n.input):
            n.input[k] = rename.get(i, i)
        if n.domain not in DEFAULT_DOMAINS:
            kept.append(n)
            continue
        if n.op_type == "DequantizeLinear":
            raise ModelError(f"{node_label(n)}: dequantizes '{n.input[0]}', which no QuantizeLinear of the same "
                             f"parameters produced (an integer graph input or a QOperator-format graph); only "
                             f"QuantizeLinear -> DequantizeLinear pairs and dequantized integer weights can be "
                             f"mapped to fixed-point formats")
        if n.op_type != "QuantizeLinear":
            acts = [i for i in n.input if i and i not in consts]
            if n.op_type in _KEEPS_SIGN and acts and all(i in nonneg for i in acts):
                nonneg.update(o for o in n.output if o)
            kept.append(n)
            continue
        q = quantizer_of(n, consts, dtypes)
        x, qout = n.input[0], n.output[0]
        if q.per_channel:
            raise ModelError(f"{node_label(n)}: per-channel quantization of activation '{x}' (axis {q.axis}) cannot "
                             f"be mapped: an activation has one fixed-point format")
        dqs = users.get(qout, [])
        if qout in outputs or not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
            others = sorted({d.op_type for d in dqs if d.op_type != "DequantizeLinear"})
            why = "it is a graph output" if qout in outputs else "nothing dequantizes it" if not dqs else \
                f"it is read by {', '.join(others)}"
            raise ModelError(f"{node_label(n)}: its integer output '{qout}' is not only dequantized ({why}); only "
                             f"QuantizeLinear -> DequantizeLinear pairs can be mapped to fixed-point formats")
        for d in dqs:
            p = quantizer_of(d, consts, dtypes)
            if not (np.allclose(p.scale, q.scale, rtol=1e-6, atol=0) and np.array_equal(p.zero_point, q.zero_point)
                    and (p.bits, p.signed) == (q.bits, q.signed)):
                raise ModelError(f"{node_label(d)}: dequantizes '{qout}' with parameters other than its "
                                 f"QuantizeLinear's ('{q.node}'); the pair cannot be one fixed-point format")
            dropped.add(d.output[0])
        lo, hi = q.bounds()
        r = x
        if lo == 0.0 and x not in nonneg:
            if x in inputs:
                info.notes.append(f"quantizer '{q.node}' clips graph input '{x}' to [0, {hi:.4g}]; the device does "
                                  f"not clip inputs (they are taken to be in range)")
            else:
                r = f"{x}/qdq_relu"
                kept.append(helper.make_node("Relu", [x], [r], name=f"{q.node}/relu"))
                info.acts[x] = q
        if lo >= 0.0:
            nonneg.add(r)
        info.acts[r] = q
        info.nodes += 1 + len(dqs)
        for d in dqs:
            rename[d.output[0]] = r
            if d.output[0] in outputs:
                if r in inputs or r in out_rename:
                    raise ModelError(f"{node_label(d)}: graph output '{d.output[0]}' would be graph input or "
                                     f"another output '{r}' once the Q/DQ pair is removed")
                out_rename[r] = d.output[0]
    for n in kept:  # a graph output keeps its name: the tensor that replaces it is renamed
        for k, i in enumerate(n.input):
            n.input[k] = out_rename.get(rename.get(i, i), rename.get(i, i))
        for k, o in enumerate(n.output):
            n.output[k] = out_rename.get(o, o)
    info.acts = {out_rename.get(k, k): v for k, v in info.acts.items()}
    del g.node[:]
    g.node.extend(kept)
    info.weights = _layer_weights(g, weights)
    return m, info


def _layer_weights(g: onnx.GraphProto, weights: dict[str, Quantizer]) -> dict[str, Quantizer]:
    """Weight quantizers by the op name the converters give crossbar layers (the node's name, else its output)."""
    out = {}
    for n in g.node:
        if n.op_type in _WEIGHTED and len(n.input) > 1 and n.input[1] in weights:
            q = weights[n.input[1]]
            if q.per_channel and q.axis is not None:
                trans = any(a.name == "transB" and a.i for a in n.attribute)
                output_axis = {"Gemm": 0 if trans else 1, "MatMul": 1}.get(n.op_type, 0)  # conv: (Cout, ...)
                q = replace(q, per_output=n.op_type != "ConvTranspose" and q.axis == output_axis)
            out[n.name or n.output[0]] = q
    return out
