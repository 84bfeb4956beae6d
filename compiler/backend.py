"""An ``onnx.backend`` backend for xbarc: ONNX's own node tests run on the compiled program (docs/onnx-backend.md).

ONNX node tests pass weights as graph inputs. ``XbarcBackendRep.run`` therefore binds them at run time: every
graph input that is a weight (see `weight_inputs`) becomes an initializer holding the test's value, the model is
compiled at the given precision preset (16-bit by default) calibrating on the data inputs it is about to run,
the program runs on the runtime, and the outputs come back as float32 arrays of the graph outputs' shapes
(host-evaluated outputs from the host tail, the others dequantized from the device).

Unsupported models raise `isa.errors.ModelError`, from ``prepare`` when the graph itself is unsupported and
from ``run`` otherwise (whether an op is supported can depend on which inputs are constants).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from isa.errors import ModelError

from . import runner
from .driver import CompiledModel, compile_model

#: Ops whose inputs after the first are parameters (weights, biases, statistics, shapes), never activations.
WEIGHT_INPUT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "Reshape",
                              "InstanceNormalization", "LayerNormalization", "PRelu", "Clip", "Pad",
                              "Resize", "Upsample", "Expand", "Tile", "Slice", "Squeeze", "Unsqueeze"})


@dataclass
class LastRun:
    """What the most recent ``run`` compiled and executed (for bit-exactness checks and error bounds)."""

    compiled: CompiledModel
    feeds: dict[str, np.ndarray]
    outcome: runner.RunOutcome
    bound_model: onnx.ModelProto


def _dims(vi: onnx.ValueInfoProto) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    return None if any(d < 0 for d in dims) else dims


def weight_inputs(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> list[str]:
    """Names of the graph inputs to bind as initializers.

    The first graph input is the data input. Another input is a weight when some node reads it at a position
    after the first and that node's op is in `WEIGHT_INPUT_OPS`, or when it has no batch dimension: not the
    data input's rank and first dimension (e.g. Add's broadcast operand [5] to a [3, 4, 5] input). An input of
    the data input's rank and batch size read by elementwise ops or Concat stays an activation (Add of two
    activations, Concat).
    """
    g = model.graph
    inits = {t.name for t in g.initializer}
    names = [i.name for i in g.input if i.name not in inits]
    if not names:
        return []
    data = np.asarray(values[names[0]])
    out = []
    for name in names[1:]:
        by_op = any(node.op_type in WEIGHT_INPUT_OPS and name in list(node.input)[1:] for node in g.node)
        v = np.asarray(values[name])
        batched = v.ndim == data.ndim and v.ndim > 0 and v.shape[0] == data.shape[0]
        if by_op or not batched:
            out.append(name)
    return out


def bind_weights(model: onnx.ModelProto, values: dict[str, np.ndarray], names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` with graph inputs ``names`` moved to initializers holding ``values``."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [i for i in m.graph.input if i.name not in names]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for name in names:
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(values[name]), name))
    return m


class XbarcBackendRep(BackendRep):
    """A prepared model; each ``run`` binds the weight inputs, compiles, calibrates on the inputs and runs."""

    def __init__(self, model: onnx.ModelProto, precision: Any = "16bit", hw: Any = None) -> None:
        self.model = model
        self.precision = precision
        self.hw = hw
        self.last: LastRun | None = None

    def input_names(self) -> list[str]:
        """The model's graph inputs that are not initializers, in order."""
        inits = {t.name for t in self.model.graph.initializer}
        return [i.name for i in self.model.graph.input if i.name not in inits]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Outputs (float32, in graph output order) for ``inputs`` (a list in input order, or a dict)."""
        names = self.input_names()
        if isinstance(inputs, dict):
            values = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            values = {n: np.asarray(v) for n, v in zip(names, inputs)}
        missing = [n for n in names if n not in values]
        if missing:
            raise ModelError(f"missing input(s) {missing}; the model takes {names}")
        weights = weight_inputs(self.model, values)
        bound = bind_weights(self.model, values, weights)
        feeds = {n: values[n] for n in names if n not in weights}
        for n, v in feeds.items():
            if not np.issubdtype(v.dtype, np.floating):
                raise ModelError(f"input '{n}' has type {v.dtype}; xbarc compiles floating-point activations")
            if v.ndim < 1:
                raise ModelError(f"input '{n}' is a scalar; xbarc needs a batch dimension")
        cm = compile_model(bound, self.precision, hw=self.hw, calib={n: v.astype(np.float64) for n, v in feeds.items()})
        outcome = runner.run(cm, feeds)
        self.last = LastRun(cm, feeds, outcome, bound)
        outs = []
        for o in self.model.graph.output:
            if o.name in outcome.host:
                y = np.asarray(outcome.host[o.name])
            elif o.name in outcome.device_float:
                y = np.asarray(outcome.device_float[o.name])
            else:
                raise ModelError(f"graph output '{o.name}' is neither a device nor a host output")
            dims = _dims(o)
            if dims is not None and int(np.prod(dims)) == y.size:
                y = y.reshape(dims)
            outs.append(y.astype(np.float32))
        return tuple(outs)


class XbarcBackend(Backend):
    """ONNX backend: compile for the crossbar accelerator and execute on the xbarc runtime (CPU simulation)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> XbarcBackendRep:
        """Check the model (onnx.checker) and return a rep that compiles per ``run`` (kwargs: precision, hw)."""
        if not cls.supports_device(device):
            raise ModelError(f"device '{device}' is not supported; xbarc simulates on the CPU")
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as e:
            raise ModelError(f"model fails onnx.checker: {str(e).splitlines()[0]}") from None
        return XbarcBackendRep(model, kwargs.get("precision", "16bit"), kwargs.get("hw"))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[Any, Any]] | None = None, **kwargs: Any) -> tuple[Any, ...]:
        raise ModelError("run_node is not supported: xbarc compiles whole models (use prepare/run)")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type == DeviceType.CPU
        except Exception:  # noqa: BLE001 - onnx raises AssertionError/ValueError for unknown device strings
            return False


prepare = XbarcBackend.prepare
run_model = XbarcBackend.run_model
supports_device = XbarcBackend.supports_device
