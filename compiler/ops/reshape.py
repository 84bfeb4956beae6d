"""Relabels: ``reshape`` (1 input, 1 output with the same number of elements: a row-major relabelling of the ONNX
layout) and ``identity``. Canonicalization removes them (`passes.canonicalize.EliminateRelabel`); a reshape that
would move data is rejected by codegen with the node's name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import IntContext, OpKind, Shape, register, same_shape, size_of

if TYPE_CHECKING:
    from ..ir import Graph, Op


@register
class Reshape(OpKind):
    """A row-major relabelling (ONNX Reshape, Flatten, Squeeze, Unsqueeze, a Transpose that keeps the order)."""

    name = "reshape"
    device = "none"

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        return None if size_of(ins[0]) == size_of(out) else f"reshape changes the element count {ins[0]} -> {out}"

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        from ..quant.windows import from_hwc, to_hwc

        return to_hwc(from_hwc(xs[0], g.values[op.inputs[0]].shape), g.values[op.outputs[0]].shape)

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        return self.float_eval(g, op, xs), q.fmt[op.inputs[0]][1]

    def device_error(self, g: Graph, op: Op) -> str:
        return (f"node '{op.name}': the reshape {g.values[op.inputs[0]].shape} -> {g.values[op.outputs[0]].shape} "
                f"(Reshape, Flatten, Squeeze, Unsqueeze or Transpose) moves data: tensors of (C, H, W) are stored "
                f"channel-minor, so only relabels that keep every element in place (or a flatten read only by "
                f"Gemm/MatMul) are supported")


@register
class Identity(OpKind):
    """A no-op (removed by canonicalization)."""

    name = "identity"
    device = "none"

    def check(self, op: Op, ins: list[Shape], out: Shape) -> str | None:
        return same_shape(ins, out)

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        return xs[0]
