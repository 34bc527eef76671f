"""Atomic file writing: results and checkpoints are never left half-written.

Every output goes through `atomic_path`: a temporary file in the same folder
(`.<name>.emenet-<pid>-<random>.tmp`), flushed to disk with `fsync`, then moved over the final
name with one `os.replace` (and the folder entry synced). A process killed while writing leaves
only its temporary file; the next write of that name, or `remove_stale_temporaries_in(folder)`
at the start of a run, deletes the temporaries of processes that no longer exist.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import io
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emenet.errors import EMENetInputError

# `.<name>.emenet-<pid>-<random>.tmp`, optionally followed by the final name's suffix (for
# writers that choose the format by the file name, such as cv2.VideoWriter).
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.emenet-(?P<pid>\d+)-[0-9a-f]+\.tmp(\.[A-Za-z0-9]+)?$")
# What `atomic_path` wrote before the pid was part of the name: `.<name>.<random>.tmp`.
_LEGACY_SUFFIX = ".tmp"


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def temporary_name(path: Path, keep_suffix: bool = False) -> Path:
    """The temporary file `atomic_path` writes before renaming it to `path`."""
    suffix = path.suffix if keep_suffix else ""
    return path.parent / f".{path.name}.emenet-{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}"


def is_stale_temporary(file: Path) -> bool:
    """A temporary file of ours whose writing process no longer exists."""
    m = _TEMPORARY.match(file.name)
    return m is not None and not _process_alive(int(m.group("pid")))


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Delete the temporary files a killed process left beside `path` (it cannot clean up).

    Temporaries of a process still running are kept; those written by earlier versions
    (`.<name>.<random>.tmp`, without a pid) are removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        m = _TEMPORARY.match(stale.name)
        if m is not None:
            if m.group("name") == path.name and not _process_alive(int(m.group("pid"))):
                stale.unlink(missing_ok=True)
        elif stale.name.endswith(_LEGACY_SUFFIX):
            stale.unlink(missing_ok=True)


def remove_stale_temporaries_in(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete every temporary file of ours in `folder` (and below it) left by a process that died.

    Runs call this on their output folders at the start, so an interrupted run's partial files
    do not survive a successful rerun. Returns the removed files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for file in (folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")):
        if is_stale_temporary(file):
            file.unlink(missing_ok=True)
            removed.append(file)
    return removed


def check_no_file_in_the_way(folder: str | os.PathLike) -> Path:
    """One line if a file stands where `folder` or one of its parents must be; creates nothing."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise EMENetInputError(f"{parent}: is a file, not a folder; cannot write into it")
        if parent.is_dir():
            break
    return folder


def ensure_folder(folder: str | os.PathLike) -> Path:
    """Create `folder` (and its parents); one line if a file stands where a folder must be."""
    folder = check_no_file_in_the_way(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_output_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a file name that cannot be written, before the work that produces it: a folder,
    an existing file without `overwrite`, a file standing where a parent folder must be.
    Creates nothing (a run that fails later leaves no empty folder)."""
    path = Path(path)
    if path.is_dir():
        raise EMENetInputError(f"{path}: is a folder; expected a file name to write")
    if not overwrite and path.exists():
        raise EMENetInputError(f"{path} already exists; pass --overwrite to replace it")
    check_no_file_in_the_way(path.parent)
    return path


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if not directory or exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise  # some file systems cannot sync a folder entry; a file must reach the disk
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is synced and replaces `path` in one rename.

    With `overwrite=False` an existing `path` raises EMENetInputError before anything is written.
    `keep_suffix` ends the temporary name with `path`'s suffix, for writers that pick the
    format by it. Stale temporaries of `path` left by killed processes are removed first.

    >>> with atomic_path("out/metrics.csv") as tmp:  # doctest: +SKIP
    ...     table.to_csv(tmp)
    """
    path = check_output_file(path, overwrite)
    ensure_folder(path.parent)
    remove_stale_temporaries(path)
    tmp = temporary_name(path, keep_suffix)
    try:
        with _naming(path, tmp):
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
        with _naming(path, tmp):
            yield tmp
        with _naming(path, tmp):
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(path.parent, directory=True)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _naming(path: Path, tmp: Path) -> Iterator[None]:
    """Make an OSError while writing `path` name `path`: a failed write (a full disk) names no
    file, and the temporary file's name would only puzzle the user."""
    try:
        yield
    except OSError as exc:
        if exc.errno is not None and exc.filename in (None, str(tmp), tmp):
            try:
                renamed = type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))
            except Exception:  # an OSError subclass with another signature: keep it as it is
                raise exc from None
            raise renamed from exc
        raise


def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/emenet`, by default `~/.cache/emenet`: indexes and exported graphs we can rebuild."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "emenet"


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], Any], overwrite: bool = True) -> Path:
    """Call `writer(tmp_path)` and move the result to `path` atomically."""
    with atomic_path(path, overwrite) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, overwrite: bool = True) -> Path:
    return write_atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"), overwrite)


def save_torch(path: str | os.PathLike, obj: Any, overwrite: bool = True) -> Path:
    """`torch.save(obj)` to `path` atomically.

    The object is serialised in memory and written with ordinary file writes, so a full disk
    or a read-only folder is an `OSError` naming the file (torch's own writer reports those as
    an internal RuntimeError without the cause).
    """
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_atomic(path, lambda p: p.write_bytes(buffer.getbuffer()), overwrite)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
