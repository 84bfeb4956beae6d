"""A large model compiled from a file is referenced from its output directory, not copied (`compiler.modelref`):
model.onnx without the shared weights, source.json naming the file; loading refills them (the same model
bytes, the same run) and a moved or edited source is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from compiler import modelref, runner
from compiler.driver import load_compiled
from isa.errors import XbarcError
from models.datasets import load_dataset
from support import compile_model

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "models" / "lenet5_digits.onnx"


@pytest.fixture()
def referenced(tmp_path: Path, monkeypatch) -> tuple[Path, Path, bytes]:
    """LeNet-5 compiled from a copy of its file with every model "large": (source, output dir, model bytes)."""
    monkeypatch.setenv("XBARC_EMBED_MODEL_MB", "0")
    monkeypatch.setattr(modelref, "MIN_TENSOR_BYTES", 0)
    src = tmp_path / "lenet.onnx"
    shutil.copy(LENET, src)
    cm = compile_model(src, "8bit")
    out = tmp_path / "out"
    cm.save(out)
    return src, out, cm.model.SerializeToString()


def test_the_weights_stay_in_the_source_and_load_back(referenced) -> None:
    src, out, whole = referenced
    doc = json.loads((out / "source.json").read_text())
    assert doc["path"] == str(src.resolve()) and doc["initializers"]
    assert (out / "model.onnx").stat().st_size < len(whole) / 4
    cm = load_compiled(out)
    assert cm.model.SerializeToString() == whole and cm.source == src.resolve()
    x, _ = load_dataset("digits32", "test")
    res = runner.run(cm, {cm.program.inputs[0].name: x[:3]})
    fun = runner.functional_outputs(cm, {cm.program.inputs[0].name: x[:3]})
    for k, v in fun.items():
        assert np.array_equal(res.device_int[k], v.reshape(res.device_int[k].shape))


def test_an_edited_or_missing_source_is_named(referenced) -> None:
    src, out, _ = referenced
    data = bytearray(src.read_bytes())
    data[-10] ^= 1
    src.write_bytes(bytes(data))
    with pytest.raises(XbarcError, match=r"source.json: the model's weights are read from .*lenet.onnx .*has changed"):
        load_compiled(out)
    src.unlink()
    with pytest.raises(XbarcError, match=r"lenet.onnx .*which is missing"):
        load_compiled(out)


def test_small_models_and_model_protos_are_copied_whole(tmp_path: Path, monkeypatch) -> None:
    cm = compile_model(LENET, "8bit")  # a file under the default 256 MB limit
    cm.save(tmp_path / "a")
    assert not (tmp_path / "a" / "source.json").exists()
    monkeypatch.setenv("XBARC_EMBED_MODEL_MB", "0")
    monkeypatch.setattr(modelref, "MIN_TENSOR_BYTES", 0)
    import onnx

    cm = compile_model(onnx.load(str(LENET)), "8bit")  # no file to refer to
    cm.save(tmp_path / "b")
    assert not (tmp_path / "b" / "source.json").exists()
    assert load_compiled(tmp_path / "b").model.SerializeToString() == cm.model.SerializeToString()
