"""Bad input at the command line: every case gives a one-line error naming the file, option or field, exit code 2,
and leaves the file system as it was (issue 12)."""

from __future__ import annotations

import errno
import json
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import isa.outputs as outputs
from compiler.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, main
from isa.errors import XbarcError

from conftest import MLP


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad") / "mlp"
    assert main(["compile", str(MLP), "-o", str(out)]) == 0
    return out


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"xbarc {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---- output paths --------------------------------------------------------------------------------------------------
def test_compile_never_replaces_a_users_folder(tmp_path: Path, capsys) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    shutil.copy(MLP, d / "m.onnx")
    (d / "sub" / "notes.txt").write_text("notes")
    before = tree(tmp_path)
    assert main(["compile", str(d / "m.onnx"), "-o", str(d)]) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err, "compile")
    assert f"{d}: exists and is not an xbarc output directory; refusing to replace it" in line
    assert tree(tmp_path) == before


def test_compile_never_replaces_a_file(tmp_path: Path, capsys) -> None:
    f = tmp_path / "results.txt"
    f.write_text("mine")
    assert main(["compile", str(MLP), "-o", str(f)]) == EXIT_USAGE
    assert "exists and is not a directory" in one_error_line(capsys.readouterr().err, "compile")
    assert tree(tmp_path) == {"results.txt": b"mine"}


def test_compile_refuses_an_output_folder_with_a_users_file(compiled: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(compiled, out)
    assert main(["compile", str(MLP), "-o", str(out)]) == 0  # recompiling over xbarc's own output is fine
    (out / "my-notes.md").write_text("keep me")
    before = tree(tmp_path)
    assert main(["compile", str(MLP), "-o", str(out)]) == EXIT_USAGE
    assert "holds files xbarc did not write (my-notes.md)" in one_error_line(capsys.readouterr().err, "compile")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("argv", [
    ["compile", str(MLP), "-o", ""],
    ["asm", "x.s", "-o", ""],
    ["search", str(MLP), "-o", ""],
])
def test_empty_output_path(argv: list[str], capsys) -> None:
    assert main(argv) == EXIT_USAGE
    assert "the output path is empty" in one_error_line(capsys.readouterr().err, argv[0])


def test_search_checks_its_output_before_searching(tmp_path: Path, capsys) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    t0 = time.perf_counter()
    assert main(["search", str(MLP), "--dataset", "digits", "--budget", "500", "-o", str(f)]) == EXIT_USAGE
    assert time.perf_counter() - t0 < 10  # refused at once, not after 500 evaluations
    assert "exists and is not a directory" in one_error_line(capsys.readouterr().err, "search")
    assert f.read_text() == "x"


def test_asm_to_a_directory_leaves_nothing_behind(tmp_path: Path, compiled: Path, capsys) -> None:
    (tmp_path / "d").mkdir()
    assert main(["asm", str(compiled / "program.s"), "-o", str(tmp_path / "d")]) == EXIT_USAGE
    assert "is a directory; -o needs a file name" in one_error_line(capsys.readouterr().err, "asm")
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "no space left on the device"),
                                        (errno.EROFS, "read-only file system")])
def test_a_failed_write_names_the_file_and_leaves_no_temp(tmp_path: Path, compiled: Path, monkeypatch, capsys,
                                                          code: int, words: str) -> None:
    target = tmp_path / "p.bin"
    target.write_bytes(b"old")
    real = outputs.os.replace

    def failing(src, dst):
        raise OSError(code, "simulated")

    monkeypatch.setattr(outputs.os, "replace", failing)
    assert main(["asm", str(compiled / "program.s"), "-o", str(target)]) == EXIT_USAGE
    monkeypatch.setattr(outputs.os, "replace", real)
    assert f"{target}: cannot write: {words}" in one_error_line(capsys.readouterr().err, "asm")
    assert tree(tmp_path) == {"p.bin": b"old"}


