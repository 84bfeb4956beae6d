"""Graph cleanup of real exports (compiler/frontend/cleanup.py, compiler/passes/affine.py) and frontend input checks.

Each folding case is a small graph built with onnx.helper the way an exporter writes it. Every compiled case
runs on the runtime and is checked bit for bit against the functional model (integers), and against onnxruntime
running the *original* model within `error_bound` (the worst-case fixed-point error the compiled formats allow,
tests/test_onnx_backend.py) plus float32 rounding of onnxruntime's result (2^-23 relative per op, 1e-5 of the
output's magnitude covers these graphs' depth).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_onnx_backend import error_bound

from compiler import runner
from compiler.cli import main
from compiler.driver import compile_model, import_graph, load_compiled
from compiler.frontend import import_onnx
from compiler.frontend.cleanup import FOLD_FLOOR, MAX_OPSET
from compiler.passes.affine import unfolded_reasons
from isa.errors import ModelError, XbarcError

F32_RTOL = 1e-5
RNG = np.random.default_rng(7)


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    arr = np.asarray(arr)
    return numpy_helper.from_array(arr if arr.dtype != np.float64 else arr.astype(np.float32), name)


def _model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], in_shape: list[object],
           out_shape: list[object] | None = None, opset: int = 13, ir: int = 8, name: str = "x",
           ir3_inputs: bool = False) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, in_shape)]
    init_protos = [_init(k, v) for k, v in inits.items()]
    if ir3_inputs:  # IR-3 exporters list every initializer among the graph inputs
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in init_protos]
    out = nodes[-1].output[0]
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
                          init_protos)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)
    if out_shape is None:  # the output's type as shape inference gives it (the checker wants a shape)
        m.graph.output[0].CopyFrom(onnx.shape_inference.infer_shapes(m).graph.output[0])
    onnx.checker.check_model(m)
    return m


def _ort(model: onnx.ModelProto, x: np.ndarray, per_sample: bool = False) -> np.ndarray:
    """onnxruntime on the original model (one sample at a time for a batch-1-fixed model)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    if per_sample:
        return np.concatenate([sess.run(None, {name: x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))])
    return sess.run(None, {name: x.astype(np.float32)})[0]


def _check(model: onnx.ModelProto, x: np.ndarray, per_sample: bool = False, **kw: object) -> runner.RunOutcome:
    """Compile at 16 bits, run, check bit-exactness and the error bound against onnxruntime; return the run."""
    feeds = {model.graph.input[0].name: x}
    cm = compile_model(model, "16bit", calib=feeds, **kw)
    out = runner.run(cm, feeds)
    assert runner.bit_exact(cm, feeds, out)
    name = model.graph.output[0].name
    got = out.host.get(name, out.device_float.get(name))
    ref = _ort(model, x, per_sample)
    got = np.asarray(got).reshape(ref.shape)
    bound = error_bound(cm, feeds) + F32_RTOL * float(np.abs(ref).max())
    assert float(np.abs(got - ref).max()) <= bound
    # the stored reference model (model.onnx) takes any batch and computes what the original does
    again = runner.reference_outputs(cm.model, feeds, [name])[name].reshape(ref.shape)
    np.testing.assert_allclose(again, ref, rtol=F32_RTOL, atol=F32_RTOL * float(np.abs(ref).max()))
    return out


def _kinds(model: onnx.ModelProto, **kw: object) -> list[str]:
    return [op.kind for op in import_graph(model, **kw)[0].ops]


def _conv_w(cout: int, cin: int, k: int = 3) -> np.ndarray:
    return RNG.normal(0, 0.3, (cout, cin, k, k))


# --- constant folding ------------------------------------------------------------------------------------------

