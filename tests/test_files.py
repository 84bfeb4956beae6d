"""Saving and loading a program folder: round trip, fallbacks, corrupt inputs and atomic replacement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import isa.files as files
from isa.assembler import assemble
from isa.errors import AsmError, XbarcError
from isa.files import load_program, save_program
from isa.hardware import PUMA
from isa.printer import format_program
from isa.program import MemInit, MvmuImage, Program, TensorLoc

ASM = """\
.core 0 0
    mvm 0b1, ibits=8, adc=10, shift=4, obits=16, enc=0, skip=-1   ; @/fc1/Gemm
    store [64], r1024, n=10, count=1              ; @/fc1/Gemm
    halt

.core 1 2
    load r0, [64], n=10
    halt
"""


def make_program() -> Program:
    p = assemble(ASM, "m.s", PUMA)
    layout = np.zeros((4, 2, 4, 3), dtype=np.int64)  # every line of 4 slices x 2 signs x 4 columns on array 0
    layout[..., 2] = np.arange(32).reshape(4, 2, 4)
    p.mvmus = [MvmuImage(0, 0, 0, np.arange(-6, 6).reshape(3, 4), 8, "/fc1/Gemm"),
               MvmuImage(0, 1, 0, np.arange(-6, 6).reshape(4, 3).T.copy(), 8, "/fc2/Gemm", layout=layout)]
    p.data = [MemInit(0, 100, np.array([1, -2, 3]), count=2), MemInit(1, 0, np.zeros(0, dtype=np.int64))]
    p.inputs = [TensorLoc("x", 0, 0, 12, 8, 4, (1, 12))]
    p.outputs = [TensorLoc("y", 1, 64, 10, 16, 8, (1, 10), count=0)]
    p.meta = {"model": "tiny", "layers": [1, 2]}
    return p


def assert_same(a: Program, b: Program) -> None:
    assert a.hw == b.hw and a.inputs == b.inputs and a.outputs == b.outputs and a.meta == b.meta
    assert [(c.tile, c.core, c.instrs) for c in a.cores] == [(c.tile, c.core, c.instrs) for c in b.cores]
    for m, n in zip(a.mvmus, b.mvmus, strict=True):
        assert (m.tile, m.core, m.mvmu, m.weight_bits, m.node) == (n.tile, n.core, n.mvmu, n.weight_bits, n.node)
        assert np.array_equal(m.weights, n.weights) and n.weights.dtype == np.int64
        assert (m.layout is None) == (n.layout is None)
        assert m.layout is None or np.array_equal(m.layout, n.layout)
    for d, e in zip(a.data, b.data, strict=True):
        assert (d.tile, d.addr, d.count) == (e.tile, e.addr, e.count) and np.array_equal(d.values, e.values)


def test_save_load_round_trip(tmp_path: Path) -> None:
    p = make_program()
    out = save_program(p, tmp_path / "out", extra_files={"notes.txt": "hi", "sub/raw.bin": b"\x00\x01"})
    assert sorted(x.name for x in out.iterdir()) == ["image.npz", "manifest.json", "notes.txt", "program.bin",
                                                      "program.s", "sub"]
    assert (out / "sub" / "raw.bin").read_bytes() == b"\x00\x01" and (out / "notes.txt").read_text() == "hi"
    man = json.loads((out / "manifest.json").read_text())
    assert (man["format"], man["version"], man["hw"]["name"]) == ("xbarc-program", 2, "puma")
    assert man["mvmus"] == [{"tile": 0, "core": 0, "mvmu": 0, "weight_bits": 8, "node": "/fc1/Gemm", "encoding": "twos", "packed": False,
                             "shape": [3, 4]},
                            {"tile": 0, "core": 1, "mvmu": 0, "weight_bits": 8, "node": "/fc2/Gemm",
                             "encoding": "twos", "packed": True, "shape": [3, 4]}]
    assert man["data"][0] == {"tile": 0, "addr": 100, "count": 2, "length": 3}
    assert man["nodes"][0]["nodes"] == ["/fc1/Gemm", "/fc1/Gemm", None]
    with np.load(out / "image.npz") as z:
        assert sorted(z.files) == ["data_0", "data_1", "layout_0_1_0", "mvmu_0_0_0", "mvmu_0_1_0"]
    q = load_program(out)
    assert_same(p, q)
    assert q.source == format_program(p).splitlines() and q.cores[0].lines == [4, 5, 6]
    assert q.filename == str(out / "program.s")


def test_load_from_binary_only_reattaches_provenance(tmp_path: Path) -> None:
    p = make_program()
    out = save_program(p, tmp_path / "out")
    (out / "program.s").unlink()
    q = load_program(out)
    assert_same(p, q)
    assert q.cores[0].instrs[0].node == "/fc1/Gemm" and q.source is None


def test_missing_and_corrupt_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(XbarcError, match="no such program directory"):
        load_program(tmp_path / "nope")
    out = save_program(make_program(), tmp_path / "out")
    (out / "image.npz").write_bytes(b"garbage")
    with pytest.raises(XbarcError, match=f"{out / 'image.npz'}: corrupt"):
        load_program(out)
    (out / "manifest.json").write_text("{")
    with pytest.raises(XbarcError, match=f"{out / 'manifest.json'}: not valid JSON"):
        load_program(out)
    (out / "manifest.json").unlink()
    with pytest.raises(XbarcError, match=f"{out / 'manifest.json'}: missing"):
        load_program(out)


def test_incomplete_manifest_and_bad_assembly(tmp_path: Path) -> None:
    out = save_program(make_program(), tmp_path / "out")
    man = json.loads((out / "manifest.json").read_text())
    del man["inputs"]
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(XbarcError, match=r"manifest.json: corrupt or incomplete \(KeyError"):
        load_program(out)
    (out / "program.s").write_text(".core 0 0\n    hlt\n")
    with pytest.raises(AsmError, match=r"program.s:2:5: unknown mnemonic 'hlt'; did you mean 'halt'\?"):
        load_program(out)
    (out / "program.s").unlink()
    (out / "program.bin").write_bytes(b"XBRC")
    with pytest.raises(AsmError, match=r"program.bin: truncated"):
        load_program(out)


def test_failed_save_keeps_previous_outdir_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    out = save_program(make_program(), tmp_path / "out", extra_files={"old.txt": "old"})
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(program: Program) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(files, "encode_program", broken)
    with pytest.raises(OSError, match="disk full"):
        save_program(make_program(), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_replace_restores_previous_outdir(tmp_path: Path, monkeypatch) -> None:
    out = save_program(make_program(), tmp_path / "out", extra_files={"old.txt": "old"})
    real_replace = files.os.replace
    calls = []

    def flaky(src, dst) -> None:
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", flaky)
    with pytest.raises(OSError, match="rename failed"):
        save_program(make_program(), out)
    monkeypatch.undo()
    assert (out / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_save_replaces_existing_outdir(tmp_path: Path) -> None:
    out = save_program(make_program(), tmp_path / "out", extra_files={"old.txt": "old"})
    save_program(make_program(), out)
    assert not (out / "old.txt").exists() and (out / "program.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
