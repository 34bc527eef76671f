"""Which Aff-wild2 release a folder holds, and where its annotation files and face crops are.

Aff-wild2 has been handed out in three annotation layouts (same row formats, different folders):

| release | annotation folders | expression classes |
| --- | --- | --- |
| `abaw2` (2nd ABAW, 2021) | `annotations/{AU,EXPR,VA}_Set/{Train_Set,Validation_Set}/<name>.txt` | 7 |
| `abaw3` (3rd ABAW on, 2022-2025) | `<X ABAW Annotations>/{AU_Detection,EXPR_Classification or EXPR_Recognition,VA_Estimation}_Challenge/{Train_Set,Validation_Set}/<name>.txt` | 8 (`Other`) |
| `mtl` (s-Aff-Wild2, multi-task challenge of the 3rd and 4th ABAW) | `training_set_annotations_22.txt`, `validation_set_annotations_22.txt` | 8 |

`detect_layout` looks in the root, in `annotations/` and in each folder directly below either of
them, so an unpacked archive folder (`Third ABAW Annotations/`, `6th ABAW Annotations/`) is found
without being named; `annotations_dir` names the folder when it lives elsewhere. Face crops are
`<crops dir>/<name>/<frame:05d>.jpg`; later releases add folders of newly added videos beside
`cropped_aligned/`, so every `cropped_aligned*` folder of the root is used unless `crops_dirs`
says otherwise.

    >>> layout = detect_layout("/data/affwild2")  # doctest: +SKIP
    >>> layout.release, layout.task_dirs["EXPR"].name  # doctest: +SKIP
    ('abaw3', 'EXPR_Classification_Challenge')
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emenet.errors import EMENetInputError

RELEASES: tuple[str, ...] = ("abaw2", "abaw3", "mtl")
# Task folder names per per-task layout, in the order they are looked for.
TASK_FOLDERS: dict[str, dict[str, tuple[str, ...]]] = {
    "abaw2": {"AU": ("AU_Set",), "EXPR": ("EXPR_Set",), "VA": ("VA_Set",)},
    "abaw3": {"AU": ("AU_Detection_Challenge",),
              "EXPR": ("EXPR_Classification_Challenge", "EXPR_Recognition_Challenge"),
              "VA": ("VA_Estimation_Challenge",)},
}
# The multi-task (s-Aff-Wild2) files, per split.
MTL_FILES: dict[str, str] = {"Train_Set": "training_set_annotations_22.txt",
                             "Validation_Set": "validation_set_annotations_22.txt"}
# Expression classes of each release's files (a per-task layout's headers say it for themselves).
RELEASE_EXPR_CLASSES: dict[str, int] = {"abaw2": 7, "abaw3": 8, "mtl": 8}
CROPS_FOLDER = "cropped_aligned"


@dataclass(frozen=True)
class DatasetLayout:
    """Where one Aff-wild2 copy keeps its annotations and crops.

    `task_dirs` (per-task layouts): task -> folder holding Train_Set/ and Validation_Set/;
    `mtl_files` (multi-task layout): split -> annotation file; `crops_dirs`: searched in order.
    """

    release: str
    annotations_dir: Path
    crops_dirs: tuple[Path, ...]
    task_dirs: dict[str, Path] = field(default_factory=dict)
    mtl_files: dict[str, Path] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.release} layout in {self.annotations_dir}"


def _match(directory: Path) -> tuple[str, dict[str, Path], dict[str, Path]] | None:
    """The layout whose folders or files `directory` holds directly, if any."""
    try:
        entries = {e.name: e for e in os.scandir(directory)}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    for release, folders in TASK_FOLDERS.items():
        task_dirs = {task: directory / name for task, names in folders.items()
                     for name in names if name in entries and entries[name].is_dir() and _has_splits(directory / name)}
        if task_dirs:
            return release, task_dirs, {}
    mtl = {split: directory / name for split, name in MTL_FILES.items() if name in entries and entries[name].is_file()}
    if mtl:
        return "mtl", {}, mtl
    return None


def _has_splits(directory: Path) -> bool:
    return any((directory / split).is_dir() for split in MTL_FILES)


def _candidates(root: Path) -> list[Path]:
    """The root, annotations/, and the folders directly below each (unpacked archives)."""
    out = [root]
    for base in (root, root / "annotations"):
        if base.is_dir() and base not in out:
            out.append(base)
        try:
            subdirs = sorted(e.path for e in os.scandir(base) if e.is_dir() and not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        out.extend(Path(p) for p in subdirs if Path(p) not in out and not Path(p).name.startswith(CROPS_FOLDER))
    return out


def default_crops_dirs(root: Path) -> tuple[Path, ...]:
    """Every `cropped_aligned*` folder of the root, `cropped_aligned/` first (it may not exist)."""
    try:
        extra = sorted(Path(e.path) for e in os.scandir(root)
                       if e.is_dir() and e.name.startswith(CROPS_FOLDER) and e.name != CROPS_FOLDER)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        extra = []
    return (root / CROPS_FOLDER, *extra)


def detect_layout(data_root: str | os.PathLike, annotations_dir: str | os.PathLike | None = None,
                  crops_dirs: Sequence[str | os.PathLike] | None = None) -> DatasetLayout:
    """Find the annotation layout under `data_root` (or in `annotations_dir`) and the crop folders.

    Relative `annotations_dir` and `crops_dirs` are taken as given (relative to the working
    directory). Several matching folders, or none, stop with one line saying what was looked for.
    """
    root = Path(data_root).expanduser().resolve()
    if annotations_dir is not None:
        where = Path(annotations_dir).expanduser().resolve()
        if not where.is_dir():
            raise EMENetInputError(f"{where}: --annotations_dir not found")
        candidates = [where, *_candidates(where)[1:]]
    else:
        candidates = _candidates(root)
    found = [(c, m) for c in candidates if (m := _match(c)) is not None]
    if not found:
        raise EMENetInputError(
            f"{annotations_dir or root}: no annotation files found (looked for annotations/AU_Set|EXPR_Set|"
            "VA_Set (2nd ABAW), AU_Detection_Challenge|EXPR_Classification_Challenge|VA_Estimation_Challenge "
            f"(3rd ABAW on) or {MTL_FILES['Train_Set']} (multi-task) here and one folder down); "
            "point --annotations_dir at the folder holding them")
    if len(found) > 1:
        places = ", ".join(f"{c} ({m[0]})" for c, m in found[:4])
        raise EMENetInputError(f"{annotations_dir or root}: several annotation folders found: {places}; "
                               "choose one with --annotations_dir")
    directory, (release, task_dirs, mtl_files) = found[0]
    if crops_dirs:
        crops = tuple(Path(c).expanduser().resolve() for c in crops_dirs)
        missing = [c for c in crops if not c.is_dir()]
        if missing:
            raise EMENetInputError(f"{missing[0]}: --crops_dir not found")
    else:
        crops = default_crops_dirs(root)
    return DatasetLayout(release, directory, crops, task_dirs, mtl_files)
