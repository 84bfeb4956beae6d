"""What the crossbar kinds (`dense`, `conv`) share: a layer multiplies rows of its input by its ``weight``
(K, N) on crossbars; `CrossbarKind.rows` says which rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .base import IntContext, OpKind

if TYPE_CHECKING:
    from ..codegen.context import Context
    from ..ir import Graph, Op


class CrossbarKind(OpKind):
    """A crossbar layer: float semantics ``rows(x) @ weight + bias``; integer semantics rule MVM per row block
    of ``hw.xbar_rows`` (`quant.functional.crossbar_layer`); code `codegen.crossbar.emit_crossbar`."""

    crossbar: ClassVar[bool] = True
    device: ClassVar[str] = "crossbar"
    fuses_act: ClassVar[bool] = True
    windowed: ClassVar[bool] = False  # the rows are windows of a (C, H, W) input (``windows``)

    def windows(self, g: Graph, op: Op) -> tuple[int, int] | None:
        """The output size (OH, OW) the rows sweep, for a windowed layer; None when the input is one row."""
        return None

    def pixels(self, g: Graph, op: Op) -> int:
        """Rows of the layer's input per sample."""
        ohw = self.windows(g, op)
        return 1 if ohw is None else ohw[0] * ohw[1]

    def rows(self, g: Graph, op: Op, x: np.ndarray) -> np.ndarray:
        """The (B * pixels, K) matrix the layer multiplies, from its internal-layout input ``x``."""
        return x.reshape(len(x), -1)

    def geometry(self, g: Graph, op: Op) -> dict[str, tuple[int, ...]]:
        """Window geometry as codegen sweeps it (a one-row layer is one window covering its whole input)."""
        from ..codegen.storage import hwc

        h, w, _ = hwc(g.values[op.inputs[0]].shape)
        return {"kernel": (h, w), "strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}

    def float_eval(self, g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        w = op.params["weight"].astype(x.dtype, copy=False)
        y = self.rows(g, op, x) @ w
        if "bias" in op.params:
            y += op.params["bias"].astype(x.dtype, copy=False)
        ohw = self.windows(g, op)
        return np.asarray(y if ohw is None else y.reshape(len(x), ohw[0], ohw[1], -1))

    def int_eval(self, g: Graph, op: Op, xs: list[np.ndarray], q: IntContext) -> tuple[np.ndarray, int]:
        from ..quant import functional as fq

        x, p = xs[0], q.prec[op.name]
        fq._PROBE_LAYER[0] = op.name
        ohw = self.windows(g, op)
        conv = None if ohw is None else (op, ohw)
        from ..quant.blockcache import layer_blocks

        layer, blocks = layer_blocks(op, p, q.hw)  # quantized and prepared once per (op, precision)
        y = fq.crossbar_layer(x if conv else x.reshape(len(x), -1), layer, p, q.hw, conv, blocks)
        return y.reshape((len(x),) + ((-1,) if ohw is None else ohw + (-1,))), p.acc_frac

    def emit(self, ctx: Context, op: Op) -> None:
        from ..codegen.crossbar import emit_crossbar

        emit_crossbar(ctx, op, ctx.quantized[op.name])

    def check_params(self, op: Op, n_in: int, n_out: int) -> str | None:
        """The weight is (n_in, n_out) and the bias, if any, (n_out,)."""
        w, b = op.params.get("weight"), op.params.get("bias")
        if w is None or w.ndim != 2 or w.shape != (n_in, n_out):
            return f"weight {None if w is None else w.shape} != ({n_in}, {n_out})"
        if b is not None and b.shape != (n_out,):
            return f"bias shape {b.shape} != ({n_out},)"
        return None



def crossbar_kind(op: Op) -> CrossbarKind:
    """The kind of crossbar layer ``op``; ModelError naming it for any other op."""
    from isa.errors import ModelError

    from .base import kind_of

    k = kind_of(op)
    if not isinstance(k, CrossbarKind):
        raise ModelError(f"op '{op.name}' ({op.kind}) is not a crossbar layer")
    return k