def _plumbing_nodes(opset: int) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """Conv -> Relu -> PyTorch's dynamic-batch flatten (Shape, Gather, Unsqueeze, Concat, Reshape) -> Gemm."""
    unsq = (helper.make_node("Unsqueeze", ["b"], ["b1"], axes=[0]) if opset < 13 else
            helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]))
    nodes = [helper.make_node("Conv", ["x", "w", "bias"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             unsq,
             helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["r", "target"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    inits = {"w": _conv_w(4, 3), "bias": RNG.normal(0, 0.1, 4), "zero": np.array(0, np.int64),
             "minus1": np.array([-1], np.int64), "fc": RNG.normal(0, 0.2, (5, 4 * 6 * 6)), "fcb": RNG.normal(0, 0.1, 5)}
    if opset >= 13:
        inits["ax0"] = np.array([0], np.int64)
    return nodes, inits


@pytest.mark.parametrize("opset", [11, 13])
def test_dynamic_batch_shape_plumbing_folds(opset):
    """Opset 11's Unsqueeze (axes attribute) is one the reference evaluator cannot run: onnxruntime folds it."""
    nodes, inits = _plumbing_nodes(opset)
    m = _model(nodes, inits, ["batch", 3, 6, 6], ["batch", 5], opset=opset)
    assert _kinds(m) == ["conv", "dense"]
    out = _check(m, RNG.uniform(0, 1, (4, 3, 6, 6)))
    assert out.device_float["y"].shape[0] == 4


def test_reshape_and_transpose_of_weights_fold():
    nodes = [helper.make_node("Reshape", ["wflat", "wshape"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Transpose", ["fcT"], ["fc"], perm=[1, 0]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    inits = {"wflat": _conv_w(4, 2).reshape(-1), "wshape": np.array([4, 2, 3, 3], np.int64),
             "fcT": RNG.normal(0, 0.2, (3, 4 * 4 * 4))}
    m = _model(nodes, inits, ["N", 2, 6, 6])
    assert _kinds(m) == ["conv", "dense"]
    _check(m, RNG.uniform(0, 1, (3, 2, 6, 6)))


def test_dequantize_linear_int8_weights_fold():
    q = RNG.integers(-127, 128, (6, 8)).astype(np.int8)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)]
    m = _model(nodes, {"wq": q, "ws": np.array(0.01, np.float32), "wz": np.array(3, np.int8)}, ["N", 8])
    (op,) = import_graph(m)[0].ops
    np.testing.assert_array_equal(op.params["weight"], ((q.astype(np.float32) - 3) * np.float32(0.01)).T)
    _check(m, RNG.uniform(-1, 1, (5, 8)))


def test_ir3_constant_of_shape_and_identity_shared_weights():
    """The onnx zoo's layout: IR 3, opset 9, initializers among the graph inputs, weights from ConstantOfShape;
    one weight shared by two convs through Identity."""
    value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.05])
    nodes = [helper.make_node("ConstantOfShape", ["wshape"], ["w"], value=value),
             helper.make_node("Identity", ["w"], ["w2"]),
             helper.make_node("Conv", ["x", "w", "b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], kernel_shape=[3, 3])]
    m = _model(nodes, {"wshape": np.array([3, 3, 3, 3], np.int64), "b": RNG.normal(0, 0.1, 3)}, [1, 3, 6, 6],
               opset=9, ir=3, ir3_inputs=True)
    g, _, cleaned = import_graph(m)
    assert [v.name for v in g.inputs] == ["x"] and [op.kind for op in g.ops] == ["conv", "conv"]
    assert {n.op_type for n in cleaned.graph.node} == {"Conv", "Relu"}
    _check(m, RNG.uniform(0, 1, (3, 3, 6, 6)), per_sample=True)


def test_large_constant_not_feeding_a_layer_is_not_folded():
    n = FOLD_FLOOR * 2
    value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], value=value),
             helper.make_node("Add", ["x", "big"], ["y"])]
    m = _model(nodes, {"shape": np.array([1, n], np.int64)}, ["N", n])
    with pytest.raises(ModelError, match=r"node 'big' \(ConstantOfShape\): a constant the frontend did not fold: "
                                         rf"its output would have more than {FOLD_FLOOR} elements"):
        import_onnx(m)


# --- batch and input shapes ------------------------------------------------------------------------------------

def test_batch_one_fixed_model_compiles_and_runs_any_batch(tmp_path):
    """A fixed-batch export (input [1, ...], Reshape to the constant [1, -1]): the compiled program, the stored
    onnxruntime reference and `xbarc run` take any batch."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    m = _model(nodes, {"w": _conv_w(2, 1), "shape": np.array([1, 2 * 4 * 4], np.int64),
                       "fc": RNG.normal(0, 0.3, (3, 32))}, [1, 1, 6, 6], [1, 3])
    x = RNG.uniform(0, 1, (6, 1, 6, 6))
    _check(m, x, per_sample=True)
    cm = compile_model(m, "16bit", calib={"x": x})
    cm.save(tmp_path / "out")
    report = runner.evaluate(load_compiled(tmp_path / "out"), x, None)
    assert report["bit_exact"] is True and report["images"] == 6
    np.save(tmp_path / "in.npy", x)
    assert main(["run", str(tmp_path / "out"), "--inputs", str(tmp_path / "in.npy"), "-o",
                 str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape[0] == 6


def _dynamic_hw_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    return _model(nodes, {"w": _conv_w(2, 3)}, ["N", 3, "H", "W"])


def test_dynamic_spatial_dims_need_a_shape():
    m = _dynamic_hw_model()
    with pytest.raises(ModelError, match=r"graph input 'x' has dynamic dims \(\[\?, 3, \?, \?\]\).*input_shapes="
                                         r".*--input-shape x:1,"):
        compile_model(m)
    assert import_graph(m, {"x": (1, 3, 7, 9)})[0].inputs[0].shape == (3, 7, 9)
    with pytest.raises(ModelError, match=r"differs from the model's static dim 1 = 3"):
        import_graph(m, {"x": (1, 4, 7, 9)})
    with pytest.raises(ModelError, match=r"input shape given for \['y'\]"):
        import_graph(m, {"y": (1, 3, 7, 9)})
    _check(m, RNG.uniform(0, 1, (2, 3, 8, 5)))  # shapes from the calibration arrays
    _check(m, RNG.uniform(0, 1, (2, 3, 6, 6)), input_shapes={"x": (1, 3, 6, 6)})


def test_cli_input_shape_flag(tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    onnx.save(_dynamic_hw_model(), path)
    assert main(["compile", str(path), "-o", str(tmp_path / "o"), "--input-shape", "x:1,3,6,6"]) == 0
    assert load_compiled(tmp_path / "o").graph.inputs[0].shape == (3, 6, 6)
    assert main(["compile", str(path), "-o", str(tmp_path / "o2")]) == 2
    assert "--input-shape x:1," in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["compile", str(path), "-o", str(tmp_path / "o3"), "--input-shape", "x:1,three"])
    assert e.value.code == 2 and "expected NAME:D0,D1,..." in capsys.readouterr().err


# --- Sum and constant arithmetic -------------------------------------------------------------------------------

def test_sum_becomes_adds():
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Sum", ["a", "b", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Sum", ["r"], ["y"])]
    m = _model(nodes, {"w1": _conv_w(3, 3), "w2": _conv_w(3, 3, 1)}, ["N", 3, 5, 5])
    assert _kinds(m) == ["conv", "conv", "eltwise", "eltwise"]
    _check(m, RNG.uniform(-1, 1, (3, 3, 5, 5)))


def test_constant_arithmetic_folds_into_layers():
    """Input normalization (x - mean) / std before an unpadded conv (input side), Mul by a scalar after it and
    a per-channel Mul + Add + BatchNormalization after the next conv (output side, merged first), a Sub from a
    constant before a Gemm (input side of a dense layer: any per-element constant), Div after it."""
    mean, std = np.array([0.4, 0.5, 0.6]).reshape(1, 3, 1, 1), np.array([0.2, 0.25, 0.3]).reshape(3, 1, 1)
    nodes = [helper.make_node("Sub", ["x", "mean"], ["xs"]),
             helper.make_node("Div", ["xs", "std"], ["xn"]),
             helper.make_node("Conv", ["xn", "w1"], ["c1"], kernel_shape=[3, 3]),
             helper.make_node("Mul", ["c1", "two"], ["c1s"]),
             helper.make_node("Relu", ["c1s"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["gamma", "c2"], ["c2m"]),
             helper.make_node("Add", ["c2m", "beta"], ["c2a"]),
             helper.make_node("BatchNormalization", ["c2a", "s", "bb", "mu", "var"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]),
             helper.make_node("Sub", ["offset", "f"], ["fs"]),
             helper.make_node("Gemm", ["fs", "fc"], ["g"], transB=1),
             helper.make_node("Div", ["g", "temp"], ["y"])]
    inits = {"mean": mean, "std": std, "w1": _conv_w(4, 3), "two": np.array(2.0), "w2": _conv_w(4, 4),
             "gamma": RNG.uniform(0.5, 1.5, (4, 1, 1)), "beta": RNG.normal(0, 0.1, (4, 1, 1)),
             "s": RNG.uniform(0.5, 1.5, 4), "bb": RNG.normal(0, 0.1, 4), "mu": RNG.normal(0, 0.1, 4),
             "var": RNG.uniform(0.5, 1.5, 4), "offset": RNG.normal(0, 0.1, 4 * 4 * 4),
             "fc": RNG.normal(0, 0.2, (3, 64)), "temp": np.array([2.0, 4.0, 0.5])}
    m = _model(nodes, inits, ["N", 3, 6, 6])
    assert _kinds(m) == ["conv", "conv", "dense"]
    _check(m, RNG.uniform(0, 1, (4, 3, 6, 6)))


def test_scale_before_a_padded_conv_folds_but_an_offset_does_not():
    scale = RNG.uniform(0.5, 2.0, (1, 3, 1, 1))
    nodes = [helper.make_node("Mul", ["x", "scale"], ["xs"], name="scale_in"),
             helper.make_node("Conv", ["xs", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    m = _model(nodes, {"scale": scale, "w": _conv_w(2, 3)}, ["N", 3, 5, 5])
    assert _kinds(m) == ["conv"]
    _check(m, RNG.uniform(0, 1, (2, 3, 5, 5)))
    nodes[0] = helper.make_node("Sub", ["x", "scale"], ["xs"], name="norm")
    m = _model(nodes, {"scale": scale, "w": _conv_w(2, 3)}, ["N", 3, 5, 5])
    g = import_graph(m)[0]
    assert [op.kind for op in g.ops] == ["affine", "conv"]  # the offset runs on the vector unit (rule AFFINE)
    assert "its offset would reach the zero padding of conv" in unfolded_reasons(g)["norm"]
    _check(m, RNG.uniform(0, 1, (2, 3, 5, 5)))


def test_unfoldable_affines_run_on_the_vector_unit():
    """A Mul after a pool (relu fused into it) and an Add of a graph output: two standalone affines."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], name="pool"),
             helper.make_node("Mul", ["p", "k"], ["m"], name="m1"),
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Add", ["r", "k"], ["y"], name="a1")]
    m = _model(nodes, {"k": np.array(0.5)}, ["N", 2, 4, 4])
    g = import_graph(m)[0]
    assert [(op.kind, op.attrs.get("act")) for op in g.ops] == [("pool", "none"), ("affine", "relu"),
                                                               ("affine", None)]
    reasons = unfolded_reasons(g)
    assert "pool 'pool'" in reasons["m1"]
    _check(m, RNG.uniform(-1, 1, (3, 2, 4, 4)))


# --- input checks ----------------------------------------------------------------------------------------------

def _gemm(w: np.ndarray, opset: int = 13, **kw: object) -> onnx.ModelProto:
    return _model([helper.make_node("Gemm", ["x", "w"], ["y"], **kw)], {"w": w}, ["N", 3], ["N", 2], opset=opset)


def test_non_finite_weights_are_rejected():
    w = RNG.normal(size=(3, 2))
    w[2, 1] = np.nan
    with pytest.raises(ModelError, match=r"tensor 'w': non-finite value nan at index \(2, 1\)"):
        compile_model(_gemm(w))
    nodes = [helper.make_node("Div", ["one", "zero"], ["inv"], name="recip"),
             helper.make_node("Mul", ["w", "inv"], ["ws"]),
             helper.make_node("Gemm", ["x", "ws"], ["y"])]
    m = _model(nodes, {"one": np.ones(2), "zero": np.array([1.0, 0.0]), "w": RNG.normal(size=(3, 2))}, ["N", 3])
    with pytest.raises(ModelError, match=r"tensor 'inv' \(computed at compile time by node 'recip' \(Div\)\): "
                                         r"non-finite value inf at index \(1,\)"):
        import_onnx(m)


def test_unknown_opset_and_foreign_domain_are_rejected():
    m = _gemm(RNG.normal(size=(3, 2)))
    m.opset_import[0].version = 99
    with pytest.raises(ModelError, match=rf"opset 99 of the default ONNX domain; xbarc's frontend knows opsets 1 "
                                         rf"to {MAX_OPSET}"):
        compile_model(m)
    m = _gemm(RNG.normal(size=(3, 2)))
    m.graph.node[0].domain = "com.example"
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(ModelError, match=r"1 unsupported ONNX op\(s\):\n  com.example.Gemm \(node 'y'\)"):
        compile_model(m)


def test_scalar_gemm_weight_is_a_clear_error():
    with pytest.raises(ModelError, match=r"\(Gemm\): weight 'w' has shape \(\); Gemm's B must be a 2-D matrix"):
        import_onnx(_gemm(np.array(2.0)))


def test_every_unsupported_node_in_one_error():
    nodes = [helper.make_node("Sin", ["x"], ["l"], name="sin"),
             helper.make_node("MaxPool", ["l"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], storage_order=1,
                              name="pool"),
             helper.make_node("Reshape", ["a", "s5"], ["r"], name="r1"),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4], name="shuffle"),
             helper.make_node("Reshape", ["t", "s4"], ["u"], name="r2"),
             helper.make_node("Exp", ["u"], ["y"], name="exp")]
    m = _model(nodes, {"s5": np.array([0, 2, 2, 4, 4], np.int64), "s4": np.array([0, 4, 4, 4], np.int64)},
               ["N", 4, 4, 4])
    with pytest.raises(XbarcError) as e:
        compile_model(m)
    msg = str(e.value)
    assert "2 unsupported ONNX op(s):\n  Sin (node 'sin')\n  Exp (node 'exp')" in msg
    assert "node 'pool' (MaxPool): storage_order=1 is not supported" in msg
    assert ("node 'shuffle' (Gather): the channel shuffle r1 -> shuffle -> r2 (Reshape, Transpose, Reshape) cannot "
            "fold: 'a' is not produced by a device op") in msg
    assert "supported on the device: " in msg and "Mul" in msg


