"""Rewrite a synthetic 2nd ABAW dataset into the layout of a later Aff-wild2 release.

`emenet synth --release` writes the 2nd ABAW layout first (`emenet.data.synth`), then moves and
rewrites its annotation files here, so every reader of `emenet.data.layouts` is exercised on data
that was made the same way:

- `abaw3`, `abaw5`, `abaw6`: the challenge folders of the 3rd ABAW on under the archive folder of
  that release; expression files get the 8-class header and a few runs of frames labelled `Other`
  (class 7); `abaw5` and `abaw6` also move some videos' crops to a second crops folder, as the
  releases that added videos did; `abaw6` spells the expression folder `EXPR_Recognition_Challenge`.
- `mtl`: the multi-task challenge's two files (s-Aff-Wild2), a sparse sample of each train and
  validation video's frames with all three tasks' labels; the crops of frames not sampled are
  removed, as in the distributed images.
The test videos keep their crops and lists (`abaw2_test_set/`); their ground truth gets the same
expression classes as the training files.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from emenet.data.annotations import read_annotation_file
from emenet.data.layouts import MTL_FILES
from emenet.data.mtl_annotations import MTL_HEADER
from emenet.errors import EMENetInputError
from emenet.tasks import EXPR_NAMES, EXPR_NAMES_WITH_OTHER, TASKS

SYNTH_RELEASES: tuple[str, ...] = ("abaw2", "abaw3", "abaw5", "abaw6", "mtl")
# The folder each release's annotation archive unpacks to.
ARCHIVE_FOLDERS: dict[str, str] = {"abaw3": "Third ABAW Annotations", "abaw5": "5th_ABAW_Annotations",
                                   "abaw6": "6th ABAW Annotations", "mtl": "MTL_Challenge"}
CHALLENGE_FOLDERS: dict[str, str] = {"AU": "AU_Detection_Challenge", "EXPR": "EXPR_Classification_Challenge",
                                     "VA": "VA_Estimation_Challenge"}
# The folder of newly added videos' crops in the releases that added videos.
NEW_CROPS_FOLDER = "cropped_aligned_new_50_vids"
OTHER_CLASS = len(EXPR_NAMES)  # 7
# Every how many crop frames the multi-task sample keeps one.
MTL_FRAME_STEP = 3


def release_entries(release: str) -> tuple[str, ...]:
    """What `convert_release` adds to the output folder (removed again by `--overwrite`)."""
    return tuple(v for k, v in ARCHIVE_FOLDERS.items() if k == release) + ((NEW_CROPS_FOLDER,) if release in ("abaw5", "abaw6") else ())


def convert_release(out: Path, release: str, seed: int) -> dict:
    """Turn the 2nd ABAW layout written to `out` into `release`'s; returns manifest additions."""
    if release not in SYNTH_RELEASES:
        raise EMENetInputError(f"unknown release {release!r}; valid ones are {list(SYNTH_RELEASES)}")
    if release == "abaw2":
        return {"release": "abaw2", "expr_names": list(EXPR_NAMES)}
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
    _relabel_other(out / "synthetic_ground_truth" / TASKS["EXPR"].annotation_dir, rng)
    if release == "mtl":
        extra = _write_mtl(out, rng)
    else:
        extra = _write_challenge_folders(out, release, rng)
    return {"release": release, "expr_names": list(EXPR_NAMES_WITH_OTHER), **extra}


def _relabel_other(folder: Path, rng: np.random.Generator) -> None:
    """8-class header on every expression file of `folder` (recursively), with runs of `Other`."""
    for path in sorted(folder.rglob("*.txt")):
        labels = read_annotation_file(path, "EXPR")[:, 0].astype(np.int64)
        labels = _with_other(labels, rng)
        path.write_text(",".join(EXPR_NAMES_WITH_OTHER) + "\n" + "".join(f"{v}\n" for v in labels))


def _with_other(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two runs of about a tenth of the video each become `Other` (annotated frames only)."""
    out = labels.copy()
    n = len(out)
    for _ in range(int(rng.integers(1, 3))):
        length = max(1, n // 10)
        start = int(rng.integers(0, max(1, n - length)))
        run = slice(start, start + length)
        out[run] = np.where(out[run] >= 0, OTHER_CLASS, out[run])
    return out


def _write_challenge_folders(out: Path, release: str, rng: np.random.Generator) -> dict:
    archive = out / ARCHIVE_FOLDERS[release]
    archive.mkdir(parents=True, exist_ok=True)
    folders = dict(CHALLENGE_FOLDERS)
    if release == "abaw6":
        folders["EXPR"] = "EXPR_Recognition_Challenge"
    for task, folder in folders.items():
        source = out / "annotations" / TASKS[task].annotation_dir
        if source.is_dir():
            shutil.move(str(source), str(archive / folder))
    shutil.rmtree(out / "annotations")
    _relabel_other(archive / folders["EXPR"], rng)
    moved: list[str] = []
    if release in ("abaw5", "abaw6"):
        names = sorted({p.stem for p in archive.rglob("*.txt")})
        moved = names[1::3]  # a third of the annotated names: the "newly added videos"
        (out / NEW_CROPS_FOLDER).mkdir(exist_ok=True)
        for name in moved:
            if (out / "cropped_aligned" / name).is_dir():
                shutil.move(str(out / "cropped_aligned" / name), str(out / NEW_CROPS_FOLDER / name))
    return {"annotation_folder": archive.name, "task_folders": folders, "new_crops_folder_names": moved}


def _write_mtl(out: Path, rng: np.random.Generator) -> dict:
    """One file per split: a sparse sample of each video's cropped frames with every task's labels."""
    archive = out / ARCHIVE_FOLDERS["mtl"]
    archive.mkdir(parents=True, exist_ok=True)
    per_split: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for task in ("AU", "EXPR", "VA"):
        for split in MTL_FILES:
            for path in sorted((out / "annotations" / TASKS[task].annotation_dir / split).glob("*.txt")):
                per_split.setdefault(split, {}).setdefault(path.stem, {})[task] = read_annotation_file(path, task)
    counts = {}
    for split, file_name in MTL_FILES.items():
        lines = [MTL_HEADER + "\n"]
        for name, labels in sorted(per_split.get(split, {}).items()):
            crops = out / "cropped_aligned" / name
            frames = np.array(sorted(int(p.stem) for p in crops.glob("*.jpg")), dtype=np.int64)
            keep = frames[::MTL_FRAME_STEP]
            for frame in np.setdiff1d(frames, keep):
                (crops / f"{frame:05d}.jpg").unlink()
            num_rows = max(len(v) for v in labels.values())
            au = labels.get("AU", np.full((num_rows, 12), -1.0))
            expr = _with_other(labels["EXPR"][:, 0].astype(np.int64), rng) if "EXPR" in labels else np.full(num_rows, -1)
            va = labels.get("VA", np.full((num_rows, 2), TASKS["VA"].missing_value))
            for frame in keep:
                r = frame - 1
                v, a = va[r]
                aus = ",".join(str(int(x)) for x in au[r])
                lines.append(f"{name}/{frame:05d}.jpg,{v:g},{a:g},{int(expr[r])},{aus}\n")
        (archive / file_name).write_text("".join(lines))
        counts[split] = len(lines) - 1
    shutil.rmtree(out / "annotations")
    return {"annotation_folder": archive.name, "mtl_rows": counts}
