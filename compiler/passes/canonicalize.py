"""Canonicalization: remove relabelling ops, fold padding, fold constant affine ops (batch normalization, Add/Sub/
Mul/Div by constants: `affine`) into crossbar layers, fuse activations."""

from __future__ import annotations

import numpy as np

from isa.errors import ModelError

from ..ir import Graph, Op, Value, verify
from ..ops import kind_of
from .affine import FoldAffine
from .base import Pass, absorb, rename_uses, sole_consumer

ACT_ATTRS = ("act", "alpha", "lo", "hi")


def hwc_row_order(shape: tuple[int, ...]) -> np.ndarray:
    """For a (C, H, W) tensor: perm with perm[hwc_index] = chw_index (identity for other ranks)."""
    if len(shape) != 3:
        return np.arange(int(np.prod(shape)))
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def take_rows(w: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``w[idx]`` (a C-ordered copy), gathered 32 rows at a time when ``w`` is column-major (a Gemm's transposed
    weight): half the time of one strided gather on VGG-16's fc1 (25,088 x 4,096)."""
    if w.ndim != 2 or w.flags.c_contiguous or not w.flags.f_contiguous:
        return w[idx]
    out = np.empty((len(idx), w.shape[1]), dtype=w.dtype)
    for k in range(0, len(idx), 32):
        out[k:k + 32] = w[idx[k:k + 32]]
    return out


class EliminateRelabel(Pass):
    """Remove ops that do not move data.

    1. ``identity(x)`` -> x.
    2. ``reshape(x)`` -> x when every consumer is a dense layer (activations are stored flat in HWC order; the
       dense layers' weight rows are permuted from ONNX's CHW flattening order to HWC).
    3. ``reshape(x)`` between equal shapes -> x.
    4. ``reshape(x)`` between shapes stored alike (every element at the same place of the channel-minor
       storage, e.g. (C, 1, 1) and (C,), (1, H, W) and (H*W,), or (C, H, 1) and (C, 1, H)) -> x, when the
       graph stays valid with the consumers reading x as it is, or else with x taking the reshape's shape (its
       producer writes the same words either way). A reshape that moves data (e.g. (C, H, W) -> (C*H*W,) not
       read by dense layers) is left for `codegen` to reject with the node's name.
    """

    name = "eliminate-relabel"

    def run(self, g: Graph) -> bool:
        for op in list(g.ops):
            if op.kind == "reshape" and _stored_alike(g.values[op.inputs[0]].shape, g.values[op.outputs[0]].shape) \
                    and self._relabel(g, op):
                return True
        for op in list(g.ops):
            src = g.values[op.inputs[0]].shape
            flat = op.kind == "reshape" and all(c.kind == "dense" for c in g.consumers(op.outputs[0]))
            same = op.kind == "reshape" and src == g.values[op.outputs[0]].shape
            if op.kind == "identity" or flat or same:
                if flat and not same:
                    for c in g.consumers(op.outputs[0]):
                        c.params["weight"] = take_rows(c.params["weight"], hwc_row_order(src))
                g.ops.remove(op)
                rename_uses(g, op.outputs[0], op.inputs[0])
                return True
        return False

    @staticmethod
    def _relabel(g: Graph, op: Op) -> bool:
        """Rule 4: drop ``op`` if the graph verifies with its consumers reading its input (keeping the input's
        shape, then taking the output's); restore the graph otherwise."""
        x, y = op.inputs[0], op.outputs[0]
        xv, yshape = g.values[x], g.values[y].shape
        saved = ([list(o.inputs) for o in g.ops], list(g.outputs), dict(g.output_names), list(g.ops), xv.shape)
        for shape in (xv.shape, yshape):
            g.ops.remove(op)
            rename_uses(g, y, x)
            xv.shape = shape
            try:
                verify(g)
            except ModelError:
                g.ops[:] = saved[3]
                for o, ins in zip(g.ops, saved[0]):
                    o.inputs = list(ins)
                g.outputs, g.output_names, xv.shape = list(saved[1]), dict(saved[2]), saved[4]
                continue
            del g.values[y]
            return True
        return False


def _stored_alike(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether tensors of IR shapes ``a`` and ``b`` with the same elements (row-major) are stored identically."""
    if a == b:
        return False  # rule 3
    return bool(np.array_equal(hwc_row_order(a), hwc_row_order(b)))


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

    1. ``act(y)`` where y is produced by an op whose kind ``fuses_act`` (dense, conv, pool, gap, eltwise, affine)
       with no activation yet, and read
       only by the activation -> that op with the activation.
    2. A remaining standalone ``act`` becomes a one-input ``eltwise`` (it runs on the vector ALU).
    """

    name = "fuse-activation"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            if kind_of(op).fuses_act and op.attrs.get("act", "none") == "none":
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


class CopyThrough(Pass):
    """Give a graph output that is a graph input (every op between them was a relabel) a device op.

    1. graph output x, x a graph input -> ``eltwise(x)`` (one input, no activation: a copy on the vector unit,
       requantized to the output's format like any vector op).
    """

    name = "copy-through"

    def run(self, g: Graph) -> bool:
        inputs = {v.name for v in g.inputs}
        for k, out in enumerate(g.outputs):
            if out in inputs:
                copy = f"{out}__copy"
                g.values[copy] = Value(copy, g.values[out].shape)
                g.ops.append(Op("eltwise", copy, [out], [copy], {"act": "none"}, {}))
                g.outputs[k] = copy
                g.output_names[copy] = g.output_names.pop(out, out)
                return True
        return False


CANONICALIZE = (EliminateRelabel(), FoldPad(), FoldAffine(), FuseActivation(), CopyThrough())
