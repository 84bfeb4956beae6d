"""A large source model referenced from an output directory instead of copied into it.

``model.onnx`` (the cleaned source model, the float reference of ``xbarc run``) would hold every float weight
again: 553 MB for VGG-16 beside its 110 MB ``image.npz``. A model compiled from a file whose serialized size
exceeds `EMBED_LIMIT_MB` (``XBARC_EMBED_MODEL_MB``, default 256) is saved with the initializers it shares, byte
for byte, with that file left empty, and ``source.json`` records the file's absolute path, size and SHA-256 and
the names of the emptied initializers. `restore_model` refills them from the file after checking it is the same
file; a moved, edited or missing source is an error that says so (compile again, or compile with the variable
raised to copy the weights). Smaller models, and models given as a `ModelProto`, are copied whole as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from isa.errors import XbarcError
from isa.files import file_sha256
from isa.outputs import read_json

SOURCE = "source.json"
SOURCE_FORMAT = "xbarc-model-source"
MIN_TENSOR_BYTES = 1 << 20  # smaller initializers stay in model.onnx


def embed_limit() -> int:
    """Bytes above which a model compiled from a file is referenced (``XBARC_EMBED_MODEL_MB``)."""
    return int(float(os.environ.get("XBARC_EMBED_MODEL_MB", "256")) * 2**20)


def model_files(model: onnx.ModelProto, source: Path | None) -> dict[str, bytes]:
    """``model.onnx`` (and, when the model is referenced, ``source.json``) of an output directory."""
    if source is None or not source.is_file() or source.stat().st_size <= embed_limit():  # (ByteSize: 3 s)
        return {"model.onnx": model.SerializeToString()}
    shared = _shared_initializers(model, source)
    if not shared:
        return {"model.onnx": model.SerializeToString()}
    kept = {}
    for t in model.graph.initializer:
        if t.name in shared:
            kept[t.name] = t.raw_data
            t.ClearField("raw_data")
    try:
        data = model.SerializeToString()
    finally:
        for t in model.graph.initializer:
            if t.name in kept:
                t.raw_data = kept[t.name]
    doc = {"format": SOURCE_FORMAT, "path": str(source), "size": source.stat().st_size,
           "sha256": file_sha256(source), "initializers": sorted(shared)}
    return {"model.onnx": data, SOURCE: (json.dumps(doc, indent=1) + "\n").encode()}


def _shared_initializers(model: onnx.ModelProto, source: Path) -> set[str]:
    """Names of ``model``'s large raw-data initializers equal (type, dims, bytes) to the source file's own."""
    src = {t.name: t for t in onnx.load(str(source), load_external_data=False).graph.initializer}
    shared = set()
    for t in model.graph.initializer:
        s = src.get(t.name)
        if (len(t.raw_data) >= MIN_TENSOR_BYTES and s is not None and s.data_type == t.data_type
                and list(s.dims) == list(t.dims) and s.raw_data == t.raw_data):
            shared.add(t.name)
    return shared


def stored_model(out: Path) -> onnx.ModelProto:
    """The ``model.onnx`` of output directory ``out`` as stored (a referenced model's shared initializers empty),
    once the source file ``source.json`` names, if any, is found unchanged (its size and SHA-256); XbarcError
    naming the file when model.onnx is unreadable or the source is missing or has changed."""
    ref = out / SOURCE
    if ref.exists():
        _check_source(ref, _source_doc(ref))
    return _read(out / "model.onnx")


def restore_model(out: Path, stored: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """The ``model.onnx`` of output directory ``out`` (``stored``: as `stored_model` read it) with any
    referenced initializers refilled from the source file named in ``source.json``, checked (`load_model`)."""
    from .frontend import load_model

    proto = stored_model(out) if stored is None else stored
    ref = out / SOURCE
    if ref.exists():
        doc = _source_doc(ref)
        src = Path(doc["path"])
        weights = {t.name: t for t in _read(src).graph.initializer}
        for t in proto.graph.initializer:
            if t.name in doc["initializers"]:
                if t.name not in weights:
                    raise XbarcError(f"{ref}: initializer {t.name!r} is not in {src}; compile again")
                t.raw_data = weights[t.name].raw_data
    return load_model(proto)


def _check_source(ref: Path, doc: dict[str, Any]) -> None:
    src = Path(doc["path"])
    how = (f"{ref}: the model's weights are read from {src} (not copied: the model exceeds "
           f"XBARC_EMBED_MODEL_MB={embed_limit() / 2**20:g})")
    if not src.is_file():
        raise XbarcError(f"{how}, which is missing; put it back or compile again")
    if src.stat().st_size != doc["size"] or file_sha256(src) != doc["sha256"]:
        raise XbarcError(f"{how}, which has changed since `xbarc compile` (its SHA-256 differs); compile again")


def _read(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise XbarcError(f"{path}: not a readable ONNX model ({e})") from None


def referenced_source(out: Path) -> Path | None:
    """The source file an output directory references (None: its model.onnx is whole)."""
    ref = out / SOURCE
    return Path(_source_doc(ref)["path"]) if ref.exists() else None


def _source_doc(ref: Path) -> dict[str, Any]:
    doc = read_json(ref)
    ok = (isinstance(doc, dict) and doc.get("format") == SOURCE_FORMAT and isinstance(doc.get("path"), str)
          and isinstance(doc.get("size"), int) and isinstance(doc.get("sha256"), str)
          and isinstance(doc.get("initializers"), list))
    if not ok:
        raise XbarcError(f"{ref}: not an {SOURCE_FORMAT} record; compile again")
    return doc  # type: ignore[no-any-return]