# --- the onnx zoo's real architectures -------------------------------------------------------------------------

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@pytest.mark.skipif(not (LIGHT / "light_squeezenet.onnx").exists(), reason="onnx ships no light models")
def test_zoo_models_import():
    """SqueezeNet (ConstantOfShape weights, IR 3) and ResNet-50 (Sum, standalone-looking BatchNormalization after
    every conv) import into crossbar layers only (compile and run: benchmarks/real_models.py)."""
    def count(m: onnx.ModelProto, *ops: str) -> int:
        return sum(n.op_type in ops for n in m.graph.node)

    m = onnx.load(str(LIGHT / "light_squeezenet.onnx"))
    sq = import_graph(m)[0]
    assert {op.kind for op in sq.ops} == {"conv", "pool", "concat", "gap"}
    assert len(sq.crossbar_ops()) == count(m, "Conv")
    m = onnx.load(str(LIGHT / "light_resnet50.onnx"))
    rn = import_graph(m)[0]
    assert len(rn.crossbar_ops()) == count(m, "Conv", "Gemm") and "affine" not in {op.kind for op in rn.ops}
    assert sum(op.kind == "eltwise" for op in rn.ops) == count(m, "Sum")  # each Sum has two inputs


@pytest.mark.skipif(not (LIGHT / "light_inception_v1.onnx").exists(), reason="onnx ships no light models")
@pytest.mark.parametrize("name", ["squeezenet", "inception_v1"])
def test_small_zoo_models_run_bit_exact_near_onnxruntime(name):
    """The small zoo models (Inception v1 with its LRNs) with random weights compile, run one image bit-exact
    against the functional model, and land near onnxruntime: 16-bit activation words resolve 2^-15 = 3.1e-5 of a
    tensor's range per requantization, over ~20 requantizations, plus the LRN approximation's 2.5e-4 bound
    (rule LRN): 2e-3 of the output's largest value. The other seven: benchmarks/real_models.py."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from real_models import measure

    r = measure(name, run=True, random_weights=True)
    assert r["stage"] == "ran", r["error"]
    assert r["bit_exact"] is True
    assert r["device_rel_err"] < 2e-3


def test_semantics_doc_example_affine_before_dense():
    """docs/semantics.md, FOLDING: scale [2, 0.5], shift [1, -1] before weight column [3, 4], bias 0.25."""
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["m", "t"], ["a"]),
             helper.make_node("Gemm", ["a", "w", "b"], ["y"])]
    m = _model(nodes, {"s": np.array([2.0, 0.5]), "t": np.array([1.0, -1.0]), "w": np.array([[3.0], [4.0]]),
                       "b": np.array([0.25])}, ["N", 2])
    (op,) = import_graph(m)[0].ops
    assert op.params["weight"][:, 0].tolist() == [6.0, 2.0] and op.params["bias"].tolist() == [-0.75]


def test_malformed_node_is_named_not_a_traceback():
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")]
    m = _model(nodes, {"lo": np.array([0.0, 1.0]), "hi": np.array(6.0)}, ["N", 3], ["N", 3])
    with pytest.raises(ModelError, match=r"node 'clip' \(Clip\): malformed inputs or attributes \(TypeError"):
        import_onnx(m)


def test_batchnorm_with_negative_variance_is_named():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"]),
             helper.make_node("BatchNormalization", ["g", "s", "b", "m", "v"], ["y"], name="bn")]
    m = _model(nodes, {"w": RNG.normal(size=(3, 2)), "s": np.ones(2), "b": np.zeros(2), "m": np.zeros(2),
                       "v": np.array([1.0, -2.0])}, ["N", 3], ["N", 2])
    with pytest.raises(ModelError, match=r"node 'bn' \(BatchNormalization\): variance \+ epsilon of channel 1"):
        import_onnx(m)


def test_cli_repeated_input_shapes_and_opset_error(tmp_path, capsys):
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2, "H", "W"]) for n in ("a", "b")]
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Conv", ["s", "w"], ["y"], kernel_shape=[1, 1])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, "H", "W"])
    g = helper.make_graph(nodes, "g", inputs, [out], [_init("w", _conv_w(2, 2, 1))])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert main(["compile", str(path), "-o", str(tmp_path / "o"), "--input-shape", "a:1,2,3,4",
                 "--input-shape", "b:1,2,3,4"]) == 0
    assert [v.shape for v in load_compiled(tmp_path / "o").graph.inputs] == [(2, 3, 4), (2, 3, 4)]
    capsys.readouterr()
    assert main(["compile", str(path), "-o", str(tmp_path / "o2"), "--input-shape", "a:1,2,3,4"]) == 2
    assert "graph input 'b' has dynamic dims" in capsys.readouterr().err
    m = _gemm(RNG.normal(size=(3, 2)))
    m.opset_import[0].version = 99
    onnx.save(m, tmp_path / "new.onnx")
    assert main(["compile", str(tmp_path / "new.onnx"), "-o", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert "opset 99 of the default ONNX domain" in err and "Traceback" not in err


def test_drop_lrn_compiles_lrn_as_identity_with_a_warning(tmp_path) -> None:
    from compiler.cli import main
    from compiler.driver import load_compiled

    text = """
