"""Writing outputs safely: one file or one output directory at a time, atomically, never over a user's files.

Rules every command follows (the CLI and `save_program` use these functions, nothing else writes):

- An output path is checked **before** any work starts (`check_output_file`, `check_output_dir`): an empty path, a
  file where a directory is wanted (or the reverse), an unwritable or read-only location, or a directory holding
  anything xbarc did not write is refused with a message naming the path.
- A single file is written to a temporary file beside it and renamed over it (`write_file`); a failure (disk
  full, read-only file system, a signal) removes the temporary file and leaves any previous file as it was.
- An output directory is written to a temporary directory beside it and then swapped in (`replace_dir`). On Linux
  the swap is one ``renameat2(RENAME_EXCHANGE)`` call, so at every instant the path holds the complete old or the
  complete new output; elsewhere two renames, and a kill between them leaves the old output in a hidden
  ``.NAME.tmp-*.old`` folder that the next write (or load) of that directory moves back.
- Temporary folders carry the writer's pid; folders of writers that no longer run are removed by the next write.
- New files and folders get the permissions the umask gives (``mkstemp``/``mkdtemp`` alone would give 0600/0700).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import XbarcError

OWNER = ".xbarc-writer"   # inside a temporary folder: the pid of the process writing it
_TMP = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fs_error(path: Path, e: OSError, doing: str = "cannot write") -> XbarcError:
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        reason = "no space left on the device"
    elif e.errno == errno.EROFS:
        reason = "read-only file system"
    return XbarcError(f"{path}: {doing}: {reason}")


def _require_path(path: str | Path, what: str) -> Path:
    if str(path).strip() == "":
        raise XbarcError(f"{what}: the output path is empty")
    return Path(path)


def check_output_file(path: str | Path, what: str = "-o") -> Path:
    """``path`` as a file xbarc may write: not empty, not a directory, in a folder that exists or can be made."""
    p = _require_path(path, what)
    if p.is_dir():
        raise XbarcError(f"{p}: is a directory; {what} needs a file name")
    _check_parent(p)
    return p


def _check_parent(p: Path) -> None:
    parent = p.parent if str(p.parent) else Path(".")
    for anc in [parent, *parent.parents]:  # the nearest existing ancestor must be a writable folder
        if anc.exists():
            if not anc.is_dir():
                raise XbarcError(f"{p}: cannot write: {anc} is not a directory")
            if not os.access(anc, os.W_OK | os.X_OK):
                raise XbarcError(f"{p}: cannot write: {anc} is not writable")
            return


def write_file(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file beside it, then a rename); returns the path."""
    p = check_output_file(path)
    raw = data.encode() if isinstance(data, str) else data
    tmp: str | None = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}{_TMP}")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
        tmp = None
    except OSError as e:
        raise _fs_error(p, e) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return p


def check_output_dir(path: str | Path, is_ours: Callable[[Path], list[str] | None], what: str = "-o") -> Path:
    """``path`` as an output directory xbarc may (re)write: absent, empty, or one whose every entry xbarc wrote.

    ``is_ours(dir)`` returns the relative paths that xbarc recorded writing there, or None when the folder is not
    an xbarc output at all. Leftovers of an interrupted earlier write are recovered or removed first.
    """
    p = _require_path(path, what)
    recover(p)
    if p.exists() and not p.is_dir():
        raise XbarcError(f"{p}: exists and is not a directory; refusing to replace it (choose another {what})")
    _check_parent(p)
    if not p.exists():
        return p
    entries = sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file() or f.is_symlink())
    if not entries:
        return p
    written = is_ours(p)
    if written is None:
        raise XbarcError(f"{p}: exists and is not an xbarc output directory; refusing to replace it "
                         f"(it holds {_some(entries)}; choose another {what} or remove it)")
    foreign = [e for e in entries if e not in set(written)]
    if foreign:
        raise XbarcError(f"{p}: holds files xbarc did not write ({_some(foreign)}); refusing to replace it "
                         f"(move them out or choose another {what})")
    return p


def _some(names: list[str], k: int = 3) -> str:
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def temp_dir_for(out: Path) -> Path:
    """A new temporary folder beside ``out``, marked with this process's pid."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP}", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / OWNER).write_text(str(os.getpid()))
    except OSError as e:
        raise _fs_error(out, e) from None
    return tmp


def fix_modes(root: Path) -> None:
    """Give every file and folder under ``root`` the permissions the umask gives."""
    mask = _umask()
    for f in root.rglob("*"):
        os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~mask)


def replace_dir(tmp: Path, out: Path) -> None:
    """Swap the complete folder ``tmp`` in as ``out`` and remove what ``out`` held; ``tmp`` is gone after."""
    (tmp / OWNER).unlink(missing_ok=True)
    try:
        if out.exists() and _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old output
            return
        old = tmp.with_name(tmp.name + ".old")
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            if old.exists() and not out.exists():
                os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _fs_error(out, e) from None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _renameat2() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
    return fn


def recover(out: Path) -> None:
    """Undo an interrupted write of ``out``: restore a hidden old copy if ``out`` is gone, and remove temporary
    folders whose writer no longer runs."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return
    for tmp in _temps(parent, out.name):
        if tmp.name.endswith(".old"):
            if not out.exists():
                os.replace(tmp, out)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        elif not _writer_alive(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _temps(parent: Path, name: str) -> Iterable[Path]:
    try:
        return sorted(f for f in parent.iterdir() if f.name.startswith(f".{name}{_TMP}") and f.is_dir())
    except OSError:
        return []


def _writer_alive(tmp: Path) -> bool:
    try:
        pid = int((tmp / OWNER).read_text())
    except (OSError, ValueError):
        return False  # no owner mark: a finished swap's leftover or not ours to keep
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_bytes(path: str | Path) -> bytes:
    """The bytes of ``path``; XbarcError naming it when it is missing or unreadable."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise XbarcError(f"{path}: missing") from None
    except IsADirectoryError:
        raise XbarcError(f"{path}: is a directory, not a file") from None
    except OSError as e:
        raise _fs_error(Path(path), e, "cannot read") from None


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; XbarcError naming it when it is missing, unreadable or not UTF-8."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise XbarcError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def read_json(path: Path, what: str = "") -> object:
    """The JSON document in ``path``; XbarcError naming the file when it is missing, empty or malformed."""
    text = read_text(path)
    if not text.strip():
        raise XbarcError(f"{path}: empty{what}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise XbarcError(f"{path}: not valid JSON ({e})") from None
