"""ONNX's own backend node tests (onnx.backend.test) run on xbarc at the 16-bit preset (docs/onnx-backend.md).

One pytest case per node test of the ops in `PREFIXES`. Each case: bind the weight inputs, compile calibrating on
the test's own data input, run on the runtime, compare with the expected outputs within a tolerance derived from
the compiled formats (`error_bound`), and check the runtime's integers bit for bit against the functional model.

- `EXCLUDED`: cases that can never work (reason per case) -> skipped.
- `NOT_YET`: cases that do not work today (reason per case) -> run; skipped while they raise, counted as passed
  (and reported, so the entry can be removed) once they pass. Wrong numbers fail even for NOT_YET cases.
- Any other case that raises (ModelError included) fails: the lists must stay honest.

Regenerate NOT_YET: ``python tests/test_onnx_backend.py --survey`` (or ``python -m tests.test_onnx_backend
--survey``) tries every case and prints a ready-to-paste dict.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler import runner  # noqa: E402
from compiler.backend import XbarcBackend  # noqa: E402
from compiler.driver import CompiledModel  # noqa: E402

#: Node-test name prefixes per op (Conv's two basic cases are named test_basic_conv_*).
PREFIXES = ("test_conv_", "test_basic_conv_", "test_gemm_", "test_matmul_", "test_maxpool_", "test_averagepool_",
            "test_globalaveragepool", "test_relu", "test_add", "test_concat", "test_flatten", "test_reshape",
            "test_batchnorm", "test_softmax", "test_globalmaxpool", "test_squeeze", "test_unsqueeze", "test_mul",
            "test_div", "test_sub", "test_hardsigmoid", "test_hardswish", "test_lrn", "test_depthtospace",
            "test_resize", "test_upsample", "test_lstm", "test_gru", "test_rnn", "test_simple_rnn")
#: The op each selected case must consist of (drops e.g. test_softmax_cross_entropy_*, a different op).
OPS = frozenset({"Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "Relu", "Add", "Concat",
                 "Flatten", "Reshape", "BatchNormalization", "Softmax", "GlobalMaxPool", "Squeeze", "Unsqueeze",
                 "Mul", "Div", "Sub", "HardSigmoid", "HardSwish", "LRN", "DepthToSpace", "Resize",
                 "Upsample", "LSTM", "GRU", "RNN"})
#: onnx.backend.test.case.node modules that generate those cases (used when the package ships no data/node).
CASE_MODULES = ("conv", "gemm", "matmul", "maxpool", "averagepool", "globalaveragepool", "relu", "add", "concat",
                "flatten", "reshape", "batch_normalization", "softmax", "globalmaxpool", "squeeze", "unsqueeze", "mul",
                "div", "sub", "hardsigmoid", "hardswish", "lrn", "depthtospace", "resize",
                "upsample", "lstm", "gru", "rnn")
PRECISION = "16bit"
#: Float32 rounding of the expected outputs (they are computed in float32 by the node tests' numpy references).
RTOL = 1e-5

_BATCH = "node tests' dim 0 is the batch; "
_INT = "integer tensors: xbarc compiles float models to fixed point; exact integer (wrapping) arithmetic is not " \
       "what the device computes"
EXCLUDED: dict[str, str] = {
    **{n: _BATCH + "X is time-major (T, N, C) as a graph input (layout=0): dim 0 is time; tests/test_recurrent.py "
              "runs these same cases batch-first against their expected outputs"
       for n in ("test_lstm_defaults", "test_lstm_with_initial_bias", "test_lstm_with_peepholes", "test_lstm_reverse",
                 "test_lstm_bidirectional", "test_gru_defaults", "test_gru_with_initial_bias", "test_gru_seq_length",
                 "test_gru_reverse", "test_gru_bidirectional", "test_simple_rnn_defaults",
                 "test_simple_rnn_with_initial_bias", "test_rnn_seq_length", "test_simple_rnn_reverse",
                 "test_simple_rnn_bidirectional")},
    "test_gemm_transposeA": _BATCH + "transA=1 contracts over the batch dimension",
    "test_gemm_all_attributes": _BATCH + "transA=1 contracts over the batch dimension",
    "test_gemm_default_matrix_bias": _BATCH + "the bias C (3, 4) differs per sample; a layer's bias is per output",
    "test_matmul_1d_1d": _BATCH + "a 1-D left operand is contracted over the batch dimension",
    "test_matmul_1d_3d": _BATCH + "a 1-D left operand is contracted over the batch dimension",
    "test_matmul_3d": _BATCH + "the right operand (2, 4, 3) differs per sample; a crossbar holds one weight matrix",
    "test_add_int8": _INT, "test_add_int16": _INT, "test_add_uint8": _INT, "test_add_uint16": _INT,
    "test_add_uint32": _INT, "test_add_uint64": _INT, "test_maxpool_2d_uint8": _INT,
    **{f"test_{op}_{t}": _INT for op in ("mul", "div", "sub") for t in ("int8", "int16", "uint8", "uint16", "uint32",
                                                                        "uint64")},
    "test_div_int32_trunc": _INT,
    "test_maxpool_with_argmax_2d_precomputed_pads": "Indices output: int64 positions into the whole input batch",
    "test_maxpool_with_argmax_2d_precomputed_strides": "Indices output: int64 positions into the whole input batch",
    "test_batchnorm_example_training_mode": "training_mode=1: statistics over the batch and running-mean outputs; "
                                            "xbarc compiles inference graphs",
    "test_batchnorm_epsilon_training_mode": "training_mode=1: statistics over the batch and running-mean outputs; "
                                            "xbarc compiles inference graphs",
    "test_concat_1d_axis_0": _BATCH + "concatenation along the batch dimension",
    "test_concat_1d_axis_negative_1": _BATCH + "concatenation along the batch dimension (axis -1 of 1-D)",
    "test_concat_2d_axis_0": _BATCH + "concatenation along the batch dimension",
    "test_concat_2d_axis_negative_2": _BATCH + "concatenation along the batch dimension (axis -2 of 2-D)",
    "test_concat_3d_axis_0": _BATCH + "concatenation along the batch dimension",
    "test_concat_3d_axis_negative_3": _BATCH + "concatenation along the batch dimension (axis -3 of 3-D)",
    "test_squeeze": _BATCH + "axes=[0] squeezes the batch dimension",
    "test_unsqueeze_axis_0": _BATCH + "axes=[0] inserts an axis in front of the batch dimension",
    "test_flatten_axis0": _BATCH + "axis=0 merges the batch into one row",
    "test_flatten_negative_axis4": _BATCH + "axis=-4 (0) merges the batch into one row",
    "test_flatten_axis2": _BATCH + "axis=2 gives (6, 20): merges the batch with dim 1",
    "test_flatten_negative_axis2": _BATCH + "axis=-2 (2) gives (6, 20): merges the batch with dim 1",
    "test_flatten_axis3": _BATCH + "axis=3 gives (24, 5): merges the batch with dims 1-2",
    "test_flatten_negative_axis1": _BATCH + "axis=-1 (3) gives (24, 5): merges the batch with dims 1-2",
    "test_reshape_reordered_all_dims": _BATCH + "(2, 3, 4) -> (4, 2, 3) changes the batch dimension",
    "test_reshape_one_dim": _BATCH + "(2, 3, 4) -> (24,) merges the batch",
    "test_reshape_negative_extended_dims": _BATCH + "(2, 3, 4) -> (1, 2, 3, 4) merges the batch",
    "test_reshape_allowzero_reordered": "zero-size input (0, 3, 4): no samples to compute",
    "test_softmax_axis_0": _BATCH + "softmax over axis 0 normalizes across the batch",
    **{f"test_softmax_{s}": "Softmax runs only on the host as the tail after device layers (a host op reading a "
                            "graph input belongs to the device graph); a lone Softmax has no device part"
       for s in ("example", "large_number", "axis_1", "axis_2", "negative_axis", "default_axis")},
}

_POOL_ND = "only 1-D and 2-D spatial pooling (per-sample (C, L) or (C, H, W)) is supported"
_RESHAPE = "Reshape converter accepts only -1/0/1 as the target's first dimension (it does not know the batch " \
           "size), and a lone Reshape leaves no device op"
#: Cases that do not work today; regenerate with ``python tests/test_onnx_backend.py --survey``.
NOT_YET: dict[str, str] = {
    "test_matmul_4d": "MatMul needs a 1-D per-sample input (a per-sample stack of matrices is block-diagonal dense)",
    "test_matmul_bcast": "MatMul needs a 1-D per-sample input (a broadcast matmul is block-diagonal dense)",
    "test_matmul_4d_1d": "MatMul needs a 1-D per-sample input (contracting the last axis is block-diagonal dense)",
    **{f"test_maxpool_{s}": _POOL_ND for s in (
        "3d_default", "3d_dilations", "3d_dilations_use_ref_impl", "3d_dilations_use_ref_impl_large")},
    **{f"test_averagepool_{s}": _POOL_ND for s in (
        "3d_default", "3d_dilations_small",
        "3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False",
        "3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
        "3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False",
        "3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True")},
    **{f"test_{c}": "Div of two activations: the vector unit has no reciprocal" for c in ("div", "div_example")},
    **{f"test_concat_{s}": "only channel concatenation of (C, H, W) or (C, L) samples is supported" for s in (
        "2d_axis_1", "2d_axis_negative_1", "3d_axis_2", "3d_axis_negative_1")},
    **{f"test_concat_{s}": "channel concatenation of (C, L) samples, but the inputs are graph inputs (concat "
                           "inputs must be produced by device ops: they are views into the concat's buffer)"
       for s in ("3d_axis_1", "3d_axis_negative_2")},
    **{f"test_resize_{s}": "linear and cubic Resize interpolate (weighted sums of neighbouring pixels, "
                           "tf_crop_and_resize of a region): only nearest resizing is a data move" for s in (
        "downsample_scales_cubic", "downsample_scales_cubic_A_n0p5_exclude_outside",
        "downsample_scales_cubic_align_corners", "downsample_scales_cubic_antialias", "downsample_scales_linear",
        "downsample_scales_linear_align_corners", "downsample_scales_linear_antialias",
        "downsample_scales_linear_half_pixel_symmetric", "downsample_sizes_cubic", "downsample_sizes_cubic_antialias",
        "downsample_sizes_linear_antialias", "downsample_sizes_linear_pytorch_half_pixel", "tf_crop_and_resize",
        "tf_crop_and_resize_axes_2_3", "tf_crop_and_resize_axes_3_2", "tf_crop_and_resize_extrapolation_value",
        "upsample_scales_cubic", "upsample_scales_cubic_A_n0p5_exclude_outside", "upsample_scales_cubic_align_corners",
        "upsample_scales_cubic_asymmetric", "upsample_scales_linear", "upsample_scales_linear_align_corners",
        "upsample_scales_linear_half_pixel_symmetric", "upsample_sizes_cubic")},
    **{f"test_reshape_{s}": _RESHAPE for s in (
        "reordered_last_dims", "reduced_dims", "extended_dims", "negative_dim", "zero_dim", "zero_and_negative_dim")},
}


# ---------------------------------------------------------------------------------------------------------------
# Loading the node tests


@dataclass
class NodeCase:
    """One node test: its model and test_data_set_0."""

    name: str
    model: onnx.ModelProto
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]


def data_dir() -> Path | None:
    """The node test data directory: $XBARC_ONNX_NODE_DATA, else onnx/backend/test/data/node if shipped."""
    env = os.environ.get("XBARC_ONNX_NODE_DATA")
    if env:
        return Path(env)
    import onnx.backend.test

    d = Path(onnx.backend.test.__file__).parent / "data" / "node"
    return d if d.is_dir() and any(d.glob("test_*/model.onnx")) else None


def selected(name: str, model: onnx.ModelProto | None = None) -> bool:
    """Whether a case is one of ours: a prefix match, not an _expanded variant, and a graph of one of `OPS`."""
    if not name.startswith(PREFIXES) or "_expanded" in name:
        return False
    return model is None or {n.op_type for n in model.graph.node} <= OPS


def _array(t: object) -> np.ndarray:
    return numpy_helper.to_array(t) if isinstance(t, onnx.TensorProto) else np.asarray(t)


def _load_dir(d: Path) -> dict[str, NodeCase]:
    cases = {}
    for case_dir in sorted(d.glob("test_*")):
        if not selected(case_dir.name) or not (case_dir / "model.onnx").exists():
            continue
        model = onnx.load(str(case_dir / "model.onnx"))
        if not selected(case_dir.name, model):
            continue
        ds = case_dir / "test_data_set_0"
        ins = [_array(onnx.load_tensor(str(p))) for p in sorted(ds.glob("input_*.pb"), key=lambda p: int(p.stem[6:]))]
        outs = [_array(onnx.load_tensor(str(p))) for p in sorted(ds.glob("output_*.pb"),
                                                                  key=lambda p: int(p.stem[7:]))]
        cases[case_dir.name] = NodeCase(case_dir.name, model, ins, outs)
    return cases


def _generate() -> dict[str, NodeCase]:
    """The same cases from onnx.backend.test.case.node, the source `backend-test-tools generate-data` writes the
    shipped data/node from (each export reseeds numpy with 0, so the data are identical)."""
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in CASE_MODULES:
            importlib.import_module(f"onnx.backend.test.case.node.{m}")
    cases = {}
    for c in node_cases._NodeTestCases:  # noqa: SLF001 - the list collect_testcases() returns
        if c.model is not None and c.data_sets and selected(c.name, c.model):
            ins, outs = c.data_sets[0]
            cases[c.name] = NodeCase(c.name, c.model, [_array(i) for i in ins], [_array(o) for o in outs])
    return cases


@lru_cache(maxsize=1)
def load_cases() -> dict[str, NodeCase]:
    """All selected node tests by name."""
    d = data_dir()
    return _load_dir(d) if d is not None else _generate()


def data_source() -> str:
    d = data_dir()
    return str(d) if d is not None else "generated in memory from onnx.backend.test.case.node"


# ---------------------------------------------------------------------------------------------------------------
# Tolerance: a bound on the fixed-point error from the compiled formats


def error_bound(cm: CompiledModel, feeds: dict[str, np.ndarray]) -> float:
    """Largest possible |device - exact| over the outputs, propagated in max norm through the graph.

    - a graph input quantized to Q(b, f): 2^-(f+1);
    - a crossbar layer with weights W (rows, cols) in Q(., f_w), inputs in Q(., f_in), accumulator Q(., f_acc),
      input error e (upstream error + requantization 2^-(f_in+1)), weight error d = 2^-(f_w+1):
          e * max_j sum_i |W_ij|  +  d * S  +  rows * e * d  +  ceil(rows / xbar_rows) * 2^-f_acc  +  2^-f_acc
      where S bounds sum_i |x_i| over the layer's rows: the sample's L1 norm for a graph input, else
      rows * 2^(b_in-1-f_in) (the largest magnitude Q(b_in, f_in) holds); the last two terms are the rounding
      shift of each row block's partial sum and the bias quantization;
    - an affine op (rule AFFINE) with scale s quantized to Q(32, f_s), input error e, input format Q(b_x, f_x):
          e * max|s|  +  2^(b_x-1-f_x) * 2^-(f_s+1)  +  2 * 2^-f_m  +  lsb
      (the scale's rounding times the largest input, the product's rounding shift and the shift's quantization
      in the op's fraction f_m, and the requantization to the output);
    - an eltwise mul of inputs a, b with errors e_a, e_b whose formats hold at most A, B in magnitude:
          e_a * B  +  e_b * A  +  e_a * e_b  +  2 * lsb
      (the product's rounding shift and the requantization);
    - an LRN (rule LRN) with input error e, input format holding at most X in magnitude, size n:
          e * bias^-beta * (1 + 2 beta sqrt(n))  +  X * q.error(X)  +  2^-f_m  +  lsb
      (its Lipschitz constant in max norm, the approximation of u^-beta times the largest input, the
      product's rounding shift, the requantization);
    - any other op (pooling, sums, concat, activations with |slope| <= 1): the sum of its input errors plus one
      LSB of the coarsest format in the program (its own rounding); the host tail (Softmax: max-norm Lipschitz
      constant 1/2) does not increase it.
    """
    from compiler.quant.functional import quantize_affine

    inputs = {loc.name: loc for loc in cm.program.inputs}
    fracs = [loc.frac for loc in list(cm.program.inputs) + list(cm.program.outputs)]
    fracs += [p.in_frac for p in cm.precision.values()] + [p.acc_frac for p in cm.precision.values()]
    lsb = 2.0 ** -min(fracs)
    err: dict[str, float] = {name: 2.0 ** -(loc.frac + 1) for name, loc in inputs.items()}
    l1 = {name: float(np.abs(np.asarray(v, dtype=np.float64).reshape(len(v), -1)).sum(axis=1).max())
          for name, v in feeds.items()}
    for op in cm.graph.ops:
        e_in = sum(err.get(i, lsb) for i in op.inputs)
        if op.is_crossbar:
            p = cm.precision[op.name]
            w = np.asarray(op.params["weight"], dtype=np.float64)
            rows = w.shape[0]
            e = e_in + 2.0 ** -(p.in_frac + 1)
            d = 2.0 ** -(p.w_frac + 1)
            s = l1.get(op.inputs[0], rows * 2.0 ** (p.in_bits - 1 - p.in_frac))
            blocks = math.ceil(rows / cm.hw.xbar_rows)
            err[op.outputs[0]] = (e * float(np.abs(w).sum(axis=0).max()) + d * s + rows * e * d
                                  + (blocks + 1) * 2.0 ** -p.acc_frac)
        elif op.kind == "affine":
            q = quantize_affine(cm.graph, op, cm.formats)
            bx, fx = cm.formats[op.inputs[0]]
            err[op.outputs[0]] = (e_in * float(np.abs(q.scale).max(initial=0)) * 2.0 ** -q.fs
                                  + 2.0 ** (bx - 1 - fx - q.fs - 1) + 2 * 2.0 ** -q.frac + lsb)
        elif op.kind == "lrn":
            from compiler.ops.lrn import quantize_lrn

            ql = quantize_lrn(cm.graph, op, cm.formats)
            bx, fx = cm.formats[op.inputs[0]]
            top = 2.0 ** (bx - 1 - fx)
            lip = ql.bias ** -ql.beta * (1 + 2 * ql.beta * math.sqrt(ql.size))
            err[op.outputs[0]] = e_in * lip + top * ql.error(top) + 2.0 ** -ql.fm + lsb
        elif op.kind == "eltwise" and op.attrs.get("op") == "mul":
            (ea, eb), (ma, mb) = ([err.get(i, lsb) for i in op.inputs],
                                  [2.0 ** (cm.formats[i][0] - 1 - cm.formats[i][1]) for i in op.inputs])
            err[op.outputs[0]] = ea * mb + eb * ma + ea * eb + 2 * lsb
        else:
            err[op.outputs[0]] = e_in + lsb
    outs = [err.get(o, lsb) for o in cm.graph.outputs]
    return max(outs) if outs else lsb


# ---------------------------------------------------------------------------------------------------------------
# Running one case


def run_case(case: NodeCase) -> tuple[float, float]:
    """Compile and run ``case``; assert bit-exactness and closeness. Returns (max error, atol)."""
    rep = XbarcBackend.prepare(case.model, precision=PRECISION)
    got = rep.run(case.inputs)
    last = rep.last
    assert last is not None
    ref = runner.functional_outputs(last.compiled, last.feeds)
    assert ref, "no device outputs to compare"
    for name, want in ref.items():
        have = last.outcome.device_int[name]
        assert np.array_equal(have, np.asarray(want).reshape(have.shape)), \
            f"runtime integers differ from the functional model on '{name}'"
    atol = error_bound(last.compiled, last.feeds)
    worst = 0.0
    assert len(got) == len(case.outputs)
    for y, want in zip(got, case.outputs):
        want = np.asarray(want, dtype=np.float64)
        assert y.shape == want.shape, f"output shape {y.shape} != expected {want.shape}"
        np.testing.assert_allclose(y, want, rtol=RTOL, atol=atol)
        worst = max(worst, float(np.abs(y - want).max(initial=0.0)))
    return worst, atol


# ---------------------------------------------------------------------------------------------------------------
# pytest


RESULTS: dict[str, list[str]] = {"passed": [], "excluded": [], "not_yet": [], "failed": []}


def summary_lines() -> list[str]:
    """The session-end summary (printed by tests/conftest.py's pytest_terminal_summary)."""
    r = RESULTS
    if not any(r.values()):
        return []
    lines = [f"onnx backend node tests: {len(r['passed'])} passed, {len(r['excluded'])} skipped (excluded), "
             f"{len(r['not_yet'])} not yet supported" + (f", {len(r['failed'])} failed" if r["failed"] else "")]
    now_pass = [n for n in r["passed"] if n in NOT_YET]
    if now_pass:
        lines.append(f"  NOT_YET entries that now pass (remove them): {', '.join(sorted(now_pass))}")
    return lines


def _case_names() -> list[str]:
    try:
        return sorted(load_cases())
    except Exception as e:  # noqa: BLE001 - report a broken onnx install as one failing case, not a crash
        return [f"<loading node tests failed: {type(e).__name__}: {e}>"]


@pytest.mark.parametrize("name", _case_names())
def test_onnx_node(name: str) -> None:
    if name in EXCLUDED:
        RESULTS["excluded"].append(name)
        pytest.skip(f"excluded: {EXCLUDED[name]}")
    case = load_cases()[name]
    try:
        run_case(case)
    except AssertionError:
        RESULTS["failed"].append(name)
        raise
    except Exception as e:  # noqa: BLE001
        if name in NOT_YET:
            RESULTS["not_yet"].append(name)
            pytest.skip(f"not yet: {NOT_YET[name]} [{type(e).__name__}: {str(e).splitlines()[0][:160]}]")
        RESULTS["failed"].append(name)
        raise
    RESULTS["passed"].append(name)


def test_cases_found_and_lists_consistent() -> None:
    """The node tests were found, and every EXCLUDED/NOT_YET entry names a real case (no stale entries)."""
    cases = load_cases()
    assert len(cases) >= 50, f"only {len(cases)} node tests found in {data_source()}"
    assert not set(EXCLUDED) & set(NOT_YET)
    stale = sorted((set(EXCLUDED) | set(NOT_YET)) - set(cases))
    assert not stale, f"EXCLUDED/NOT_YET name cases that do not exist: {stale}"


def test_backend_basics() -> None:
    """supports_device, and a tiny Gemm through the onnx.backend API with weights bound at run time."""
    assert XbarcBackend.supports_device("CPU") and not XbarcBackend.supports_device("CUDA")
    case = load_cases()["test_gemm_default_vector_bias"]
    rep = XbarcBackend.prepare(case.model)
    (y,) = rep.run(case.inputs)
    assert y.dtype == np.float32 and y.shape == case.outputs[0].shape
    assert rep.last is not None and rep.last.compiled.precision
    assert all(p.w_bits == 16 and p.in_bits == 16 for p in rep.last.compiled.precision.values())
    assert [i.name for i in rep.last.bound_model.graph.input] == [case.model.graph.input[0].name]


# ---------------------------------------------------------------------------------------------------------------
# Survey: which cases fail today and why (regenerates NOT_YET)


def survey() -> int:
    """Try every case; print each outcome and a NOT_YET dict of the non-excluded cases that fail."""
    cases = load_cases()
    print(f"# {len(cases)} node tests from {data_source()}, precision {PRECISION}")
    failing: dict[str, str] = {}
    counts = {"pass": 0, "excluded": 0, "fail": 0}
    for name in sorted(cases):
        if name in EXCLUDED:
            counts["excluded"] += 1
            print(f"EXCLUDED {name}: {EXCLUDED[name]}")
            continue
        try:
            worst, atol = run_case(cases[name])
        except Exception as e:  # noqa: BLE001
            counts["fail"] += 1
            msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}" if str(e).strip() else type(e).__name__
            failing[name] = msg
            print(f"FAIL     {name}: {msg}")
        else:
            counts["pass"] += 1
            print(f"PASS     {name}: max error {worst:.3g} <= atol {atol:.3g}")
    print(f"# {counts['pass']} pass, {counts['excluded']} excluded, {counts['fail']} fail")
    print("NOT_YET: dict[str, str] = {")
    for name, msg in failing.items():
        print(f"    {name!r}: {msg!r},")
    print("}")
    return 0


if __name__ == "__main__":
    if "--survey" in sys.argv[1:]:
        sys.exit(survey())
    print(__doc__)
