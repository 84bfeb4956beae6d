"""Loading MVMU images in batches (`runtime.prepare.prepare_kernels`): the same kernels as
`MvmuKernel.from_image` one image at a time, field for field, on compiled programs of every weight encoding and
mapping mode, and the same errors for bad images."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from isa import MvmuImage
from isa.errors import XbarcError
from runtime.prepare import prepare_kernels
from runtime.state import MvmuKernel
from support import compile_model

ROOT = Path(__file__).resolve().parent.parent


def assert_same_kernels(a: list[MvmuKernel], b: list[MvmuKernel]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for f in fields(MvmuKernel):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, np.ndarray):
                assert u.dtype == v.dtype and np.array_equal(u, v), f.name
            else:
                assert u == v, f.name


@pytest.mark.parametrize("mapping", ["naive", "spatial", "temporal"])
@pytest.mark.parametrize("w_enc,bits", [("twos", 8), ("sce", 8), ("tc", 8), ("twos", 4), ("sce", 16)])
def test_batched_kernels_equal_one_at_a_time(mapping: str, w_enc: str, bits: int) -> None:
    prec = {"preset": f"{bits}bit", "default": {"w_enc": w_enc}}
    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", prec, mapping=mapping)
    imgs, hw = cm.program.mvmus, cm.program.hw
    assert_same_kernels(prepare_kernels(imgs, hw), [MvmuKernel.from_image(i, hw) for i in imgs])
    sparse = [replace(i, weights=np.where(np.arange(i.weights.size).reshape(i.weights.shape) % 3 == 0,
                                          i.weights, 0)) for i in imgs]  # hollow columns and rows, dead slices
    # (placed lines may be all zero: the layouts stay valid)
    assert_same_kernels(prepare_kernels(sparse, hw), [MvmuKernel.from_image(i, hw) for i in sparse])


def _message(fn) -> str:
    with pytest.raises(XbarcError) as e:
        fn()
    return str(e.value)


def test_a_bad_image_in_a_batch_gives_from_images_error() -> None:
    cm = compile_model(ROOT / "models" / "lenet5_digits.onnx", "8bit", mapping="spatial")
    imgs, hw = list(cm.program.mvmus), cm.program.hw
    k = len(imgs) // 2
    big = imgs[k].weights.astype(np.int64)
    big.flat[0] = 200  # outside 8-bit weights
    bad = [imgs[:k] + [replace(imgs[k], weights=big)] + imgs[k + 1:]]
    lay = imgs[k].layout.copy()
    lay[0, 0, 0] = lay[0, 0, 1]  # two bit lines on one physical cell range (or a live line lost)
    bad.append(imgs[:k] + [replace(imgs[k], layout=lay)] + imgs[k + 1:])
    for images in bad:
        want = _message(lambda: [MvmuKernel.from_image(i, hw) for i in images])
        assert _message(lambda: prepare_kernels(images, hw)) == want


def test_wide_weights_take_the_one_image_path() -> None:
    rng = np.random.default_rng(0)
    hw = compile_model(ROOT / "models" / "mlp_digits.onnx", "8bit").program.hw
    imgs = [MvmuImage(0, 0, k, rng.integers(-(2**20), 2**20, (16, 8)), 24, "x") for k in range(2)]
    assert_same_kernels(prepare_kernels(imgs, hw), [MvmuKernel.from_image(i, hw) for i in imgs])