<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 4, 6, 6] x) => (float[N, 8, 6, 6] y) {
    c = Conv<kernel_shape=[3,3], pads=[1,1,1,1]>(x, w)
    r = Relu(c)
    y = LRN<size=3, alpha=0.0001, beta=0.75, bias=1.0>(r)
}
"""
    m = onnx.parser.parse_model(text)
    rng = np.random.default_rng(0)
    m.graph.initializer.append(onnx.numpy_helper.from_array(rng.normal(0, 0.3, (8, 4, 3, 3)).astype(np.float32), "w"))
    x = rng.random((4, 4, 6, 6)).astype(np.float32)
    assert [op.kind for op in compile_model(m, "16bit", calib={"x": x}).graph.ops] == ["conv", "lrn"]  # rule LRN
    cm = compile_model(m, "16bit", calib={"x": x}, drop_lrn=True)
    assert [op.kind for op in cm.graph.ops] == ["conv"]
    assert cm.warnings[0].startswith("LRN compiled as identity at your request (--drop-lrn)")
    path = tmp_path / "lrn.onnx"
    onnx.save(m, path)
    np.save(tmp_path / "x.npy", x)
    assert main(["compile", str(path), "-o", str(tmp_path / "o"), "--calib", str(tmp_path / "x.npy"), "--drop-lrn"]) == 0
    again = load_compiled(tmp_path / "o")  # the option is recorded: the reloaded graph has no LRN either
    assert [op.kind for op in again.graph.ops] == [op.kind for op in cm.graph.ops]
    assert main(["run", str(tmp_path / "o"), "--dataset", str(tmp_path / "x.npy"), "--check"]) == 0


def _shuffle_model(read_twice: bool = False) -> tuple[onnx.ModelProto, np.ndarray]:
    """ShuffleNet's unit: grouped 1x1 conv, ReLU, channel shuffle (Reshape, Transpose, Reshape), depthwise conv."""
    c, g = 24, 3
    extra = "    z = Relu(r1)\n" if read_twice else ""
    outs = f"float[N, {c}, 8, 8] y" + (f", float[N, {c}, 8, 8] z" if read_twice else "")
    text = f"""<ir_version: 8, opset_import: ["" : 9]>
agraph (float[N, {c}, 8, 8] x) => ({outs}) {{
    c1 = Conv<kernel_shape=[1,1], group={g}>(x, w1)
    r1 = Relu(c1)
    a = Reshape(r1, s1)
    t = Transpose<perm=[0,2,1,3,4]>(a)
    b = Reshape(t, s2)
    y = Conv<kernel_shape=[3,3], pads=[1,1,1,1], group={c}>(b, w2)
{extra}}}"""
    m = onnx.parser.parse_model(text)
    rng = np.random.default_rng(0)
    for k, v in {"w1": rng.normal(0, 1, (c, c // g, 1, 1)) / 3, "w2": rng.normal(0, 1, (c, 1, 3, 3)) / 3}.items():
        m.graph.initializer.append(numpy_helper.from_array(v.astype(np.float32), k))
    for k, v in {"s1": [1, g, c // g, 8, 8], "s2": [1, c, 8, 8]}.items():
        m.graph.initializer.append(numpy_helper.from_array(np.array(v, dtype=np.int64), k))
    return m, rng.random((3, c, 8, 8)).astype(np.float32)


def test_channel_shuffle_folds_into_the_producing_conv() -> None:
    m, x = _shuffle_model()
    cm = compile_model(m, "16bit", calib={"x": x})
    assert [op.kind for op in cm.graph.ops] == ["conv", "conv"]  # nothing runs for the shuffle
    out = runner.run(cm, {"x": x})
    assert runner.bit_exact(cm, {"x": x}, out)
    ref = runner.reference_outputs(cm.model, {"x": x}, ["y"])["y"].reshape(len(x), -1)
    # 16-bit formats with >= 10 fraction bits here: the rounding of two layers stays far below 2^-6
    assert np.abs(out.device_float["y"].reshape(len(x), -1) - ref).max() < 2.0 ** -6


def test_a_shuffle_whose_input_is_read_elsewhere_is_a_clear_error() -> None:
    from isa.errors import ModelError

    m, x = _shuffle_model(read_twice=True)
    with pytest.raises(ModelError, match=r"the channel shuffle .* cannot fold: 'r1' is read elsewhere too"):
        compile_model(m, "16bit", calib={"x": x})
