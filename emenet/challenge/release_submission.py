"""Test-set prediction files in the single-file form of the 3rd ABAW on (and of its multi-task challenge).

The 2nd ABAW asked for one file per video and task (`emenet.challenge.submission` writes them).
From the 3rd ABAW on, the organisers' instructions (sent to registered teams with the test set;
not archived publicly in a form we could check, see README "Which Aff-wild2 do I have?") ask for
one file per challenge whose rows name the image they predict. We write, from the per-video files:

| format | file | header | row |
| --- | --- | --- | --- |
| `abaw3` | `AU_Detection_Challenge.txt` | `image_location,AU1,...,AU26` | `<name>/<frame:05d>.jpg,0,1,...` |
| `abaw3` | `EXPR_Recognition_Challenge.txt` | `image_location,Neutral,...,Other` | `<name>/<frame:05d>.jpg,<class>` |
| `abaw3` | `VA_Estimation_Challenge.txt` | `image_location,valence,arousal` | `<name>/<frame:05d>.jpg,v,a` |
| `mtl` | `MTL_Challenge.txt` | `image,valence,arousal,expression,aus` | `<name>/<frame:05d>.jpg,v,a,e,au1,...,au12` |

`abaw3` lists every frame of every test video (like the per-video files); `mtl` lists the frames
that have a crop (s-Aff-Wild2's test images are its cropped frames).

    >>> write_release_files("submission/merged", "test_set.parquet", "submission/merged_abaw3", "abaw3")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emenet.data.annotations import read_annotation_file_with_classes
from emenet.data.mtl_annotations import MTL_HEADER
from emenet.errors import EMENetInputError
from emenet.challenge.submission import TASK_DIRS, VA_FORMAT, read_submission_file
from emenet.challenge.test_set import SUBMISSION_TASKS, TestSet, read_test_set
from emenet.io_utils import atomic_path
from emenet.tasks import TASKS, task_spec

RELEASE_FORMATS: tuple[str, ...] = ("abaw3", "mtl")
CHALLENGE_FILES: dict[str, str] = {"AU": "AU_Detection_Challenge.txt", "EXPR": "EXPR_Recognition_Challenge.txt",
                                   "VA": "VA_Estimation_Challenge.txt"}
MTL_FILE = "MTL_Challenge.txt"


def _image_column(name: str, frames: np.ndarray) -> np.ndarray:
    return np.char.add(f"{name}/", np.char.add(np.char.zfill(frames.astype(str), 5), ".jpg"))


def _rows(images: np.ndarray, values: np.ndarray, float_format: str | None) -> str:
    """`image,v1,v2,...` lines, numbers formatted like the per-video files (integers without a format)."""
    if values.ndim == 1:
        values = values[:, None]
    text = (np.char.mod(float_format, values) if float_format else values.astype(np.int64).astype(str))
    joined = text[:, 0]
    for j in range(1, text.shape[1]):
        joined = np.char.add(np.char.add(joined, ","), text[:, j])
    return "".join(f"{i},{v}\n" for i, v in zip(images, joined))


def _read(per_video_dir: Path, task: str, name: str, num_frames: int) -> tuple[np.ndarray, int]:
    path = per_video_dir / TASK_DIRS[task] / f"{name}.txt"
    values = read_submission_file(path, task, num_frames)
    classes = read_annotation_file_with_classes(path, task)[1] if TASKS[task].class_variants else 0
    return values, classes


def write_release_files(per_video_dir: str | os.PathLike, test_set: TestSet | str | os.PathLike,
                        out_dir: str | os.PathLike, release_format: str = "abaw3", overwrite: bool = False) -> list[Path]:
    """Turn per-video challenge files (e.g. `save_dir/merged`) into `release_format`'s files in `out_dir`."""
    if release_format not in RELEASE_FORMATS:
        raise EMENetInputError(f"unknown --release_format {release_format!r}; valid ones are {list(RELEASE_FORMATS)}")
    per_video_dir, out = Path(per_video_dir), Path(out_dir)
    if not isinstance(test_set, TestSet):
        test_set = read_test_set(test_set)
    if release_format == "mtl":
        return [_write_mtl(per_video_dir, test_set, out / MTL_FILE, overwrite)]
    written = []
    for task in SUBMISSION_TASKS:
        names = test_set.names(task)
        if not names:
            continue
        parts, classes = [], set()
        for name in names:
            video = test_set[name]
            values, k = _read(per_video_dir, task, name, video.num_frames)
            classes.add(k)
            parts.append(_rows(_image_column(name, np.arange(1, video.num_frames + 1)), values,
                               TASKS[task].value_format))
        columns = task_spec(task, max(classes) or None).names  # 8 expression classes when a file has `Other`
        path = out / CHALLENGE_FILES[task]
        with atomic_path(path, overwrite) as tmp:
            tmp.write_text("image_location," + ",".join(columns) + "\n" + "".join(parts))
        written.append(path)
    if not written:
        raise EMENetInputError(f"{per_video_dir}: the test set lists no names for any task")
    return written


def _write_mtl(per_video_dir: Path, test_set: TestSet, path: Path, overwrite: bool) -> Path:
    """One row per cropped frame of every test name, with all three tasks' predictions."""
    parts = []
    for name in test_set.names():
        video = test_set[name]
        missing = [t for t in SUBMISSION_TASKS if t not in video.tasks]
        if missing:
            raise EMENetInputError(f"{name}: the multi-task format needs predictions of every task, "
                                   f"but the test set does not list it for {missing}")
        rows = video.crop_frames - 1  # row k of a per-video file is frame k + 1
        va = _read(per_video_dir, "VA", name, video.num_frames)[0][rows]
        expr = _read(per_video_dir, "EXPR", name, video.num_frames)[0][rows]
        au = _read(per_video_dir, "AU", name, video.num_frames)[0][rows]
        va_text = np.char.add(np.char.add(np.char.mod(VA_FORMAT, va[:, 0]), ","), np.char.mod(VA_FORMAT, va[:, 1]))
        rest = _rows(va_text, np.column_stack([expr, au]), float_format=None)
        images = _image_column(name, video.crop_frames)
        parts.append("".join(f"{image},{line}" for image, line in zip(images, rest.splitlines(keepends=True))))
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(MTL_HEADER + "\n" + "".join(parts))
    return path
