"""Canonicalization: remove relabelling ops, fold padding and batch normalization, fuse bias and activation."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from .base import Pass

ACT_ATTRS = ("act", "alpha", "lo", "hi")


def _rename_uses(g: Graph, old: str, new: str) -> None:
    for op in g.ops:
        op.inputs = [new if i == old else i for i in op.inputs]
    if old in g.outputs:
        g.outputs = [new if o == old else o for o in g.outputs]
        g.output_names[new] = g.output_names.pop(old, old)


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
                _rename_uses(g, op.outputs[0], op.inputs[0])
                return True
        return False


def _sole_consumer(g: Graph, op: Op, kind: str) -> Op | None:
    users = g.consumers(op.outputs[0])
    if len(users) == 1 and users[0].kind == kind and op.outputs[0] not in g.outputs:
        return users[0]
    return None


def _absorb(g: Graph, producer: Op, consumer: Op) -> None:
    """Remove ``consumer`` and let ``producer`` write its output."""
    g.ops.remove(consumer)
    old = producer.outputs[0]
    producer.outputs = [consumer.outputs[0]]
    del g.values[old]


class FoldBatchNorm(Pass):
    """Fold inference batch normalization into the crossbar layer before it.

    1. ``batchnorm(conv(x))`` / ``batchnorm(dense(x))`` with no activation yet -> weights scaled per output
       channel, bias = bias * scale + shift.
    """

    name = "fold-batchnorm"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            bn = _sole_consumer(g, op, "batchnorm") if op.is_crossbar else None
            if bn is not None and op.attrs.get("act", "none") == "none":
                scale, shift = bn.params["scale"], bn.params["shift"]
                op.params["weight"] = op.params["weight"] * scale[None, :]
                op.params["bias"] = op.params.get("bias", np.zeros_like(scale)) * scale + shift
                _absorb(g, op, bn)
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
                _rename_uses(g, op.outputs[0], op.inputs[0])
                return True
        return False


class FuseBias(Pass):
    """Fold a constant add into the crossbar layer before it.

    1. ``bias_add(dense(x))`` -> dense with bias += b.
    2. ``bias_add(conv(x))`` with b constant over each channel's pixels -> conv with bias += b[channel].
    """

    name = "fuse-bias"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            add = _sole_consumer(g, op, "bias_add") if op.is_crossbar else None
            if add is None or op.attrs.get("act", "none") != "none":
                continue
            b = add.params["bias"]
            if b.ndim == 3:
                per_channel = b.reshape(b.shape[0], -1)
                if not np.all(per_channel == per_channel[:, :1]):
                    continue
                b = per_channel[:, 0]
            op.params["bias"] = b.reshape(-1) + op.params.get("bias", 0.0)
            _absorb(g, op, add)
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
                act = _sole_consumer(g, op, "act")
                if act is not None:
                    op.attrs.update({k: act.attrs[k] for k in ACT_ATTRS if k in act.attrs})
                    _absorb(g, op, act)
                    return True
        for op in g.ops:
            if op.kind == "act":
                op.kind = "eltwise"
                return True
        return False


CANONICALIZE = (EliminateRelabel(), FoldPad(), FoldBatchNorm(), FuseBias(), FuseActivation())
