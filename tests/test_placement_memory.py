"""Placement that bounds each tile's memory (`compiler.mapping.fit`): a chain whose ops, packed onto one tile,
hold more than the tile's memory is spread over tiles of their own until every tile fits, runs bit-exact against
the functional model and gives the integers of the same model compiled on one large tile; the result is
deterministic, and what still overflows is named with the tile's ops and holdings."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from compiler.codegen.memory import breakdown, plan_memory
from compiler.mapping import place_layers
from compiler.mapping.fit import tile_ops
from compiler.mapping.rounds import partition
from compiler.quant.blockcache import quantized
from compiler.runner import bit_exact, run
from isa.encoding import encode_program
from isa.errors import ModelError
from isa.hardware import DEFAULT
from support import compile_model, parsed_model
from test_streaming import conv_chain, strided_chain

CHAINS = {"strided": strided_chain, "conv": conv_chain}


def one_op_per_tile(model: Any, x: np.ndarray) -> int:
    """The words the busiest tile needs with every op on a tile of its own (one core per tile) and the tightest
    line buffers (a tile of 64 words): what a tile must hold for any op."""
    hw = DEFAULT.with_changes(name="one-core", tiles=8, cores_per_tile=1, tile_mem_words=64)
    cm = compile_model(model, "16bit", hw=hw.with_changes(tile_mem_words=1 << 20), calib={"x": x})
    return max(plan_memory(cm.graph, cm.precision, cm.mapping, hw, cm.formats).top.values())


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_ops_that_overflow_one_tile_together_are_spread_and_run_bit_exact(chain: str) -> None:
    model, x = CHAINS[chain]()
    words = one_op_per_tile(model, x)
    hw = DEFAULT.with_changes(name="small", tiles=8, tile_mem_words=words)
    big = compile_model(model, "16bit", hw=hw.with_changes(tile_mem_words=1 << 20), calib={"x": x})
    weights = {op.name: quantized(op, big.precision[op.name]).weight for op in big.graph.crossbar_ops()}
    packed = place_layers(big.graph, big.precision, hw, weights, "spatial")
    assert packed.tiles == 1  # packed by crossbars alone, every op is on tile 0, which cannot hold them
    assert plan_memory(big.graph, big.precision, packed, hw, big.formats).first_overflow is not None
    cm = compile_model(model, "16bit", hw=hw, calib={"x": x})
    assert cm.mapping.tiles > 1
    mem = plan_memory(cm.graph, cm.precision, cm.mapping, hw, cm.formats)
    assert mem.first_overflow is None and max(mem.top.values()) <= words
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(big, {"x": x}).device_int["y"], out.device_int["y"])
    again = compile_model(model, "16bit", hw=hw, calib={"x": x})
    assert encode_program(again.program) == encode_program(cm.program)


def test_a_program_that_fits_packed_is_placed_packed() -> None:
    model, x = strided_chain()
    hw = DEFAULT.with_changes(name="small", tiles=8, tile_mem_words=1536)
    cm = compile_model(model, "16bit", hw=hw, calib={"x": x})
    weights = {op.name: quantized(op, cm.precision[op.name]).weight for op in cm.graph.crossbar_ops()}
    packed = place_layers(cm.graph, cm.precision, hw, weights, "spatial")
    assert tile_ops(cm.mapping) == tile_ops(packed) == {0: [op.name for op in cm.graph.ops]}


def test_an_op_that_overflows_a_tile_alone_is_named_with_what_the_tile_holds() -> None:
    model, x = conv_chain()
    words = one_op_per_tile(model, x) - 1
    hw = DEFAULT.with_changes(name="small", tiles=8, tile_mem_words=words)
    big = compile_model(model, "16bit", hw=hw.with_changes(tile_mem_words=1 << 20), calib={"x": x},
                        fit_words=words)
    mem = plan_memory(big.graph, big.precision, big.mapping, hw, big.formats)
    tile = mem.first_overflow[0] if mem.first_overflow else -1
    items = breakdown(mem, tile)
    assert sum(n for _, n, _, _ in items) == mem.top[tile] > words
    ops = ", ".join(tile_ops(big.mapping)[tile])
    what, words, _, shape = items[0]
    with pytest.raises(ModelError, match=rf"tile {tile} memory overflow .* \(ops placed on it: {ops}\); it holds "
                                         rf"{re.escape(what)} {words:,} words \({re.escape(shape)}\)"):
        compile_model(model, "16bit", hw=hw, calib={"x": x})


def wide_dense() -> tuple[Any, np.ndarray]:
    """x (1,024) -> dense 200 (8 row blocks x 2 column blocks) relu -> dense 10."""
    rng = np.random.default_rng(0)
    text = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 1024] x) => (float[N, 10] y) <float[1024, 200] w1, float[200] b1, float[200, 10] w2> {
      h = Gemm(x, w1, b1)
      hr = Relu(h)
      y = Gemm(hr, w2)
    }"""
    model = parsed_model(text, [("w1", (1024, 200)), ("b1", (200,)), ("w2", (200, 10))], rng)
    return model, rng.random((3, 1024)).astype(np.float32)


