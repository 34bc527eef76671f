"""A tiny world to break (data, a checkpoint, a video, images) and ways to make the disk fail.

`build_world(root)` writes a 2-video synthetic Aff-wild2 tree, a random EMENet-V checkpoint, a
short video and a set of broken files. `fail_writes_under(monkeypatch, folder, code, at)`
makes the file system fail inside `folder` as a real one would: at "open" (creating a file or
folder: a read-only file system, a permission) or at "flush" (a full disk reports ENOSPC when
the data is written out).
"""
from __future__ import annotations

import errno
import io
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class World:
    root: Path
    data: Path            # synthetic Aff-wild2 root (1 train, 1 validation video)
    checkpoint: Path      # random EMENet-V checkpoint
    video: Path           # a short video with one face
    crop: Path            # a good 112x112 face crop (JPEG)

    def file(self, name: str) -> Path:
        return self.root / "bad" / name


def _truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


class _Shell:  # unpickling this runs a shell command: what a malicious checkpoint does
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def build_world(root: Path) -> World:
    import torch

    import emenet
    from emenet.data.synth import generate_synthetic_dataset
    data = root / "synth"
    generate_synthetic_dataset(data, num_videos=2, seed=3, min_frames=30, max_frames=36, two_person_videos=0,
                               num_test_videos=0, overwrite=True, progress=False, num_workers=1)
    torch.manual_seed(0)
    checkpoint = emenet.save_checkpoint(root / "model.pth", emenet.create_model("emenet_v"), 1)
    video = root / "clip.mp4"
    shutil.copy(sorted((data / "videos").rglob("*.mp4"))[0], video)
    (root / "batch").mkdir()  # a folder of videos for batch prediction
    shutil.copy(video, root / "batch" / "clip.mp4")
    crop = root / "crop.jpg"
    shutil.copy(sorted((data / "cropped_aligned").rglob("00001.jpg"))[0], crop)

    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.pth").write_bytes(b"")
    (bad / "garbage.pth").write_bytes(b"this is not a checkpoint\n" * 20)
    (bad / "truncated.pth").write_bytes(_truncated(checkpoint.read_bytes()))
    (bad / "folder.pth").mkdir()
    buffer = io.BytesIO()
    pickle.dump({"state_dict": _Shell(root / "PWNED")}, buffer, protocol=2)
    (bad / "malicious.pth").write_bytes(buffer.getvalue())
    import argparse
    torch.save({"state_dict": {}, "epoch": 1, "args": argparse.Namespace(lr=1)}, bad / "foreign_object.pth")
    torch.save({"weights": {}, "epoch": 1}, bad / "no_state_dict.pth")
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    torch.save({"state_dict": {k: v for k, v in state.items() if k != "tmodels.1.decoder.weight"}, "epoch": 1},
               bad / "no_decoder.pth")
    torch.save({"state_dict": {**state, "tmodels.0.decoder.bias": torch.zeros(3)}, "epoch": 1},
               bad / "wrong_shape.pth")

    (bad / "empty.jpg").write_bytes(b"")
    (bad / "garbage.jpg").write_bytes(b"\x00garbage, not an image")
    (bad / "truncated.jpg").write_bytes(_truncated(crop.read_bytes(), 0.6))
    ok, png = cv2.imencode(".png", cv2.imread(str(crop)))
    (bad / "truncated.png").write_bytes(_truncated(png.tobytes(), 0.7))
    (bad / "folder.jpg").mkdir()
    cv2.imwrite(str(bad / "wall.png"), np.full((240, 320, 3), 200, np.uint8))  # a photo without a face

    (bad / "empty.mp4").write_bytes(b"")
    (bad / "garbage.mp4").write_bytes(b"not a video " * 100)
    (bad / "truncated.mp4").write_bytes(_truncated(video.read_bytes(), 0.3))
    (bad / "no_videos").mkdir()
    (bad / "no_videos" / "notes.txt").write_text("nothing to see")
    (bad / "a_file").write_text("a file where a folder is expected\n")
    return World(root, data, checkpoint, video, crop)


def _inside(path, folder: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(folder.resolve())
    except (TypeError, ValueError, OSError):
        return False


def fail_writes_under(monkeypatch, folder: Path, code: int, at: str = "open") -> None:
    """Make writing inside `folder` fail with OSError(`code`) at "open" or at "flush"."""
    folder = Path(folder)
    if at == "open":
        real_open, real_mkdir = os.open, os.mkdir

        def refusing_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _inside(path, folder):
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            return real_open(path, flags, *args, **kwargs)

        def refusing_mkdir(path, *args, **kwargs):
            if _inside(path, folder) and Path(path).resolve() != folder.resolve():
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        monkeypatch.setattr(os, "mkdir", refusing_mkdir)
    elif at == "flush":
        import emenet.io_utils as io_utils
        real_fsync = io_utils._fsync

        def failing_fsync(path, directory=False):
            if not directory and _inside(path, folder):
                raise OSError(code, os.strerror(code))  # like a failed write: no file name
            return real_fsync(path, directory)

        monkeypatch.setattr(io_utils, "_fsync", failing_fsync)
    else:
        raise ValueError(at)


def make_unreadable(monkeypatch, path: Path) -> None:
    """`path` cannot be opened for reading: chmod 000, or (root reads anything) a simulated EACCES."""
    if os.geteuid() != 0:
        path.chmod(0)  # a file in a temporary folder: deleting it needs no permission on it
        return
    import builtins
    real_open = builtins.open
    target = path.resolve()

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(os.fsdecode(file)).resolve() == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    monkeypatch.setattr(io, "open", refusing_open)


def leftovers(folder: Path) -> list[Path]:
    """Temporary files anywhere below `folder`."""
    return sorted(p for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name)


ENOSPC, EROFS, EACCES = errno.ENOSPC, errno.EROFS, errno.EACCES