def test_a_full_disk_during_compile_keeps_the_previous_output(compiled: Path, tmp_path: Path, monkeypatch,
                                                              capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(compiled, out)
    before = tree(tmp_path)
    import isa.files as files

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "image.npz"))

    monkeypatch.setattr(files.np, "savez", full)
    monkeypatch.setattr(files.np, "savez_compressed", full)  # image.npz is written compressed
    assert main(["compile", str(MLP), "-o", str(out)]) == EXIT_USAGE
    assert "No space left on device" in one_error_line(capsys.readouterr().err, "compile")
    assert tree(tmp_path) == before


# ---- option values -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,option", [
    (["compile", str(MLP), "-o", "o", "--replicate", "-3"], "--replicate"),
    (["compile", str(MLP), "-o", "o", "--replicate", "0"], "--replicate"),
    (["compile", str(MLP), "-o", "o", "--crossbar-budget", "-1"], "--crossbar-budget"),
    (["run", "o", "--dataset", "digits", "--limit", "-5"], "--limit"),
    (["adc-profile", str(MLP), "--coverage", "2"], "--coverage"),
    (["adc-profile", str(MLP), "--coverage", "0"], "--coverage"),
    (["adc-profile", str(MLP), "--coverage", "nan"], "--coverage"),
    (["search", str(MLP), "-o", "o", "--budget", "-5"], "--budget"),
    (["search", str(MLP), "-o", "o", "--workers", "0"], "--workers"),
    (["search", str(MLP), "-o", "o", "--confidence", "nan"], "--confidence"),
    (["search", str(MLP), "-o", "o", "--confidence", "inf"], "--confidence"),
    (["search", str(MLP), "-o", "o", "--search-images", "-1"], "--search-images"),
    (["search", str(MLP), "-o", "o", "--max-drop", "1.5"], "--max-drop"),
    (["search", str(MLP), "-o", "o", "--max-drop", "150%"], "--max-drop"),
    (["search", str(MLP), "-o", "o", "--max-drop", "one%"], "--max-drop"),
    (["search", str(MLP), "-o", "o", "--seed", "-1"], "--seed"),
    (["search", str(MLP), "-o", "o", "--budget", "ten"], "--budget"),
])
def test_option_values_are_checked(argv: list[str], option: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "Traceback" not in err


# ---- interrupts, internal errors, --debug ------------------------------------------------------------------------
def test_ctrl_c_in_search_keeps_what_was_done(tmp_path: Path, monkeypatch, capsys) -> None:
    from compiler.search import backends

    real = backends.Evaluator.__call__
    calls = []

    def interrupted(self, batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(backends.Evaluator, "__call__", interrupted)
    out = tmp_path / "s"
    assert main(["search", str(MLP), "--dataset", "digits", "--budget", "200", "--search-images", "256",
                 "-o", str(out)]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted after" in err and "--resume" in err and "Traceback" not in err
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    best = json.loads((out / "best.json").read_text())
    assert len(log) >= 2 and "layers" in best
    assert max(r["reward"] for r in log) == max(r["reward"] for r in log if r["episode"] < len(log))


def test_an_internal_error_is_labelled_a_bug_and_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    import compiler.cli as cli

    def broken(a):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "cmd_inspect", broken)
    assert main(["inspect", "x"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError, match="boom"):
        main(["inspect", "x", "--debug"])
    monkeypatch.setenv("XBARC_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["inspect", "x"])


def test_debug_shows_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(XbarcError, match="no such program directory"):
        main(["--debug", "inspect", str(tmp_path / "nope")])


# ---- damaged output directories ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["precision.json", "model.onnx", "image.npz", "manifest.json", "program.s"])
def test_run_names_a_damaged_or_edited_output(compiled: Path, tmp_path: Path, name: str, capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(compiled, out)
    data = bytearray((out / name).read_bytes())
    data[len(data) // 2] ^= 0x20  # one flipped bit: a hand edit or a damaged copy
    (out / name).write_bytes(bytes(data))
    assert main(["run", str(out), "--dataset", "digits", "--limit", "5"]) == EXIT_USAGE
    assert f"{out / name}: damaged or edited" in one_error_line(capsys.readouterr().err, "run")


_DAMAGE = st.sampled_from(["truncate", "flip", "empty", "delete", "garbage"])
_FILES = st.sampled_from(["precision.json", "model.onnx", "image.npz", "manifest.json", "program.s", "program.bin",
                          "mapping.json", "checksums.json"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_FILES, how=_DAMAGE, where=st.floats(0, 1), rehash=st.booleans())
def test_fuzz_damaged_output_directories(compiled: Path, tmp_path_factory, name: str, how: str, where: float,
                                         rehash: bool) -> None:
    """Any damage to any file, with or without its checksum updated to match: loading and running give a result
    or an XbarcError naming a file, never another exception."""
    from compiler.driver import load_compiled
    from compiler.runner import run
    from isa.files import write_checksums
    from models.datasets import load_dataset

    out = tmp_path_factory.mktemp("fuzz") / "out"
    shutil.copytree(compiled, out)
    path = out / name
    data = path.read_bytes()
    cut = int(where * len(data))
    if how == "delete":
        path.unlink()
    else:
        new = {"truncate": data[:cut], "flip": data[:cut] + bytes([data[cut % len(data)] ^ 0xFF]) + data[cut + 1:],
               "empty": b"", "garbage": b"\x00\xff{[garbage"}[how]
        path.write_bytes(new)
    if rehash and name != "checksums.json":
        write_checksums(out)
    try:
        cm = load_compiled(out)
        x, _ = load_dataset("digits", "test")
        run(cm, {cm.program.inputs[0].name: x[:4]})
    except XbarcError as e:
        if not rehash:  # an unrecorded change is named by the checksums (or the missing file by its loader)
            assert str(out) in str(e), str(e)
    else:  # only a change the checksums record passes, or losing a file the others make up for
        optional = ("program.s", "program.bin", "mapping.json")  # either program file is complete; mapping: a report
        same = path.exists() and (path.read_bytes() == data or (name == "checksums.json" and _same_json(path, data)))
        assert rehash or (name in optional and how == "delete") or same


def _same_json(path: Path, data: bytes) -> bool:
    try:
        return json.loads(path.read_bytes()) == json.loads(data)
    except ValueError:
        return False


# ---- asm / disasm ------------------------------------------------------------------------------------------------
def test_disasm_errors_name_the_file(tmp_path: Path, capsys) -> None:
    b = tmp_path / "p.bin"
    b.write_bytes(b"XBRC")
    assert main(["disasm", str(b)]) == EXIT_USAGE
    assert one_error_line(capsys.readouterr().err, "disasm").startswith(f"xbarc disasm: error: {b}: ")
    assert main(["disasm", str(tmp_path / "none.bin")]) == EXIT_USAGE
    assert f"{tmp_path / 'none.bin'}: missing" in one_error_line(capsys.readouterr().err, "disasm")


def test_asm_disasm_round_trip_for_a_larger_chip(tmp_path: Path, capsys) -> None:
    hw = tmp_path / "big.json"
    hw.write_text(json.dumps({"name": "big", "tiles": 400}))
    src = tmp_path / "p.s"
    src.write_text(".core 300 0\n    halt\n")
    assert main(["asm", str(src), "-o", str(tmp_path / "p.bin")]) == EXIT_USAGE  # the default chip has fewer tiles
    assert "p.s:1:7: tile 300 out of range: the chip has 64 tiles" in capsys.readouterr().err
    assert main(["asm", str(src), "-o", str(tmp_path / "p.bin"), "--hardware", str(hw)]) == 0
    assert main(["disasm", str(tmp_path / "p.bin"), "-o", str(tmp_path / "q.s"), "--hardware", str(hw)]) == 0
    assert main(["asm", str(tmp_path / "q.s"), "-o", str(tmp_path / "q.bin"), "--hardware", str(hw)]) == 0
    assert (tmp_path / "q.bin").read_bytes() == (tmp_path / "p.bin").read_bytes()


def test_asm_source_that_is_not_text(tmp_path: Path, capsys) -> None:
    src = tmp_path / "p.s"
    src.write_bytes(b"\xff\xfe.core 0 0\n")
    assert main(["asm", str(src), "-o", str(tmp_path / "p.bin")]) == EXIT_USAGE
    assert f"{src}: not UTF-8 text" in one_error_line(capsys.readouterr().err, "asm")
    assert tree(tmp_path) == {"p.s": b"\xff\xfe.core 0 0\n"}
