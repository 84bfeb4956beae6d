"""No runtime inside the search (issue 20, part 6): the precision-independent costs are counted from the program
statically (`compiler.search.static_costs`), checked against the runtime's counters, and the search environment
builds and scores without running the runtime at all."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import runner
from compiler.runner import run
from compiler.search import EnvConfig, SearchEnv
from compiler.search.cost import MVMU_COMPONENTS
from compiler.search.static_costs import StaticFlowError, execution_counts, program_profile
from runtime import Machine
from support import DATA, HW, I, M, compile_model, loc, program

D = HW.data_base


def _by_mnemonic(prog) -> dict[str, int]:
    out: dict[str, int] = {}
    for core in prog.cores:
        for i, n in zip(core.instrs, execution_counts(core)):
            if n:
                out[i.spec.mnemonic] = out.get(i.spec.mnemonic, 0) + n
    return out


def test_loop_counts_equal_the_runtime() -> None:
    """A nest of 3 x 5 iterations (the inner loop in closed form, the outer walked), against the runtime."""
    code = [I("set", 0, 0), I("set", 1, 3), I("set", 3, 5),
            I("set", 2, 0),  # 3: outer body
            I("relu", D, D, 1),  # 4: inner body
            I("iaddi", 2, 2, 1), I("blt", 2, 3, 4),
            I("iaddi", 0, 0, 1), I("blt", 0, 1, 3), I("halt")]
    prog = program({(0, 0): code})
    counts = execution_counts(prog.cores[0])
    assert counts == [1, 1, 1, 3, 15, 15, 15, 3, 3, 1]
    stats = Machine(prog).run({}).stats
    assert {k: int(v["count"]) for k, v in stats.per_instruction.items()} == _by_mnemonic(prog)


def test_a_branch_on_data_is_not_static() -> None:
    prog = program({(0, 0): [I("load", 5, M(0), 1), I("blt", 5, 1, 0), I("halt")]},
                   inputs=[loc("a", 0, 0, 1, count=1)])
    with pytest.raises(StaticFlowError, match="branch on a data register"):
        execution_counts(prog.cores[0], "core 0.0")


@pytest.mark.parametrize("model,precision,replicate", [("models/lenet5_digits.onnx", "4bit", 8),
                                                       ("models/resnet_digits.onnx", "8bit", 1),
                                                       ("models/mlp_digits.onnx", "16bit", 1)])
def test_profile_equals_the_runtime_counters(model: str, precision: str, replicate: int) -> None:
    """Instruction counts, the energy of every component no MVM charges and the busy cycles of every node
    without MVMs (vector ops, transfer stages) equal the runtime's on a real program."""
    cm = compile_model(model, precision, data=DATA, replicate=replicate)
    x = np.zeros((2,) + tuple(cm.program.inputs[0].shape))
    st = run(cm, {cm.program.inputs[0].name: x}).stats
    prof = program_profile(cm.program)
    assert _by_mnemonic(cm.program) == {k: int(v["count"]) for k, v in st.per_instruction.items()}
    for k, v in st.per_component.items():
        if k not in MVMU_COMPONENTS and k != "leakage":
            assert prof.energy.get(k, 0.0) == pytest.approx(v, rel=1e-12, abs=1e-9), k
    with_mvm = {n for n, _ in prof.mvms}
    for node in prof.nodes():
        if node not in with_mvm:
            assert sum(prof.node_busy(node).values()) == st.per_layer[node]["busy_cycles"], node


def test_the_search_runs_no_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment builds, scores the baseline and a candidate with the runtime's entry points disabled."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the runtime ran inside the search")

    monkeypatch.setattr(runner, "run", refuse)
    monkeypatch.setattr(Machine, "run", refuse)
    env = SearchEnv(EnvConfig("models/lenet5_digits.onnx", "digits32", search_split="val", search_images=8,
                              select_split="calib", select_images=8, replicas=(1, 4), data=DATA))
    rng = np.random.default_rng(1)
    acts = tuple(tuple(int(rng.integers(k)) for k in env.space.sizes) for _ in env.space.layers)
    assert env.baseline.error is None and env.baseline.cycles > 0
    assert env.evaluate(acts).energy_pj > 0
