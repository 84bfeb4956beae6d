"""The op-kind registry (`compiler.ops`): every IR kind is defined once and every stage dispatches through it."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir import CROSSBAR_KINDS, Graph, Op, Value, verify
from compiler.ops import CrossbarKind, OpKind, kind_of, kinds, register
from compiler.ops.base import KIND_MODULES
from isa.errors import ModelError


def test_every_kind_registered_once_with_its_contract() -> None:
    names = [k.name for k in kinds()]
    assert len(names) == len(set(names))
    assert set(names) >= {"dense", "conv", "pool", "gap", "eltwise", "act", "affine", "concat", "pad", "reshape",
                          "identity"}
    assert {k.name for k in kinds() if k.crossbar} == set(CROSSBAR_KINDS)
    for k in kinds():
        assert k.device in ("crossbar", "vector", "view", "none"), k
        assert isinstance(k, CrossbarKind) == k.crossbar == (k.device == "crossbar"), k
        assert type(k).__doc__, k
    for mod in KIND_MODULES:
        assert __import__(f"compiler.ops.{mod}", fromlist=["_"]).__doc__


def test_duplicate_or_unnamed_kind_is_refused() -> None:
    class Again(OpKind):
        name = "pool"

    with pytest.raises(ValueError, match="already registered"):
        register(Again)
    with pytest.raises(ValueError, match="empty"):
        register(OpKind)


def _graph(kind: str, attrs: dict | None = None) -> Graph:
    vals = {"x": Value("x", (4,)), "y": Value("y", (4,))}
    return Graph("g", [vals["x"]], [Op(kind, "n1", ["x"], ["y"], attrs or {})], ["y"], vals)


def test_unknown_kind_names_the_op() -> None:
    with pytest.raises(ModelError, match=r"op 'n1' \(warp\).*unknown kind 'warp'; known: act, affine, concat"):
        verify(_graph("warp"))
    with pytest.raises(ModelError, match="unknown kind"):
        kind_of("warp")


def test_verifier_runs_the_kinds_check() -> None:
    with pytest.raises(ModelError, match="standalone activation without a function"):
        verify(_graph("act"))
    with pytest.raises(ModelError, match=r"op 'div' not in"):
        verify(_graph("eltwise", {"op": "div"}))
    verify(_graph("act", {"act": "relu"}))


def test_kinds_without_device_code_say_why() -> None:
    g = _graph("pad", {"pads": (0, 0, 0, 0)})
    for k in kinds():
        if k.device == "none":
            assert f"'{g.ops[0].name}'" in k.device_error(g, g.ops[0])
    x = np.arange(4.0)[None]
    assert np.array_equal(kind_of("identity").float_eval(g, g.ops[0], [x]), x)
