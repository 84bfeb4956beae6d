"""``Machine.run(..., workers=N)`` / ``xbarc run --workers N``: the batch sharded over processes gives the outputs
and every counter of one process, in batch order; a fault in a worker reaches the caller with its message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler import runner
from isa import RuntimeFault
from runtime import Machine
from runtime.parallel import shard_bounds
from support import I, M, compile_model, loc, program
from test_runtime_fast import assert_same

ROOT = Path(__file__).resolve().parent.parent


def test_shard_bounds_cover_the_batch_in_order() -> None:
    assert shard_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]


def test_two_workers_equal_one_process() -> None:
    from models.datasets import load_dataset

    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit")
    x, _ = load_dataset("digits32", "test")
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x[:5]})
    one = Machine(cm.program, reference=True).run(q)
    assert_same(one, Machine(cm.program).run(q, workers=2))
    assert_same(one, Machine(cm.program, reference=True).run(q, workers=3))


def test_a_worker_fault_reaches_the_caller() -> None:
    prog = program({(0, 0): [I("load", 0, M(0), 4), I("store", M(5000), 0, 4, 0), I("load", 0, M(9999999), 1)]},
                   inputs=[loc("x", 0, 0, 4, 8)], outputs=[loc("y", 0, 5000, 4, 16)])
    with pytest.raises(RuntimeFault, match="outside tile 0 memory"):
        Machine(prog).run({"x": np.zeros((4, 4), dtype=np.int64)}, workers=2)


def test_ray_shards_equal_one_process() -> None:
    """``backend="ray"`` (``xbarc run --backend ray``) on a local 2-CPU Ray instance: the outputs and every counter
    of one process (skipped without the ``ray`` extra)."""
    ray = pytest.importorskip("ray")
    from models.datasets import load_dataset

    cm = compile_model(ROOT / "models" / "mlp_digits.onnx", "8bit")
    x, _ = load_dataset("digits", "test")
    q = runner.quantize_inputs(cm, {cm.program.inputs[0].name: x[:6]})
    try:
        on_ray = Machine(cm.program).run(q, workers=2, backend="ray")
    finally:
        ray.shutdown()
    assert_same(Machine(cm.program).run(q), on_ray)


def test_ray_missing_is_a_clear_error(monkeypatch) -> None:
    import sys

    from isa import XbarcError

    monkeypatch.setitem(sys.modules, "ray", None)
    cm = compile_model(ROOT / "models" / "mlp_digits.onnx", "8bit")
    q = {cm.program.inputs[0].name: np.zeros((2, cm.program.inputs[0].length), dtype=np.int64)}
    with pytest.raises(XbarcError, match=r"pip install 'xbarc\[ray\]'"):
        Machine(cm.program).run(q, workers=2, backend="ray")
