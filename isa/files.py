"""A compiled program on disk: ``program.s``, ``program.bin``, ``image.npz``, ``manifest.json`` and
``checksums.json`` in one folder.

`save_program` writes atomically (`isa.outputs`): everything goes to a temporary folder next to ``outdir``, which
then replaces ``outdir``; a failure leaves the previous ``outdir`` intact and no temporary folder behind. It refuses
to replace a folder holding anything xbarc did not write. ``checksums.json`` lists the SHA-256 of every file written;
`load_program` verifies every present file against it, so a damaged or hand-edited output directory is named as
such instead of giving wrong results.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .assembler import assemble
from .encoding import decode_program, encode_program
from .errors import XbarcError
from .hardware import HardwareConfig
from .numerics import narrowest_int
from .outputs import check_output_dir, fix_modes, read_bytes, read_json, read_text, replace_dir, temp_dir_for
from .printer import format_program, render
from .program import MemInit, MvmuImage, Program, TensorLoc

FORMAT = "xbarc-program"
FORMAT_VERSION = 2  # 2: packed MVMUs carry a bit-line layout
ASM, BIN, IMAGE, MANIFEST = "program.s", "program.bin", "image.npz", "manifest.json"
CHECKSUMS, CHECKSUMS_FORMAT = "checksums.json", "xbarc-checksums"


# ---- saving --------------------------------------------------------------------------------------------------------
def manifest(program: Program) -> dict[str, Any]:
    """The ``manifest.json`` content of ``program``."""
    return {
        "format": FORMAT, "version": FORMAT_VERSION,
        "hw": program.hw.to_dict(),
        "inputs": [_tensor_dict(t) for t in program.inputs],
        "outputs": [_tensor_dict(t) for t in program.outputs],
        "mvmus": [{"tile": m.tile, "core": m.core, "mvmu": m.mvmu, "weight_bits": m.weight_bits, "node": m.node,
                    "encoding": m.encoding, "packed": m.layout is not None,
                   "shape": list(m.weights.shape)} for m in program.mvmus],
        "data": [{"tile": d.tile, "addr": d.addr, "count": d.count, "length": int(np.asarray(d.values).size)}
                 for d in program.data],
        "meta": program.meta,
        "nodes": [{"tile": c.tile, "core": c.core, "nodes": [i.node for i in c.instrs]} for c in program.cores],
    }


def _tensor_dict(t: TensorLoc) -> dict[str, Any]:
    return {"name": t.name, "tile": t.tile, "addr": t.addr, "length": t.length, "bits": t.bits, "frac": t.frac,
            "shape": list(t.shape), "count": t.count, "pads": list(t.pads), "fill": t.fill} | \
        ({"port": [list(f) for f in t.port]} if t.port else {})


def _narrow(values: Any) -> np.ndarray:
    """Integers in the narrowest signed type that holds them (`numerics.narrowest_int`): 8-bit weights take one
    byte per cell on disk and in memory, not eight."""
    a = np.asarray(values)
    if a.dtype.kind not in "iu":
        a = a.astype(np.int64)
    return a.astype(narrowest_int(a), copy=False)  # already narrow (compiled weights): no int64 copy


def _arrays(program: Program) -> dict[str, np.ndarray]:
    arrays = {f"mvmu_{m.tile}_{m.core}_{m.mvmu}": _narrow(m.weights) for m in program.mvmus}
    arrays.update({f"layout_{m.tile}_{m.core}_{m.mvmu}": np.asarray(m.layout, dtype=np.int16)
                   for m in program.mvmus if m.layout is not None})
    arrays.update({f"data_{i}": _narrow(d.values) for i, d in enumerate(program.data)})
    return arrays


def image_bytes(program: Program) -> bytes:
    """The ``image.npz`` of ``program``: every MVMU's weights, layout and data in their narrowest integer type,
    deflated (zlib level 6, `np.savez_compressed`). VGG-16's random 8-bit weights deflate to 0.79 of a byte per
    weight at levels 1, 6 and 9 alike (35 MB/s), bz2 to 0.82 (9 MB/s), lzma to 0.79 (0.9 MB/s): the weights
    are near their entropy, so the fastest adequate codec is kept (`benchmarks/save_load_scale.py`)."""
    image = io.BytesIO()
    np.savez_compressed(image, **_arrays(program))  # type: ignore[arg-type]
    return image.getvalue()


def program_files(program: Program, folder: str = "") -> dict[str, bytes]:
    """The files of ``program`` (assembly, binary, image, manifest) by name; with ``folder``, under it and with
    the folder's own ``checksums.json``, so `load_program` reads the folder as a program directory (a round of a
    model compiled in reprogramming rounds)."""
    files = {ASM: format_program(program, provenance=True).encode(), BIN: encode_program(program),
             IMAGE: image_bytes(program), MANIFEST: (json.dumps(manifest(program), indent=1) + "\n").encode()}
    if not folder:
        return files
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files[CHECKSUMS] = (json.dumps({"format": CHECKSUMS_FORMAT, "sha256": sums}, indent=1) + "\n").encode()
    return {f"{folder}/{name}": data for name, data in files.items()}


def _write_all(program: Program, tmp: Path, extra_files: dict[str, str | bytes]) -> dict[str, str]:
    """Write every file; returns the SHA-256 of each, hashed from the bytes in memory (not read back)."""
    sums = {}
    for name, content in {**program_files(program), **extra_files}.items():
        data = content if isinstance(content, bytes) else content.encode()
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    return sums


def save_program(program: Program, outdir: str | Path, extra_files: dict[str, str | bytes] | None = None) -> Path:
    """Write ``program`` (and ``extra_files``: name -> text or bytes) to ``outdir``, atomically; returns it.

    XbarcError (before anything is written) when ``outdir`` is a file or a folder holding files xbarc did not write.
    """
    out = check_output_dir(outdir, written_files)
    tmp = temp_dir_for(out)
    try:
        write_checksums(tmp, _write_all(program, tmp, extra_files or {}))
        fix_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out)
    return out


def _files_under(root: Path) -> list[str]:
    return sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())


def write_checksums(root: Path, known: dict[str, str] | None = None) -> None:
    """Record the current content of every file under ``root`` as what xbarc wrote there (``checksums.json``);
    ``known``: digests of files just written from memory (not read back).

    `save_program` calls it; call it yourself only after a deliberate edit of an output directory (tests do, to
    reach the loaders' own checks of malformed content)."""
    known = known or {}
    sums = {name: known[name] if name in known else file_sha256(root / name) for name in _files_under(root)
            if name != CHECKSUMS and not name.startswith(".")}
    (root / CHECKSUMS).write_text(json.dumps({"format": CHECKSUMS_FORMAT, "sha256": sums}, indent=1) + "\n")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def written_files(outdir: Path) -> list[str] | None:
    """The files xbarc recorded writing in ``outdir`` (from its checksums), or None if it is not an xbarc output."""
    doc = _checksums(outdir)
    if doc is None:
        return None
    return [*doc, CHECKSUMS]


def _checksums(outdir: Path) -> dict[str, str] | None:
    path = outdir / CHECKSUMS
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != CHECKSUMS_FORMAT or not isinstance(doc.get("sha256"), dict):
        return None
    return {str(k): str(v) for k, v in doc["sha256"].items()}


def verify_checksums(outdir: str | Path) -> None:
    """XbarcError naming the first file of ``outdir`` whose content differs from what xbarc wrote there."""
    out = Path(outdir)
    sums = _checksums(out)
    if sums is None:
        raise XbarcError(f"{out / CHECKSUMS}: missing or unreadable: {out} was not written by this version of "
                         f"`xbarc compile`, or is damaged; compile again")
    for name, digest in sums.items():
        path = out / name
        if path.is_file() and file_sha256(path) != digest:
            raise XbarcError(f"{path}: damaged or edited since `xbarc compile` wrote it (its SHA-256 differs from "
                             f"{CHECKSUMS}); compile again instead of editing an output directory")


# ---- loading -------------------------------------------------------------------------------------------------------
def load_program(outdir: str | Path) -> Program:
    """The `Program` saved in ``outdir``; XbarcError naming the path when a file is missing or corrupt."""
    out = Path(outdir)
    if not out.is_dir():
        raise XbarcError(f"{out}: no such program directory")
    verify_checksums(out)
    man = _read_manifest(out / MANIFEST)
    hw = _guard(out / MANIFEST, lambda: HardwareConfig.from_dict(man["hw"], f"{out / MANIFEST}: hw"))
    program = _load_code(out, hw, man)
    _guard(out / MANIFEST, lambda: _fill_records(program, man, _read_arrays(out / IMAGE)))
    return program


def _guard(path: Path, fn: Any) -> Any:
    """``fn()``, with malformed-content errors turned into an XbarcError naming ``path``."""
    try:
        return fn()
    except XbarcError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise XbarcError(f"{path}: corrupt or incomplete ({type(e).__name__}: {e})") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    man = read_json(path)
    if not isinstance(man, dict) or man.get("format") != FORMAT or man.get("version") != FORMAT_VERSION:
        raise XbarcError(f"{path}: not an {FORMAT} version {FORMAT_VERSION} manifest")
    return man


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise XbarcError(f"{path}: missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a compressed member damaged
        raise XbarcError(f"{path}: corrupt ({e or type(e).__name__})") from None


def _load_code(out: Path, hw: HardwareConfig, man: dict[str, Any]) -> Program:
    """The code of ``program.s`` if present (source lines known), else of ``program.bin`` plus manifest nodes.

    Fast path: ``program.bin`` decoded, its nodes from the manifest, and ``program.s`` taken as its source text
    when that text is exactly the binary's canonical print (`printer.render`, what `save_program` writes): the
    same records as assembling it, without parsing it (76 of VGG-16's 81 s of loading went to the parser).
    Any other ``program.s`` (a deliberate edit) is assembled, as is one beside an unreadable binary."""
    asm, binary = out / ASM, out / BIN
    if not asm.exists() and not binary.exists():
        raise XbarcError(f"{out}: neither {ASM} nor {BIN} present")
    text = read_text(asm) if asm.exists() else None
    try:
        program = _decode_with_nodes(out, binary, hw, man) if binary.exists() else None
    except XbarcError:
        if text is None:
            raise
        program = None
    if text is None:
        assert program is not None
        return program
    if program is not None and _attach_text(program, text, str(asm)):
        return program
    return assemble(text, str(asm), hw)


def _decode_with_nodes(out: Path, binary: Path, hw: HardwareConfig, man: dict[str, Any]) -> Program:
    program = decode_program(read_bytes(binary), hw, str(binary))
    _guard(out / MANIFEST, lambda: _attach_nodes(program, man["nodes"]))
    return program


def _attach_text(program: Program, text: str, filename: str) -> bool:
    """Record ``text`` as ``program``'s source (lines, line of each pc, file name) if it is the program's canonical
    print; False (nothing changed) otherwise."""
    lines, pc_lines = render(program, provenance=True)
    if len(text) != sum(len(ln) + 1 for ln in lines) or "\n".join(lines) + "\n" != text:
        return False
    program.source, program.filename = lines, filename
    for c, at in zip(program.cores, pc_lines):
        c.lines = at
    return True


def _attach_nodes(program: Program, nodes: list[dict[str, Any]]) -> None:
    by_core = {(n["tile"], n["core"]): n["nodes"] for n in nodes}
    for c in program.cores:
        names = by_core.get((c.tile, c.core), [])
        c.instrs = [i.with_node(names[pc] if pc < len(names) else None) for pc, i in enumerate(c.instrs)]


def _fill_records(program: Program, man: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    program.inputs = [_tensor(t) for t in man["inputs"]]
    program.outputs = [_tensor(t) for t in man["outputs"]]
    program.meta = man["meta"]
    for m in man["mvmus"]:
        key = f"{m['tile']}_{m['core']}_{m['mvmu']}"
        layout = arrays[f"layout_{key}"].astype(np.int64) if m.get("packed") else None
        program.mvmus.append(MvmuImage(m["tile"], m["core"], m["mvmu"], arrays[f"mvmu_{key}"], m["weight_bits"],
                                       m["node"], m.get("encoding", "twos"), layout))
    for i, d in enumerate(man["data"]):
        program.data.append(MemInit(d["tile"], d["addr"], arrays[f"data_{i}"].astype(np.int64), d["count"]))


def _tensor(t: dict[str, Any]) -> TensorLoc:
    return TensorLoc(t["name"], t["tile"], t["addr"], t["length"], t["bits"], t["frac"], tuple(t["shape"]),
                     t.get("count", 0), tuple(t.get("pads", (0, 0, 0, 0))), t.get("fill", 0),
                     tuple(tuple(f) for f in t.get("port", ())))
