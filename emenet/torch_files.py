"""Reading `torch.save` files safely: weights only, and one line naming the file when that fails.

Every checkpoint, optimizer state and foreign weight file goes through `load_torch_file`:
`torch.load(weights_only=True)` never runs code from the file, and its failures (empty,
truncated, not a torch file, a pickle of foreign objects, permissions) become an
`EMENetInputError` that says which file and what is wrong, instead of torch's advice to
retry with `weights_only=False`.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

from emenet.errors import EMENetInputError

_GLOBAL = re.compile(r"unsupported GLOBAL:? (?:GLOBAL )?([\w.]+)", re.IGNORECASE)


ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


def describe_load_failure(exc: BaseException, is_zip: bool) -> str:
    """What a failed `torch.load(weights_only=True)` means, in a few words (`is_zip`: the file
    starts like a torch.save archive)."""
    text = str(exc)
    found = _GLOBAL.search(text) if isinstance(exc, pickle.UnpicklingError) else None
    if found:
        return (f"refused to unpickle the Python object {found.group(1)} it holds; EMENet loads only tensors "
                "and plain containers (weights_only=True), and nothing in the file was run")
    if is_zip:
        return "truncated or corrupt (was it completely written or downloaded?)"
    if isinstance(exc, (pickle.UnpicklingError, EOFError, RuntimeError, IndexError, ValueError)):
        return "not a torch.save file of weights (an arbitrary pickle, or another format)"
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(exc).__name__}{': ' + first if first else ''}"


def load_torch_file(path: str | os.PathLike | io.BytesIO, what: str = "checkpoint", source: str | None = None) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)`; one-line EMENetInputError on failure.

    `what` names the kind of file in the messages ("checkpoint", "optimizer state", ...);
    `source` names an in-memory `path` (a member of an archive).

    >>> state = load_torch_file("runs/a/opt_epoch_3_OPT.pth", "optimizer state")  # doctest: +SKIP
    """
    import torch
    name = source or str(path)
    if isinstance(path, io.BytesIO):
        is_zip = path.getbuffer()[:4].tobytes() == ZIP_MAGIC
    else:
        p = Path(path)
        if p.is_dir():
            raise EMENetInputError(f"{p}: is a folder, not a {what} file")
        if not p.is_file():
            raise EMENetInputError(f"{p}: {what} not found")
        if p.stat().st_size == 0:
            raise EMENetInputError(f"{p}: {what} file is empty (0 bytes); it was never completely written")
        try:
            with open(p, "rb") as f:
                is_zip = f.read(4) == ZIP_MAGIC
        except OSError as exc:
            raise EMENetInputError(f"{p}: cannot read the {what} ({(exc.strerror or str(exc)).lower()})") from None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise EMENetInputError(f"{name}: cannot read the {what} ({(exc.strerror or str(exc)).lower()})") from None
    except Exception as exc:  # the file's content is at fault, not our code
        raise EMENetInputError(f"{name}: not a readable {what}: {describe_load_failure(exc, is_zip)}") from None
