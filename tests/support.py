"""Helpers shared by the tests (no tests here): build `isa.Program`s from records, not text; compile the bundled
models with the bundled data sets passed in (`DATA`), as the CLI does."""

from __future__ import annotations

import numpy as np

from typing import Any

from compiler import driver
from isa import DEFAULT, NO_BASE, CoreCode, HardwareConfig, Instr, MvmuImage, Program, TensorLoc
from isa import numerics as nx
from models.datasets import load_for_shape

DATA = load_for_shape  # the bundled data sets, as `compiler.data.DatasetLoader`


def parsed_model(text: str, shapes: Any, rng: np.random.Generator) -> Any:
    """An ONNX model from ``onnx.parser`` text, its initializers ``shapes`` (name -> shape, or (name, shape)
    pairs, in order) drawn He-scaled from ``rng``: N(0, 1) / sqrt(fan-in)."""
    import onnx.numpy_helper
    import onnx.parser

    model = onnx.parser.parse_model(text)
    for name, shape in (shapes.items() if isinstance(shapes, dict) else shapes):
        model.graph.initializer.append(onnx.numpy_helper.from_array(
            (rng.normal(0, 1, shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name))
    return model


def compile_model(model: Any, *args: Any, **kwargs: Any) -> driver.CompiledModel:
    """`compiler.compile_model` with the bundled data sets as its loader (unless the test passes ``data``)."""
    kwargs.setdefault("data", DATA)
    return driver.compile_model(model, *args, **kwargs)

HW = DEFAULT
D = HW.data_base  # first general data register


def I(op: str, *args, node: str | None = None) -> Instr:  # noqa: E743 - short on purpose
    """One instruction."""
    return Instr.of(op, tuple(args), node)


def M(off: int, base: int = NO_BASE) -> tuple[int, int]:
    """A memory operand."""
    return (base, off)


def program(cores: dict[tuple[int, int], list[Instr]], hw: HardwareConfig = HW, mvmus=(), data=(), inputs=(),
            outputs=(), source=None, lines=None) -> Program:
    """A program from per-core instruction lists."""
    cc = [CoreCode(t, c, list(instrs), (lines or {}).get((t, c))) for (t, c), instrs in cores.items()]
    return Program(hw, cc, list(mvmus), list(data), list(inputs), list(outputs), source=source,
                   filename="t.s" if source else "<program>")


def loc(name: str, tile: int, addr: int, length: int, bits: int = 16, frac: int = 0, count: int = 0) -> TensorLoc:
    """A tensor location."""
    return TensorLoc(name, tile, addr, length, bits, frac, (length,), count)


def mlp_program(batch_hint: int = 0, seed: int = 0, hw: HardwareConfig = HW):
    """A 64-256-128-10 relu MLP over three cores on two tiles (layer 3 receives over the NoC).

    Returns (program, W1, W2, W3, reference function x -> y) with 8-bit weights, 8-bit inputs, 16-bit accumulators.
    """
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-127, 128, (64, 256))
    w2 = rng.integers(-127, 128, (256, 128))
    w3 = rng.integers(-127, 128, (128, 10))
    adc, sh, acc = hw.full_adc_bits, 7, 16
    i0, i1, i2, i3, i4 = (hw.mvmu_in(k) for k in range(5))
    o0, o2, o3, o4 = hw.mvmu_out(0), hw.mvmu_out(2), hw.mvmu_out(3), hw.mvmu_out(4)
    imgs = [MvmuImage(0, 0, 0, w1[:, :128], 8, "fc1"), MvmuImage(0, 0, 1, w1[:, 128:], 8, "fc1"),
            MvmuImage(0, 1, 2, w2[:128], 8, "fc2"), MvmuImage(0, 1, 3, w2[128:], 8, "fc2"),
            MvmuImage(1, 0, 4, w3, 8, "fc3")]
    core0 = [I("load", i0, M(0), 64, node="fc1"), I("load", i1, M(0), 64, node="fc1"),
             I("mvm", 0b11, 8, adc, sh, acc, 0, -1, node="fc1"), I("relu", D, o0, 256, node="fc1"),
             I("rqnt", D, D, 256, 0, 8, node="fc1"), I("store", M(1000), D, 256, 1, node="fc1"), I("halt")]
    core1 = [I("load", i2, M(1000), 128, node="fc2"), I("load", i3, M(1128), 128, node="fc2"),
             I("mvm", 0b1100, 8, adc, sh, acc, 0, -1, node="fc2"), I("add", D, o2, o3, 128, acc, node="fc2"),
             I("relu", D, D, 128, node="fc2"), I("rqnt", D, D, 128, 0, 8, node="fc2"),
             I("store", M(2000), D, 128, 1, node="fc2"), I("send", M(2000), 128, 1, 0, node="fc2"), I("halt")]
    core2 = [I("recv", M(0), 128, 0, 0, 1, node="fc3"), I("load", i4, M(0), 128, node="fc3"),
             I("mvm", 0b10000, 8, adc, sh, acc, 0, -1, node="fc3"), I("store", M(500), o4, 10, 0, node="fc3"),
             I("halt")]
    prog = program({(0, 0): core0, (0, 1): core1, (1, 0): core2}, hw, mvmus=imgs,
                   inputs=[loc("x", 0, 0, 64, 8, count=2)], outputs=[loc("y", 1, 500, 10, 16)])

    def reference(x: np.ndarray) -> np.ndarray:
        h1 = nx.requantize(np.maximum(nx.requantize(x @ w1, sh, acc), 0), 0, 8)
        p2 = nx.requantize(h1[:, :128] @ w2[:128], sh, acc) + nx.requantize(h1[:, 128:] @ w2[128:], sh, acc)
        h2 = nx.requantize(np.maximum(nx.saturate(p2, acc), 0), 0, 8)
        return nx.requantize(h2 @ w3, sh, acc)

    return prog, reference
