"""The functional model's prepared-block cache (`compiler.quant.blockcache`): a second evaluation reuses the
prepared blocks and gives the same integers; another precision, replaced weights or a bit-line probe miss; the
byte budget evicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler import runner
from compiler.quant import blockcache, functional
from models.datasets import load_dataset
from support import compile_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def lenet():
    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit")
    x, _ = load_dataset("digits32", "test")
    return cm, {cm.program.inputs[0].name: x[:6]}


def _counting(monkeypatch) -> list[int]:
    calls = [0]
    real = blockcache.prepare_block

    def count(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(blockcache, "prepare_block", count)
    return calls


def test_second_call_hits_and_agrees_with_the_runtime(lenet, monkeypatch) -> None:
    cm, feeds = lenet
    blockcache.clear()
    calls = _counting(monkeypatch)
    first = runner.functional_outputs(cm, feeds)
    prepared = calls[0]
    second = runner.functional_outputs(cm, feeds)
    assert prepared > 0 and calls[0] == prepared  # nothing prepared again
    out = runner.run(cm, feeds)
    for k in first:
        assert np.array_equal(first[k], second[k])
        assert np.array_equal(out.device_int[k], first[k].reshape(out.device_int[k].shape))


def test_replaced_weights_probe_and_budget_miss(lenet, monkeypatch) -> None:
    cm, feeds = lenet
    blockcache.clear()
    calls = _counting(monkeypatch)
    runner.functional_outputs(cm, feeds)
    n = calls[0]
    op = cm.graph.crossbar_ops()[0]
    op.params["weight"] = op.params["weight"].copy()  # same values, another array: recomputed, same result
    runner.functional_outputs(cm, feeds)
    assert calls[0] == n + 1
    functional.set_bitline_probe(lambda layer, v: None)
    try:
        runner.functional_outputs(cm, feeds)
        assert calls[0] > n + 1
    finally:
        functional.set_bitline_probe(None)
    monkeypatch.setenv("XBARC_BLOCK_CACHE_MB", "0")
    blockcache.clear()
    runner.functional_outputs(cm, feeds)
    assert blockcache.cached_bytes() == 0
