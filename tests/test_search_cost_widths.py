"""Per-channel widths inside ``varied`` (issue 20, part 4): the ``w_narrow`` knob narrows the least important
half of a layer's channels (by the L2 norm of their weights); the program runs it bit-exactly, the cost model
counts it per channel group and agrees with the runtime's counters."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.quant import LayerPrecision
from compiler.runner import evaluate, run
from compiler.search import EnvConfig, SearchEnv, analytic_cost
from compiler.search.cost import LayerFeatures
from compiler.search.space import KNOBS, narrow_channels
from support import DATA


def test_narrowed_channels_are_the_smallest_norms() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(20, 9)) * rng.uniform(0.1, 2.0, size=9)
    norms = [float(np.sqrt(sum(w[r, c] ** 2 for r in range(20)))) for c in range(9)]
    want = sorted(sorted(range(9), key=lambda c: norms[c])[:4])  # half of 9 channels, rounded down
    assert list(narrow_channels(w)) == want


def test_analytic_cost_counts_channel_groups() -> None:
    feats = [LayerFeatures("a", "dense", 100, 4, 1, 1)]
    chans = tuple({"scheme": "uniform", "bits": b} for b in (8, 6, 8, 6))
    varied = LayerPrecision(16, 12, 8, 6, 32, 8, 4, w_scheme="varied", w_channels=chans)
    # f_in = f_w = 1; the codes use 7 bits on average, not the 16-bit grid
    assert analytic_cost(feats, {"a": varied}, alpha=2.0) == pytest.approx(2.0 ** 4 * (8 / 16 + 7 / 16))


@pytest.fixture(scope="module")
def env() -> SearchEnv:
    return SearchEnv(EnvConfig("models/lenet5_digits.onnx", "digits32", search_split="val", search_images=8,
                               select_split="calib", select_images=8, narrow=(0, 1, 2), data=DATA))


def _varied(env: SearchEnv, bits: int, narrow: int) -> tuple[tuple[int, ...], ...]:
    sp = env.space
    ix = {k: i for i, k in enumerate(sp.knobs)}
    acts = [list(a) for a in sp.baseline()]
    for a in acts:
        a[ix["w_bits"]], a[ix["in_bits"]] = sp.values["w_bits"].index(bits), sp.values["in_bits"].index(8)
        a[ix["w_scheme"]], a[ix["w_narrow"]] = sp.values["w_scheme"].index("varied"), narrow
    return sp.canonical(acts)


def test_narrow_knob_decodes_per_channel(env: SearchEnv) -> None:
    sp = env.space
    assert sp.knobs == KNOBS + ("w_narrow",)
    cfg = sp.decode(_varied(env, 5, 2))
    chans = cfg["layers"]["conv2"]["w_channels"]
    low = set(sp.narrowed[1])
    assert len(chans) == 16 and len(low) == 8
    assert [c["bits"] for c in chans] == [3 if i in low else 5 for i in range(16)]
    assert sp.encode(cfg) == _varied(env, 5, 2)
    # narrowing keeps 2 bits: at 3-bit codes, 2 bits less is 1 bit less
    assert _varied(env, 3, 2) == _varied(env, 3, 1)
    # not varied: no narrowing
    acts = [list(a) for a in sp.baseline()]
    acts[0][sp.knobs.index("w_narrow")] = 2
    assert sp.canonical(acts) == sp.canonical(sp.baseline())


def test_mixed_widths_bit_exact_and_costed(env: SearchEnv) -> None:
    """Runtime == functional model (integers) on a mixed-width config; the estimate against the runtime's
    counters on the same images: measured 0.000 % energy and cycles (spatial mapping); asserted 2 % / 3 % as
    the other agreement tests. Narrower channels leave hollow bit lines that the spatial mapping drops, so
    the runtime's energy falls (measured, not estimated)."""
    x, y = DATA("digits32", "test", (1, 32, 32))
    measured = {}
    for narrow in (0, 1):
        acts = _varied(env, 6, narrow)
        rec = env.evaluate(acts)
        cm = env.compile(env.config(acts))
        assert evaluate(cm, x[:16].reshape(16, 1, 32, 32), y[:16])["bit_exact"]
        st = run(cm, {cm.program.inputs[0].name: env.x}).stats
        assert abs(rec.energy_pj / st.energy_pj - 1) < 0.02 and abs(rec.cycles / st.cycles - 1) < 0.03
        measured[narrow] = st.energy_pj
    assert measured[1] < measured[0]
