"""Folding constant affine ops (``affine``: BatchNormalization, Add/Sub/Mul/Div by a constant) into crossbar layers.

"Exact" here means exact in real arithmetic: the folded graph computes the same function of every input, so in
float it differs from the unfolded one only by the rounding of the reassociated products and sums (a few ulps of
float64, far below any fixed-point step the layer is quantized to). Division by c becomes multiplication by 1/c,
which is the same kind of rounding difference. Folds that would change the function for some input are not done:

- **Output side** (``affine(layer(x))``, the layer's output read only by the affine, no activation applied yet):
  exact when the scale and shift are constant per output channel (a dense layer's outputs are its channels; a
  conv's must not vary over pixels): weight columns scaled, bias = bias * scale + shift.
- **Input side** (``layer(affine(x))`` for every reader of the affine): a dense layer sees each input element on
  its own row, so any scale and shift fold (rows scaled, bias += shift . W). A conv sees each input channel on
  kernel-window rows, so the scale and shift must be constant per input channel; the scale folds with padding too
  (the zero padding stays zero when scaled), the shift only without padding (a padded border would receive the
  offset ``shift`` after the fold but 0 before it).
- **Affine after affine** (the first read only by the second): one affine, scale s1 * s2, shift t1 * s2 + t2; so a
  BatchNormalization followed by exporters' Mul/Add scale layers folds as one.

An affine op with a fused activation (``act``, e.g. HardSigmoid's clip) folds only on the output side (the layer
takes the activation) or as the second of two affines. An affine op left after canonicalization has no neighbour
to fold into and runs on the vector unit (docs/semantics.md, rule AFFINE): folding, where exact, is cheaper.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op, broadcast_param
from ..quant.windows import to_hwc
from .base import Pass, absorb, rename_uses, sole_consumer


def per_channel(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``p`` (per-sample broadcast form) as one value per channel of a value of ``shape`` -- (n,) for a flat
    value, (C,) for (C, H, W) -- or None when it varies over a (C, H, W) value's pixels."""
    full = broadcast_param(p, shape)
    if len(shape) != 3:
        return full.reshape(-1).copy()
    flat = full.reshape(shape[0], -1)
    return flat[:, 0].copy() if np.all(flat == flat[:, :1]) else None


