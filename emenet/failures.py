"""Which exceptions are the user's or the machine's doing, and the one line that says so.

Entry points print `error: <line>` and exit 2 for these; anything else is a bug in EMENet and
keeps its traceback. Covered:

- `EMENetInputError`: a mistake the package detected (bad file, bad option, refused overwrite);
- `OSError` and its families: missing files, permissions, read-only file systems, a full disk,
  a file where a folder must be, a folder where a file must be, ...;
- decode errors of FFmpeg (PyAV);
- running out of memory, and a DataLoader worker killed by the system;
- any of these raised inside a DataLoader worker process, which torch re-raises in the main
  process wrapped in "Caught ... in DataLoader worker process N. Original Traceback ...":
  they come out as the same line as in the main process.
"""
from __future__ import annotations

import errno
import re

from emenet.errors import EMENetInputError

# What to add to the system's words for the failures a user can do something about.
_HINTS = {
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EROFS: "read-only file system; choose a writable output folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a file stands where a folder is expected",
    errno.EISDIR: "is a folder; expected a file",
    errno.EEXIST: "already exists (and is in the way)",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer workers",
    errno.EIO: "input/output error from the device",
}
_WORKER_WRAPPER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\s*\nOriginal Traceback", re.DOTALL)
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\] (.+?)(?:: '(.*)')?")  # how str(OSError) reads
_WORKER_KILLED = re.compile(r"DataLoader worker \(pid\(?s?\)? [^)]*\) (is killed by signal|exited unexpectedly)")


def unwrap_worker_message(text: str) -> str:
    """The original exception's message inside torch's DataLoader-worker wrapper (else `text`).

    The wrapper's last line reads `<module>.<Class>: <message>`; that message is returned.
    """
    if not _WORKER_WRAPPER.match(text):
        return text
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    for i in range(len(lines) - 1, 0, -1):
        head, sep, message = lines[i].partition(": ")
        if sep and re.fullmatch(r"[\w.]+", head) and not lines[i].startswith(" "):
            return "\n".join([message, *lines[i + 1:]]).strip()
    return lines[-1].strip()


def describe_os_error(exc: OSError) -> str:
    """`<file>: <what went wrong>` for an OSError (the file is named whenever the system names it)."""
    if exc.errno is None and exc.args and isinstance(exc.args[0], str):  # re-raised from a worker: text only
        text = unwrap_worker_message(exc.args[0])
        found = _ERRNO_TEXT.fullmatch(text)
        if found is None:
            return text
        return describe_os_error(OSError(int(found.group(1)), found.group(2), found.group(3)))
    reason = _HINTS.get(exc.errno) or (exc.strerror or str(exc)).lower()
    files = [f for f in (exc.filename, getattr(exc, "filename2", None)) if f]
    if not files:
        return reason
    return f"{' -> '.join(str(f) for f in files)}: {reason}"


def failure_message(exc: BaseException) -> str | None:
    """The one line for a user-caused or environment failure; None for a bug (keep the traceback)."""
    if isinstance(exc, EMENetInputError):
        return unwrap_worker_message(str(exc))
    try:
        import av.error
        if isinstance(exc, av.error.FFmpegError):
            where = getattr(exc, "filename", None)
            what = (getattr(exc, "strerror", None) or unwrap_worker_message(str(exc))).lower()
            if getattr(exc, "errno", None) in _HINTS:  # a system failure reported through FFmpeg
                what = _HINTS[exc.errno]
            elif not isinstance(exc, OSError):
                what = f"cannot decode ({what})"
            return f"{where}: {what}" if where else what
    except ImportError:  # pragma: no cover - av is a dependency
        pass
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller --batch_size (or --num_workers 0)"
    text = str(exc)
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA)
        return f"out of GPU memory; try a smaller --batch_size ({text.splitlines()[0] if text else ''})"
    if isinstance(exc, RuntimeError) and _WORKER_KILLED.search(text):
        return (f"{text.splitlines()[0]}; the system probably ran out of memory: try --num_workers 0 "
                "or a smaller --batch_size")
    return None
