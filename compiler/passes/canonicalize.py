"""Canonicalization: remove relabelling ops, fold padding, fold constant affine ops (batch normalization, Add/Sub/
Mul/Div by constants: `affine`) into crossbar layers, fuse activations."""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from .affine import FoldAffine
from .base import Pass, absorb, rename_uses, sole_consumer

ACT_ATTRS = ("act", "alpha", "lo", "hi")


def hwc_row_order(shape: tuple[int, ...]) -> np.ndarray:
    """For a (C, H, W) tensor: perm with perm[hwc_index] = chw_index (identity for other ranks)."""
    if len(shape) != 3:
        return np.arange(int(np.prod(shape)))
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


class EliminateRelabel(Pass):
    """Remove ops that do not move data.

    1. ``identity(x)`` -> x.
    2. ``reshape(x)`` -> x when every consumer is a dense layer (activations are stored flat in HWC order; the
       dense layers' weight rows are permuted from ONNX's CHW flattening order to HWC).
    3. ``reshape(x)`` between equal shapes -> x.
    """

    name = "eliminate-relabel"

    def run(self, g: Graph) -> bool:
        for op in list(g.ops):
            src = g.values[op.inputs[0]].shape
            flat = op.kind == "reshape" and all(c.kind == "dense" for c in g.consumers(op.outputs[0]))
            same = op.kind == "reshape" and src == g.values[op.outputs[0]].shape
            if op.kind == "identity" or flat or same:
                if flat and not same:
                    for c in g.consumers(op.outputs[0]):
                        c.params["weight"] = c.params["weight"][hwc_row_order(src)]
                g.ops.remove(op)
                rename_uses(g, op.outputs[0], op.inputs[0])
                return True
        return False


class FoldPad(Pass):
    """Fold explicit zero padding into the convolutions that read it.

    1. ``conv(pad(x))`` where every consumer of the pad is a conv -> conv with pads increased, reading x.
    """

    name = "fold-pad"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            users = g.consumers(op.outputs[0]) if op.kind == "pad" else []
            if users and all(u.kind == "conv" for u in users) and op.outputs[0] not in g.outputs:
                for u in users:
                    u.attrs["pads"] = tuple(a + b for a, b in zip(u.attrs["pads"], op.attrs["pads"]))
                g.ops.remove(op)
                rename_uses(g, op.outputs[0], op.inputs[0])
                return True
        return False


class FuseActivation(Pass):
    """Fold an activation into the op before it.

    1. ``act(y)`` where y is produced by dense, conv, pool, gap or eltwise with no activation yet, and read
       only by the activation -> that op with the activation.
    2. A remaining standalone ``act`` becomes a one-input ``eltwise`` (it runs on the vector ALU).
    """

    name = "fuse-activation"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            if op.kind in ("dense", "conv", "pool", "gap", "eltwise") and op.attrs.get("act", "none") == "none":
                act = sole_consumer(g, op, "act")
                if act is not None:
                    op.attrs.update({k: act.attrs[k] for k in ACT_ATTRS if k in act.attrs})
                    absorb(g, op, act)
                    return True
        for op in g.ops:
            if op.kind == "act":
                op.kind = "eltwise"
                return True
        return False


CANONICALIZE = (EliminateRelabel(), FoldPad(), FoldAffine(), FuseActivation())