@pytest.mark.parametrize("precision", ["16bit", {"preset": "16bit", "layers": {"h": {"acc_frac_delta": 6}}}],
                         ids=["16bit", "saturating"])
def test_a_layer_whose_partial_sums_overflow_the_owner_tile_passes_one_running_sum_on(precision: Any) -> None:
    """Two MVMUs per core, two cores per tile: each of h's column blocks spans four cores on two tiles. Its
    owner's tile holds x whole and the six partial sums of the other row blocks (2,120 words); chained, each
    core passes one running sum on, in row order, and the tile holds three sums. The adds are the same, in the
    same order (with an accumulator 2^6 too fine, where the running sums saturate, too): the integers equal
    those of the unchained program and of the functional model."""
    model, x = wide_dense()
    hw = DEFAULT.with_changes(name="small", tiles=16, cores_per_tile=2, mvmus_per_core=2)
    whole = compile_model(model, precision, hw=hw, calib={"x": x})
    assert not whole.mapping.layers["h"].chain
    needs = plan_memory(whole.graph, whole.precision, whole.mapping, hw, whole.formats).top
    words = max(needs.values()) - 1
    small = hw.with_changes(tile_mem_words=words)
    cm = compile_model(model, precision, hw=small, calib={"x": x})
    assert cm.mapping.layers["h"].chain and tile_ops(cm.mapping) == tile_ops(whole.mapping)
    mem = plan_memory(cm.graph, cm.precision, cm.mapping, small, cm.formats)
    assert max(mem.top.values()) <= words
    held = dict((what, k) for what, _, k, _ in breakdown(mem, cm.mapping.layers["h"].owner(0)[0]))
    assert "partial sums of 'h'" not in held and held["running sums of 'h'"] == 3
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(whole, {"x": x}).device_int["y"], out.device_int["y"])
    assert encode_program(compile_model(model, precision, hw=small, calib={"x": x}).program) == \
        encode_program(cm.program)


def test_rounds_are_placed_within_the_tile_memory_and_chain_their_partial_sums() -> None:
    """A chip of 4 tiles x 2 cores x 2 MVMUs holds h's 16 blocks or y's 2, not both: two rounds. On tiles one
    word smaller than h's round needs unchained, the round chains h and fits; the rounds run bit-exact and give
    the integers of the model on one chip large enough for everything."""
    model, x = wide_dense()
    hw = DEFAULT.with_changes(name="small", tiles=4, cores_per_tile=2, mvmus_per_core=2)
    grown = compile_model(model, "16bit", hw=hw.with_changes(tiles=16), calib={"x": x})
    weights = {op.name: quantized(op, grown.precision[op.name]).weight for op in grown.graph.crossbar_ops()}
    plan = partition(grown.graph, grown.precision, hw, weights, grown.formats)  # packed by crossbars alone
    assert len(plan.rounds) == 2 and not plan.rounds[0].mapping.layers["h"].chain
    first = plan.rounds[0]  # h's round
    words = max(plan_memory(first.graph, plan.prec, first.mapping, hw, plan.fmt).top.values()) - 1
    cm = compile_model(model, "16bit", hw=hw.with_changes(tile_mem_words=words), calib={"x": x}, rounds=True)
    assert len(cm.rounds) == 2 and cm.mapping.layers["h"].chain
    out = run(cm, {"x": x})
    assert bit_exact(cm, {"x": x}, out)
    assert np.array_equal(run(grown, {"x": x}).device_int["y"], out.device_int["y"])
