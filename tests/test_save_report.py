"""The mapping report saved with a compiled model: its hollow statistics from per-column value histograms
(`numerics.column_histogram`) equal those from slicing every cell, for every weight encoding and mapping mode;
`column_histogram` and `value_slices` against brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from isa import numerics as nx
from support import compile_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("mapping", ["naive", "spatial", "temporal"])
@pytest.mark.parametrize("w_enc", ["twos", "sce", "tc"])
def test_histogram_hollows_equal_sliced_hollows(mapping: str, w_enc: str, monkeypatch) -> None:
    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", {"preset": "4bit", "default": {"w_enc": w_enc}},
                       mapping=mapping)
    fast = cm.mapping_report()
    monkeypatch.setattr(nx, "MAX_TABLE_BITS", 0)  # every block sliced cell by cell
    assert cm.mapping_report() == fast
    assert any(layer["nonzero_cells"] for layer in fast["layers"])


@pytest.mark.parametrize("bits,cb,enc", [(8, 2, "twos"), (5, 1, "sce"), (6, 3, "tc"), (4, 2, "sce")])
def test_column_histogram_and_value_slices(bits: int, cb: int, enc: str) -> None:
    rng = np.random.default_rng(bits)
    q = nx.qmax(bits)
    w = rng.integers(-q, q + 1, (3, 7, 5))
    hist = nx.column_histogram(w, bits)
    for i in range(3):
        for c in range(5):
            assert np.array_equal(hist[i, c], np.bincount(w[i, :, c] + q, minlength=2 * q + 1))
    pos, neg = nx.value_slices(bits, cb, enc)
    p2, n2 = nx.weight_slices(w, bits, cb, enc)
    assert np.array_equal(pos[:, w + q], p2) and np.array_equal(neg[:, w + q], n2)
    with pytest.raises(ValueError, match="outside"):
        nx.column_histogram(np.array([[q + 1]]), bits)


def test_layouts_summarized_together_equal_one_at_a_time() -> None:
    from isa.layout import summarize, summarize_all

    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit", mapping="temporal")
    lays = [lay for lm in cm.mapping.layers.values() for lay in lm.layouts or []]
    assert len({lay.shape for lay in lays}) > 1  # blocks of several shapes, grouped
    assert summarize_all(lays) == [summarize(lay) for lay in lays]
    assert any(s.steps > 1 for s in summarize_all(lays)) or any(s.arrays for s in summarize_all(lays))


def test_summarize_many_equals_summarize_on_random_layouts() -> None:
    """`summarize_many` (marks and counts over all layouts at once) against `summarize` one layout at a time, on
    layouts with unplaced lines, several arrays and steps, and an all-unplaced one."""
    from isa.layout import UNPLACED, summarize, summarize_many

    rng = np.random.default_rng(7)
    n, s, c = 40, 3, 16
    lay = np.stack([rng.integers(0, 4, (n, s, 2, c)), rng.integers(0, 3, (n, s, 2, c)),
                    rng.integers(0, 128, (n, s, 2, c))], axis=-1)
    lay[:, :, 1, :, 1] = lay[:, :, 0, :, 1]  # a (+)/(-) pair sits in one step
    lay[rng.random((n, s, 2, c)) < 0.3] = UNPLACED
    lay[0] = UNPLACED
    got = summarize_many(lay)
    assert got == [summarize(x) for x in lay]
    assert {g.steps for g in got} >= {0, 3} and len({g.arrays for g in got}) > 1
