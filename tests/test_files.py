"""Saving and loading a program folder: round trip, fallbacks, corrupt inputs and atomic replacement."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

import isa.files as files
from isa import numerics as nx
import isa.outputs as outputs
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


def tamper(out: Path, name: str, content: str | bytes | None) -> None:
    """Write (or, with None, delete) one file of ``out`` and record its new checksum, so that the loaders' own
    checks of malformed content are reached (an unrecorded edit is caught by the checksums first)."""
    path = out / name
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    files.write_checksums(out)


def assert_same(a: Program, b: Program) -> None:
    assert a.hw == b.hw and a.inputs == b.inputs and a.outputs == b.outputs and a.meta == b.meta
    assert [(c.tile, c.core, c.instrs) for c in a.cores] == [(c.tile, c.core, c.instrs) for c in b.cores]
    for m, n in zip(a.mvmus, b.mvmus, strict=True):
        assert (m.tile, m.core, m.mvmu, m.weight_bits, m.node) == (n.tile, n.core, n.mvmu, n.weight_bits, n.node)
        assert np.array_equal(m.weights, n.weights)  # stored and loaded in the narrowest integer type that fits
        assert n.weights.dtype == nx.narrowest_int(np.asarray(m.weights))
        assert (m.layout is None) == (n.layout is None)
        assert m.layout is None or np.array_equal(m.layout, n.layout)
    for d, e in zip(a.data, b.data, strict=True):
        assert (d.tile, d.addr, d.count) == (e.tile, e.addr, e.count) and np.array_equal(d.values, e.values)


def test_save_load_round_trip(tmp_path: Path) -> None:
    p = make_program()
    out = save_program(p, tmp_path / "out", extra_files={"notes.txt": "hi", "sub/raw.bin": b"\x00\x01"})
    assert sorted(x.name for x in out.iterdir()) == ["checksums.json", "image.npz", "manifest.json", "notes.txt",
                                                      "program.bin", "program.s", "sub"]
    sums = json.loads((out / "checksums.json").read_text())["sha256"]
    assert sorted(sums) == ["image.npz", "manifest.json", "notes.txt", "program.bin", "program.s", "sub/raw.bin"]
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
    tamper(out, "image.npz", b"garbage")
    with pytest.raises(XbarcError, match=f"{out / 'image.npz'}: corrupt"):
        load_program(out)
    tamper(out, "manifest.json", "{")
    with pytest.raises(XbarcError, match=f"{out / 'manifest.json'}: not valid JSON"):
        load_program(out)
    tamper(out, "manifest.json", "")
    with pytest.raises(XbarcError, match=f"{out / 'manifest.json'}: empty"):
        load_program(out)
    tamper(out, "manifest.json", None)
    with pytest.raises(XbarcError, match=f"{out / 'manifest.json'}: missing"):
        load_program(out)


@pytest.mark.parametrize("name", ["image.npz", "manifest.json", "program.s", "program.bin", "notes.txt"])
def test_an_edited_or_damaged_file_is_named_by_the_checksums(tmp_path: Path, name: str) -> None:
    out = save_program(make_program(), tmp_path / "out", extra_files={"notes.txt": "hi"})
    data = (out / name).read_bytes()
    (out / name).write_bytes(data[: len(data) // 2])  # truncated, e.g. a full disk or a copy that was cut short
    with pytest.raises(XbarcError, match=f"{out / name}: damaged or edited"):
        load_program(out)


def test_a_folder_without_checksums_is_refused(tmp_path: Path) -> None:
    out = save_program(make_program(), tmp_path / "out")
    (out / "checksums.json").unlink()
    with pytest.raises(XbarcError, match="checksums.json: missing or unreadable"):
        load_program(out)


def test_incomplete_manifest_and_bad_assembly(tmp_path: Path) -> None:
    out = save_program(make_program(), tmp_path / "out")
    man = json.loads((out / "manifest.json").read_text())
    del man["inputs"]
    tamper(out, "manifest.json", json.dumps(man))
    with pytest.raises(XbarcError, match=r"manifest.json: corrupt or incomplete \(KeyError"):
        load_program(out)
    tamper(out, "program.s", ".core 0 0\n    hlt\n")
    with pytest.raises(AsmError, match=r"program.s:2:5: unknown mnemonic 'hlt'; did you mean 'halt'\?"):
        load_program(out)
    tamper(out, "program.s", None)
    tamper(out, "program.bin", b"XBRC")
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


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_failed_replace_restores_previous_outdir(tmp_path: Path, monkeypatch, exchange: bool) -> None:
    out = save_program(make_program(), tmp_path / "out", extra_files={"old.txt": "old"})
    if not exchange:
        monkeypatch.setattr(outputs, "_renameat2", lambda: None)
    real_replace = outputs.os.replace
    calls = []

    def flaky(src, dst) -> None:
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:
            raise OSError(5, "rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: (_ for _ in ()).throw(OSError(5, "rename failed"))
                        if exchange else False)
    with pytest.raises(XbarcError, match="rename failed"):
        save_program(make_program(), out)
    monkeypatch.undo()
    assert (out / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_kill_between_the_two_renames_is_recovered(tmp_path: Path) -> None:
    out = save_program(make_program(), tmp_path / "out", extra_files={"old.txt": "old"})
    hidden = tmp_path / ".out.tmp-killed.old"  # what the fallback leaves when killed after its first rename
    out.rename(hidden)
    (tmp_path / ".out.tmp-dead").mkdir()  # a killed writer's temporary folder, with a pid that no longer runs
    (tmp_path / ".out.tmp-dead" / outputs.OWNER).write_text("999999999")
    save_program(make_program(), out)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and not (out / "old.txt").exists()


def test_refuses_to_replace_what_xbarc_did_not_write(tmp_path: Path) -> None:
    user = tmp_path / "d"
    (user / "sub").mkdir(parents=True)
    (user / "m.onnx").write_bytes(b"model")
    (user / "sub" / "notes.txt").write_text("notes")
    with pytest.raises(XbarcError, match="not an xbarc output directory; refusing to replace it"):
        save_program(make_program(), user)
    assert (user / "m.onnx").read_bytes() == b"model" and (user / "sub" / "notes.txt").read_text() == "notes"
    f = tmp_path / "file"
    f.write_text("keep")
    with pytest.raises(XbarcError, match="exists and is not a directory"):
        save_program(make_program(), f)
    assert f.read_text() == "keep"
    out = save_program(make_program(), tmp_path / "out")
    (out / "mine.txt").write_text("a user's file inside an output directory")
    with pytest.raises(XbarcError, match=r"holds files xbarc did not write \(mine.txt\)"):
        save_program(make_program(), out)
    assert (out / "mine.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "file", "out"]
    empty = tmp_path / "empty"
    empty.mkdir()
    save_program(make_program(), empty)  # an empty folder is fine


def test_outputs_get_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = save_program(make_program(), tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "program.s").stat().st_mode) == 0o644


def test_save_replaces_existing_outdir(tmp_path: Path) -> None:
    out = save_program(make_program(), tmp_path / "out", extra_files={"old.txt": "old"})
    save_program(make_program(), out)
    assert not (out / "old.txt").exists() and (out / "program.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_binary_fast_path_gives_the_assembled_program(tmp_path: Path, monkeypatch) -> None:
    """Loading decodes program.bin and takes program.s as its source without parsing it when the text is the
    binary's canonical print: the same records, lines and provenance as assembling program.s."""
    p = make_program()
    out = save_program(p, tmp_path / "out")
    slow = assemble((out / "program.s").read_text(), str(out / "program.s"), p.hw)
    monkeypatch.setattr(files, "assemble", lambda *a: pytest.fail("program.s was parsed"))
    q = load_program(out)
    assert [c.instrs for c in q.cores] == [c.instrs for c in slow.cores]
    assert [c.lines for c in q.cores] == [c.lines for c in slow.cores]
    assert (q.source, q.filename) == (slow.source, slow.filename)


def test_an_edited_program_s_is_assembled_and_wins_over_the_binary(tmp_path: Path) -> None:
    out = save_program(make_program(), tmp_path / "out")
    text = (out / "program.s").read_text().replace("n=10, count=1", "n=9, count=1")
    tamper(out, "program.s", text)
    q = load_program(out)
    assert q.cores[0].instrs[1].n == 9 and q.source == text.splitlines()
    tamper(out, "program.bin", b"XBRC")  # a broken binary beside a readable program.s: the text is used
    assert load_program(out).cores[0].instrs[1].n == 9