def _rows(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``p`` expanded over a value of ``shape`` in the order a dense layer's weight rows read it (HWC)."""
    return to_hwc(broadcast_param(p, shape)[None], shape)[0].reshape(-1)


def output_side_blocker(g: Graph, aff: Op) -> str | None:
    """Why ``aff`` cannot fold into the layer producing its input (None: it can)."""
    prod = g.producer(aff.inputs[0])
    if prod is None:
        return f"it reads the graph input '{aff.inputs[0]}'"
    if not prod.is_crossbar:
        return f"its input comes from {prod.kind} '{prod.name}', not a Conv/Gemm"
    if prod.attrs.get("act", "none") != "none":
        return f"layer '{prod.name}' before it already applies {prod.attrs['act']}"
    if len(g.consumers(prod.outputs[0])) > 1 or prod.outputs[0] in g.outputs:
        return f"the output of layer '{prod.name}' is also read elsewhere"
    shape = g.values[aff.inputs[0]].shape
    if per_channel(aff.params["scale"], shape) is None or per_channel(aff.params["shift"], shape) is None:
        return f"its scale or shift varies over the pixels of each channel of '{prod.name}'"
    return None


def input_side_blocker(g: Graph, aff: Op) -> str | None:
    """Why ``aff`` cannot fold into the layers reading its output (None: it can)."""
    users = g.consumers(aff.outputs[0])
    if aff.outputs[0] in g.outputs:
        return "its output is a graph output"
    if not users:
        return "nothing reads its output"
    shape = g.values[aff.outputs[0]].shape
    for u in users:
        if not u.is_crossbar:
            return f"its output is read by {u.kind} '{u.name}', not a Conv/Gemm"
        if u.kind != "conv":
            continue
        scale, shift = per_channel(aff.params["scale"], shape), per_channel(aff.params["shift"], shape)
        if scale is None or shift is None:
            return f"its scale or shift varies over the pixels of each input channel of conv '{u.name}'"
        if any(u.attrs["pads"]) and np.any(shift != 0):
            return f"its offset would reach the zero padding of conv '{u.name}' (padding stays 0, the offset does not)"
    return None


class FoldAffine(Pass):
    """Fold constant affine ops into crossbar layers (module docstring: when each fold is exact).

    1. ``affine(affine(x))`` -> one affine.
    2. ``affine(layer(x))`` -> layer with scaled weight columns and bias.
    3. ``layer(affine(x))`` for every reader -> layers with scaled weight rows and bias += shift . W.
    """

    name = "fold-affine"

    def run(self, g: Graph) -> bool:
        for op in g.ops:
            if op.kind != "affine":
                continue
            plain = op.attrs.get("act", "none") == "none"
            nxt = sole_consumer(g, op, "affine")
            if nxt is not None and plain:
                nxt_scale = nxt.params["scale"]
                op.params = {"scale": op.params["scale"] * nxt_scale,
                             "shift": op.params["shift"] * nxt_scale + nxt.params["shift"]}
                op.attrs["nodes"] = tuple(op.attrs.get("nodes", ())) + tuple(nxt.attrs.get("nodes", ()))
                op.attrs.update({k: v for k, v in nxt.attrs.items() if k != "nodes"})
                absorb(g, op, nxt)
                return True
            if output_side_blocker(g, op) is None:
                self._into_producer(g, op)
                return True
            if plain and input_side_blocker(g, op) is None:
                self._into_consumers(g, op)
                return True
        return False

    @staticmethod
    def _into_producer(g: Graph, aff: Op) -> None:
        layer = g.producer(aff.inputs[0])
        assert layer is not None
        shape = g.values[aff.inputs[0]].shape
        scale, shift = per_channel(aff.params["scale"], shape), per_channel(aff.params["shift"], shape)
        layer.params["weight"] = layer.params["weight"] * scale[None, :]
        layer.params["bias"] = layer.params.get("bias", np.zeros_like(scale)) * scale + shift
        layer.attrs.update({k: v for k, v in aff.attrs.items() if k != "nodes"})
        absorb(g, layer, aff)

    @staticmethod
    def _into_consumers(g: Graph, aff: Op) -> None:
        shape = g.values[aff.outputs[0]].shape
        for u in g.consumers(aff.outputs[0]):
            w = u.params["weight"]
            if u.kind == "conv":
                windows = w.shape[0] // shape[0]
                scale = np.tile(per_channel(aff.params["scale"], shape), windows)  # rows: (kh, kw, cin)
                shift = np.tile(per_channel(aff.params["shift"], shape), windows)
            else:
                scale, shift = _rows(aff.params["scale"], shape), _rows(aff.params["shift"], shape)
            u.params["bias"] = u.params.get("bias", np.zeros(w.shape[1])) + shift @ w
            u.params["weight"] = w * scale[:, None]
        g.ops.remove(aff)
        del g.values[aff.outputs[0]]
        rename_uses(g, aff.outputs[0], aff.inputs[0])


def reject_unfolded(g: Graph) -> None:
    """Kept for callers of the former rejection: an affine op canonicalization could not fold now runs on the
    vector unit (rule AFFINE), so nothing is rejected here; `unfolded_reasons` says why each did not fold."""


def unfolded_reasons(g: Graph) -> dict[str, str]:
    """Why each affine op left in ``g`` could fold neither into the layer before it nor into those after it."""
    return {op.name: f"not into the layer before it ({output_side_blocker(g, op)}) nor into the layers after it "
                     f"({input_side_blocker(g, op)})" for op in g.ops if op.kind == "affine"}
