"""The graph IR: typed ops over named per-sample tensors, with a verifier and a text dump.

Shapes exclude the batch dimension: a Dense input of shape (64,) is one sample of 64 features. Ops are kept in
topological order. Parameters (weights, biases) are float64 numpy arrays owned by the op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from isa.errors import ModelError


@dataclass
class Value:
    """A named tensor of one sample: its shape without the batch dimension."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class Op:
    """One IR operation.

    Kinds and their contract (checked by `verify`):

    - ``dense``: 1 input of n_in elements (any shape, read row-major), 1 output (n_out,); params ``weight`` (n_in, n_out), optional ``bias`` (n_out,);
      attr ``act`` in ``ACTIVATIONS`` (applied after the bias; set by the fusion pass).
    - ``bias_add``: 1 input, 1 output of the same shape; param ``bias``.
    - ``act``: 1 input, 1 output of the same shape; attr ``fn`` in ``ACTIVATIONS`` minus ``none``.
    - ``reshape``: 1 input, 1 output with the same number of elements (row-major relabelling, no data movement).
    - ``identity``: 1 input, 1 output of the same shape.
    """

    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def is_crossbar(self) -> bool:
        """Whether the op's weights live on crossbars (it gets a `LayerPrecision`)."""
        return self.kind in CROSSBAR_KINDS


ACTIVATIONS = ("none", "relu", "sigmoid", "tanh")
CROSSBAR_KINDS = ("dense",)
OP_KINDS = ("dense", "bias_add", "act", "reshape", "identity")


@dataclass
class Graph:
    """A model: graph inputs, ops in topological order, the device outputs, and what runs on the host after."""

    name: str
    inputs: list[Value]
    ops: list[Op]
    outputs: list[str]
    values: dict[str, Value]
    host_outputs: list[str] = field(default_factory=list)
    host_ops: list[str] = field(default_factory=list)
    output_names: dict[str, str] = field(default_factory=dict)

    def external_name(self, value: str) -> str:
        """The ONNX name of device output ``value`` (passes may rename outputs away from relabelling ops)."""
        return self.output_names.get(value, value)

    def producer(self, value: str) -> Op | None:
        """The op producing ``value`` (None for graph inputs)."""
        for op in self.ops:
            if value in op.outputs:
                return op
        return None

    def consumers(self, value: str) -> list[Op]:
        """Ops reading ``value``."""
        return [op for op in self.ops if value in op.inputs]

    def crossbar_ops(self) -> list[Op]:
        """The ops that get a precision annotation, in order."""
        return [op for op in self.ops if op.is_crossbar]

    def op(self, name: str) -> Op:
        """The op called ``name``."""
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)


def verify(g: Graph) -> None:
    """Check the IR's invariants; raise ModelError naming the op that breaks one."""
    defined = {v.name for v in g.inputs}
    for v in g.inputs:
        _check_value(g, v.name, None)
    for op in g.ops:
        _verify_op(g, op, defined)
        defined.update(op.outputs)
    for out in g.outputs:
        if out not in defined:
            raise ModelError(f"graph output '{out}' is never produced")


def _check_value(g: Graph, name: str, op: Op | None) -> Value:
    if name not in g.values:
        where = f"op '{op.name}' ({op.kind})" if op else "graph input"
        raise ModelError(f"{where}: value '{name}' has no shape")
    return g.values[name]


def _verify_op(g: Graph, op: Op, defined: set[str]) -> None:
    def fail(msg: str) -> None:
        raise ModelError(f"IR verifier: op '{op.name}' ({op.kind}): {msg}")

    if op.kind not in OP_KINDS:
        fail(f"unknown kind; known: {', '.join(OP_KINDS)}")
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        fail(f"expects 1 input and 1 output, has {len(op.inputs)} and {len(op.outputs)}")
    for name in op.inputs:
        if name not in defined:
            fail(f"input '{name}' used before it is defined")
    vin, vout = _check_value(g, op.inputs[0], op), _check_value(g, op.outputs[0], op)
    if op.kind == "dense":
        w = op.params.get("weight")
        if w is None or w.ndim != 2 or w.shape != (vin.size, vout.size):
            fail(f"weight {None if w is None else w.shape} does not map {vin.shape} to {vout.shape}")
        b = op.params.get("bias")
        if b is not None and b.shape != (vout.size,):
            fail(f"bias shape {b.shape} != ({vout.size},)")
        if op.attrs.get("act", "none") not in ACTIVATIONS:
            fail(f"activation {op.attrs.get('act')!r} not in {ACTIVATIONS}")
    elif op.kind == "reshape":
        if vin.size != vout.size:
            fail(f"reshape changes the element count {vin.shape} -> {vout.shape}")
    elif vin.shape != vout.shape:
        fail(f"shape changes {vin.shape} -> {vout.shape}")
    if op.kind == "act" and op.attrs.get("fn") not in ACTIVATIONS[1:]:
        fail(f"activation {op.attrs.get('fn')!r} not in {ACTIVATIONS[1:]}")
    if op.kind == "bias_add" and op.params.get("bias", np.zeros(0)).shape != vin.shape:
        fail("bias shape does not match the input")


def dump(g: Graph) -> str:
    """A stable, readable text form of the graph (golden-testable)."""
    lines = [f"graph {g.name}("
             + ", ".join(f"%{v.name}: {_shape(v.shape)}" for v in g.inputs) + ") {"]
    for op in g.ops:
        attrs = "".join(f" {k}={v}" for k, v in sorted(op.attrs.items()))
        params = "".join(f" {k}:{_shape(v.shape)}" for k, v in sorted(op.params.items()))
        outs = ", ".join(f"%{o}: {_shape(g.values[o].shape)}" for o in op.outputs)
        ins = ", ".join(f"%{i}" for i in op.inputs)
        lines.append(f"  {outs} = {op.kind}({ins}){attrs}{params}  # {op.name}")
    lines.append("  return " + ", ".join(f"%{o}" for o in g.outputs))
    if g.host_ops:
        lines.append("  host: " + ", ".join(g.host_ops) + " -> " + ", ".join(g.host_outputs))
    lines.append("}")
    return "\n".join(lines)


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + "x".join(str(d) for d in shape) + "]"
