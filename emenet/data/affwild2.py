"""The Aff-wild2 index: which frames have a face crop, and their labels for each task.

Built straight from the official layout of any release under a user-given root (the annotation
layout is detected by `emenet.data.layouts`: the 2nd ABAW's per-task folders, the 3rd ABAW's
challenge folders with 8 expression classes, or the multi-task challenge's two files; crops in
`cropped_aligned*/`; `videos/batch1|batch2/`), and cached as two Parquet files that are rebuilt
whenever a source changes (annotation paths, sizes and mtimes; crop directories' mtimes and
file counts; video files). Unannotated labels (-1 / -5) become an explicit mask in `task_labels`.

Example:
    >>> index = load_affwild2_index("/data/aff-wild2")
    >>> names = index.names("AU", "train")
    >>> frames, labels, mask = index.task_labels(names[0], "AU")  # (n,), (n, 12), (n, 12)
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emenet.data.annotations import ANNOTATED_TASKS, LABEL_COLUMNS, check_task, read_annotation_file_with_classes
from emenet.data.layouts import RELEASE_EXPR_CLASSES, DatasetLayout, detect_layout
from emenet.data.mtl_annotations import MTL_EXPR_CLASSES, MTLRows, read_mtl_file
from emenet.data.video_info import list_videos, video_info, video_stem
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path, user_cache_dir
from emenet.tasks import AU_NAMES, TASKS

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("Train_Set", "Validation_Set")
_SPLIT_ALIASES = {"train": "Train_Set", "train_set": "Train_Set", "val": "Validation_Set",
                  "valid": "Validation_Set", "validation": "Validation_Set", "validation_set": "Validation_Set"}
# Frame rate used when a name has no video file: the original training script's default `fps`.
ASSUMED_FPS = 30.0
# Bump when the cached tables' meaning or schema changes; old caches are then rebuilt.
CACHE_VERSION = 2
_FINGERPRINT_KEY = b"emenet.affwild2.fingerprint"
_JPG_SUFFIX = np.frombuffer(b".jpg", dtype=np.uint8)
_DIGIT_WEIGHTS = np.array([10_000, 1_000, 100, 10, 1], dtype=np.int64)
VIDEO_COLUMNS: tuple[str, ...] = ("name", "video", "video_path", "fps", "fps_source", "num_video_frames",
                                  "num_crops", "split_AU", "split_EXPR", "split_VA", "crop_dir", "expr_classes")
FRAME_COLUMNS: tuple[str, ...] = ("name", "frame", *AU_NAMES, "expr", "valence", "arousal")


@dataclass
class AffWild2Index:
    """The parsed dataset: one row per annotated name (`videos`) and per cropped frame (`frames`).

    `frames` is sorted by name and frame and is treated as read-only: `task_labels` slices numpy
    copies of its columns by the name offsets computed here.
    """

    data_root: Path
    videos: pd.DataFrame
    frames: pd.DataFrame
    release: str = "abaw2"  # emenet.data.layouts.RELEASES: which annotation layout this index came from
    _spans: dict[str, tuple[int, int]] = field(init=False, repr=False)
    _columns: dict[str, np.ndarray] = field(init=False, repr=False, default_factory=dict)
    _crop_dirs: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_root = Path(self.data_root)
        self._spans = _name_spans(self.frames["name"])
        for name in self.videos["name"]:  # annotated names without any crop
            self._spans.setdefault(str(name), (0, 0))
        self._crop_dirs = dict(zip(self.videos["name"].astype(str), self.videos["crop_dir"].astype(str)))

    @property
    def num_expr_classes(self) -> int:
        """7 (2nd ABAW) or 8 (`Other`, 3rd ABAW on), as the expression files' headers say."""
        counts = set(self.videos["expr_classes"].astype(int)) - {0}
        return counts.pop() if counts else RELEASE_EXPR_CLASSES[self.release]

    def crop_dir(self, name: str) -> Path:
        """The folder of `name`'s crops (in whichever crops folder holds it)."""
        if name not in self._crop_dirs:
            raise EMENetInputError(f"{name!r} is not in the Aff-wild2 index of {self.data_root}")
        return Path(self._crop_dirs[name])

    def crop_path(self, name: str, frame: int) -> Path:
        """Path of the face crop of `frame` (1-based) of `name`."""
        return self.crop_dir(name) / f"{int(frame):05d}.jpg"

    def names(self, task: str, split: str) -> list[str]:
        """Names annotated for `task` in `split` ('Train_Set'/'Validation_Set', or 'train'/'val')."""
        task, split = check_task(task), normalize_split(split)
        return sorted(self.videos.loc[self.videos[f"split_{task}"] == split, "name"].tolist())

    def task_labels(self, name: str, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels of `task` for the cropped frames of `name`: (frames (n,), labels (n, C), mask (n, C)).

        Unannotated entries (-1 AU/EXPR rows, -5 VA rows, or a task the name has no file for) have
        label 0 and mask False. C is 12 for AU, 1 for EXPR, 2 for VA.
        """
        task = check_task(task)
        if name not in self._spans:
            raise EMENetInputError(f"{name!r} is not in the Aff-wild2 index of {self.data_root}")
        start, stop = self._spans[name]
        frames = self._column_block("frame")[start:stop].astype(np.int64)
        raw = self._column_block(task)[start:stop].astype(np.float32)  # (n, C)
        mask = ~np.isnan(raw) if task == "VA" else raw >= 0
        labels = np.where(mask, raw, np.float32(0.0))
        return frames, labels, mask

    def _column_block(self, key: str) -> np.ndarray:
        """The frame numbers or one task's label columns as one numpy array, made on first use."""
        if key not in self._columns:
            columns = ["frame"] if key == "frame" else list(LABEL_COLUMNS[key])
            block = self.frames[columns].to_numpy()
            self._columns[key] = block[:, 0] if key == "frame" else block
        return self._columns[key]


def normalize_split(split: str) -> str:
    """'train' / 'val' / 'Train_Set' / 'Validation_Set' -> the official folder name."""
    if split in SPLITS:
        return split
    canonical = _SPLIT_ALIASES.get(str(split).lower())
    if canonical is None:
        raise EMENetInputError(f"unknown split {split!r}; valid splits are {list(SPLITS)} (or 'train', 'val')")
    return canonical


def load_affwild2_index(data_root: str | Path, cache_dir: str | Path | None = None,
                        rebuild: bool = False, annotations_dir: str | Path | None = None,
                        crops_dirs: list[str] | tuple[str, ...] | None = None) -> AffWild2Index:
    """Index Aff-wild2 under `data_root`, reusing the Parquet cache while no source has changed.

    The release's layout is detected (`emenet.data.layouts.detect_layout`); `annotations_dir`
    points at the annotation folder when it is not under the root, `crops_dirs` lists the crop
    folders (default: every `cropped_aligned*` folder of the root). The cache lives in
    `<data_root>/.emenet_cache/`, or `~/.cache/emenet/` (`$XDG_CACHE_HOME/emenet`) when `data_root`
    is not writable; `cache_dir` overrides both. `rebuild=True` re-parses anyway. Malformed
    annotation files raise EMENetInputError naming the file and line.
    """
    started = time.perf_counter()
    root = _check_root(data_root)
    layout = detect_layout(root, annotations_dir, crops_dirs)
    sources = _scan_sources(root, layout)
    fingerprint = sources.fingerprint(root)
    locations = _cache_locations(root, cache_dir)
    if not rebuild:
        for location in locations:
            tables = _read_cache(location, fingerprint)
            if tables is not None:
                index = AffWild2Index(root, *tables, release=layout.release)
                _log_summary(index, f"loaded from cache {location.frames} in {time.perf_counter() - started:.2f} s")
                return index
    videos, frames = _build_tables(root, sources)
    index = AffWild2Index(root, videos, frames, release=layout.release)
    written = _write_cache(locations, fingerprint, videos, frames)
    where = f"cached at {written.frames}" if written else "not cached (no writable cache directory)"
    _log_summary(index, f"built in {time.perf_counter() - started:.2f} s, {where}")
    return index


# ---------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class _AnnotationFile:
    task: str  # AU, EXPR, VA; MTL for a multi-task file (every task, every name of a split)
    split: str
    name: str  # "" for a multi-task file
    path: Path
    size: int
    mtime_ns: int


@dataclass
class _Sources:
    """Everything the index is built from, as listed on disk; its fingerprint keys the cache."""

    layout: DatasetLayout
    annotations: list[_AnnotationFile]
    crop_frames: dict[str, np.ndarray]  # annotated name -> sorted unique 1-based frame numbers
    crop_stats: dict[str, tuple[int, int]]  # annotated name -> (directory mtime_ns, jpg count); (-1, -1) if absent
    crop_dirs: dict[str, Path]  # annotated name -> its crop folder (in the first crops folder that has it)
    videos: dict[str, Path]  # video stem -> file
    mtl_rows: dict[str, MTLRows] = field(default_factory=dict)  # split -> rows (multi-task layout)

    def fingerprint(self, root: Path) -> str:
        digest = hashlib.sha256(f"emenet-affwild2-index v{CACHE_VERSION}\n{self.layout.release}\n".encode())
        for ann in sorted(self.annotations, key=lambda a: str(a.path)):
            digest.update(f"A\t{ann.path}\t{ann.size}\t{ann.mtime_ns}\n".encode())
        for name in sorted(self.crop_stats):
            mtime_ns, count = self.crop_stats[name]
            digest.update(f"C\t{name}\t{self.crop_dirs[name]}\t{mtime_ns}\t{count}\n".encode())
        for stem in sorted(self.videos):
            stat = self.videos[stem].stat()
            digest.update(f"V\t{self.videos[stem].relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


def _check_root(data_root: str | Path) -> Path:
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise EMENetInputError(f"{root}: Aff-wild2 root directory not found")
    return root


def _scan_sources(root: Path, layout: DatasetLayout) -> _Sources:
    mtl_rows: dict[str, MTLRows] = {}
    if layout.release == "mtl":
        annotations = _scan_mtl_files(layout)
        mtl_rows = {ann.split: read_mtl_file(ann.path) for ann in annotations}
        names = sorted({str(n) for rows in mtl_rows.values() for n in rows.names})
        _check_mtl_splits(mtl_rows, {ann.split: ann.path for ann in annotations})
    else:
        annotations = _scan_annotations(layout)
        names = sorted({ann.name for ann in annotations})
    if annotations and not any(d.is_dir() for d in layout.crops_dirs):
        raise EMENetInputError(f"{root}: no cropped_aligned/ folder (expected cropped_aligned/<name>/00001.jpg ..., "
                               "the aligned face crops of every annotated video)")
    crop_frames: dict[str, np.ndarray] = {}
    crop_stats: dict[str, tuple[int, int]] = {}
    crop_dirs: dict[str, Path] = {}
    for name in names:
        crop_dirs[name] = next((d / name for d in layout.crops_dirs if (d / name).is_dir()), layout.crops_dirs[0] / name)
        crop_frames[name], crop_stats[name] = _scan_crop_dir(crop_dirs[name])
    return _Sources(layout, annotations, crop_frames, crop_stats, crop_dirs, list_videos(root), mtl_rows)


def _scan_mtl_files(layout: DatasetLayout) -> list[_AnnotationFile]:
    found = []
    for split, path in sorted(layout.mtl_files.items()):
        stat = path.stat()
        found.append(_AnnotationFile("MTL", split, "", path, stat.st_size, stat.st_mtime_ns))
    return found


def _check_mtl_splits(rows: dict[str, MTLRows], paths: dict[str, Path]) -> None:
    """A video listed in both the training and the validation file is an error."""
    if len(rows) < 2:
        return
    train, val = (set(map(str, rows[s].names)) for s in SPLITS)
    both = sorted(train & val)
    if both:
        raise EMENetInputError(f"{paths['Validation_Set']}: video {both[0]!r} is also in {paths['Train_Set']}")


def _scan_annotations(layout: DatasetLayout) -> list[_AnnotationFile]:
    """List <task folder>/<split>/*.txt; a name in both splits of one task is an error."""
    found: list[_AnnotationFile] = []
    seen: dict[tuple[str, str], Path] = {}
    for task in ANNOTATED_TASKS:
        for split in SPLITS:
            if task not in layout.task_dirs:
                continue
            directory = layout.task_dirs[task] / split
            if not directory.is_dir():
                continue
            with os.scandir(directory) as entries:
                files = sorted((e.name, e.stat()) for e in entries
                               if e.name.endswith(".txt") and not e.name.startswith(".") and e.is_file())
            for file_name, stat in files:
                name = file_name[: -len(".txt")]
                path = directory / file_name
                other = seen.setdefault((task, name), path)
                if other != path:
                    raise EMENetInputError(f"{path}: {name!r} is annotated in both Train_Set and Validation_Set "
                                           f"of {task} (also {other})")
                found.append(_AnnotationFile(task, split, name, path, stat.st_size, stat.st_mtime_ns))
    if not found:
        folders = "|".join(d.name for d in layout.task_dirs.values())
        raise EMENetInputError(f"{layout.annotations_dir}: no annotation files found (expected "
                               f"{folders}/Train_Set|Validation_Set/<name>.txt)")
    return found


def _scan_crop_dir(directory: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """Frame numbers of the `<frame:05d>.jpg` crops in one directory, and its (mtime_ns, jpg count)."""
    try:
        mtime_ns = directory.stat().st_mtime_ns
        with os.scandir(directory) as entries:
            file_names = [entry.name for entry in entries]
    except (FileNotFoundError, NotADirectoryError):
        return np.empty(0, dtype=np.int32), (-1, -1)
    frames, jpg_count = _frame_numbers(file_names)
    return frames, (mtime_ns, jpg_count)


def _frame_numbers(file_names: list[str]) -> tuple[np.ndarray, int]:
    """Sorted unique frame numbers of the `<digits>.jpg` names, and how many names end in .jpg.

    Aff-wild2 names are all `ddddd.jpg`: those are decoded as one (n, 9) byte array; anything else
    (other lengths, stray files) takes a per-name path.
    """
    joined = "".join(file_names)
    if file_names and len(joined) == 9 * len(file_names) and joined.isascii():
        raw = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, 9)  # (n, 9)
        is_jpg = (raw[:, 5:] == _JPG_SUFFIX).all(axis=1)
        digits = raw[:, :5] - ord("0")  # non-digits wrap around to values > 9
        keep = is_jpg & (digits <= 9).all(axis=1)
        frames = digits[keep].astype(np.int64) @ _DIGIT_WEIGHTS
        jpg_count = int(is_jpg.sum())
    else:
        stems = [n[:-4] for n in file_names if n.endswith(".jpg")]
        jpg_count = len(stems)
        frames = np.fromiter((int(s) for s in stems if s.isdigit()), dtype=np.int64)
    frames = np.unique(frames)
    return frames[frames >= 1].astype(np.int32), jpg_count


# ---------------------------------------------------------------------------- building

def _build_tables(root: Path, sources: _Sources) -> tuple[pd.DataFrame, pd.DataFrame]:
    if sources.layout.release == "mtl":
        return _build_mtl_tables(sources)
    by_name: dict[str, dict[str, _AnnotationFile]] = {}
    for ann in sources.annotations:
        by_name.setdefault(ann.name, {})[ann.task] = ann
    names = sorted(by_name)
    parts = [_name_frames(name, sources.crop_dirs[name], sources.crop_frames[name], by_name[name]) for name in names]
    expr_classes = [part[4] for part in parts]
    _check_expr_classes(names, expr_classes, by_name)
    splits = {name: {task: ann.split for task, ann in by_name[name].items()} for name in names}
    return _assemble(names, [part[:4] for part in parts], splits, expr_classes, sources)


def _check_expr_classes(names: list[str], expr_classes: list[int], by_name: dict[str, dict[str, _AnnotationFile]]) -> None:
    """Every expression file of one copy must have the same header (7 or 8 classes)."""
    first: tuple[int, str] | None = None
    for name, count in zip(names, expr_classes):
        if not count:
            continue
        if first is None:
            first = (count, name)
        elif count != first[0]:
            other, other_name = first
            raise EMENetInputError(f"{by_name[name]['EXPR'].path}:1: header names {count} expression classes, "
                                   f"but {by_name[other_name]['EXPR'].path} names {other}; use one release's files")


def _assemble(names: list[str], parts: list[tuple], splits: dict[str, dict[str, str]], expr_classes: list[int],
              sources: _Sources) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables from each name's (frames, au, expr, va) and its split per task."""
    counts = np.array([len(part[0]) for part in parts], dtype=np.int64)
    frames = pd.DataFrame({
        "name": pd.Categorical.from_codes(np.repeat(np.arange(len(names)), counts), categories=names),
        "frame": _concat([p[0] for p in parts], np.int32, (0,)),
    })
    au = _concat([p[1] for p in parts], np.int8, (0, len(AU_NAMES)))
    for i, column in enumerate(AU_NAMES):
        frames[column] = au[:, i]
    frames["expr"] = _concat([p[2] for p in parts], np.int8, (0,))
    va = _concat([p[3] for p in parts], np.float32, (0, 2))
    frames["valence"], frames["arousal"] = va[:, 0], va[:, 1]
    videos = _videos_table(names, counts, splits, sources.videos)
    videos["crop_dir"] = [str(sources.crop_dirs[name]) for name in names]
    videos["expr_classes"] = np.asarray(expr_classes, dtype=np.int64)
    return videos, frames


def _build_mtl_tables(sources: _Sources) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Multi-task layout: each video's listed frames that have a crop, with all three tasks' labels.

    A video belongs to a task's split when at least one of its listed frames is annotated for it.
    """
    per_name: dict[str, tuple] = {}
    splits: dict[str, dict[str, str]] = {}
    for split, rows in sources.mtl_rows.items():
        order = np.lexsort((rows.frames, rows.names.astype(str)))
        names = rows.names[order].astype(str)
        bounds = np.flatnonzero(np.r_[True, names[1:] != names[:-1], True])
        for start, stop in zip(bounds[:-1], bounds[1:]):
            name, sel = names[start], order[start:stop]
            keep = np.isin(rows.frames[sel], sources.crop_frames[name])
            sel = sel[keep]
            va = np.where(rows.va[sel] == TASKS["VA"].missing_value, np.nan, rows.va[sel]).astype(np.float32)
            per_name[name] = (rows.frames[sel].astype(np.int32), rows.au[sel].astype(np.int8),
                              rows.expr[sel].astype(np.int8), va)
            annotated = {"AU": (rows.au[order[start:stop]] >= 0).any(),
                         "EXPR": (rows.expr[order[start:stop]] >= 0).any(),
                         "VA": (rows.va[order[start:stop]] != TASKS["VA"].missing_value).all(axis=1).any()}
            splits[name] = {task: split for task, yes in annotated.items() if yes}
    names = sorted(per_name)
    return _assemble(names, [per_name[n] for n in names], splits, [MTL_EXPR_CLASSES] * len(names), sources)


def _name_frames(name: str, crop_dir: Path, crop_frames: np.ndarray, files: dict[str, _AnnotationFile]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Labels of every cropped frame of one name (tasks it has no file for stay -1 / NaN), and
    the class count of its expression file (0 without one)."""
    n = len(crop_frames)
    au = np.full((n, len(AU_NAMES)), -1, dtype=np.int8)
    expr = np.full(n, -1, dtype=np.int8)
    va = np.full((n, 2), np.nan, dtype=np.float32)
    expr_classes = 0
    for task, ann in files.items():
        raw, classes = read_annotation_file_with_classes(ann.path, task)
        expr_classes = classes or expr_classes
        num_rows = raw.shape[0]
        if n and crop_frames[-1] > num_rows:
            crop = crop_dir / f"{int(crop_frames[-1]):05d}.jpg"
            raise EMENetInputError(f"{ann.path}:{num_rows + 2}: fewer label rows than crops: {num_rows} rows, "
                                   f"but {crop} is frame {int(crop_frames[-1])}")
        rows = raw[crop_frames - 1]  # row k belongs to frame k + 1
        if task == "AU":
            au = rows.astype(np.int8)
        elif task == "EXPR":
            expr = rows[:, 0].astype(np.int8)
        else:
            va = np.where(rows == TASKS["VA"].missing_value, np.nan, rows).astype(np.float32)
    return crop_frames, au, expr, va, expr_classes


def _concat(arrays: list[np.ndarray], dtype: type, empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(empty_shape, dtype=dtype)


def _videos_table(names: list[str], counts: np.ndarray, splits: dict[str, dict[str, str]],
                  video_files: dict[str, Path]) -> pd.DataFrame:
    """One row per name: its video, frame rate (read once per video) and split of each task."""
    infos = {}
    rows = []
    for name, count in zip(names, counts):
        stem = video_stem(name, video_files)
        path = video_files.get(stem)
        if path is not None and stem not in infos:
            infos[stem] = video_info(path)
        info = infos.get(stem)
        rows.append({
            "name": name,
            "video": stem,
            "video_path": str(path) if path is not None else "",
            "fps": info.fps if info else ASSUMED_FPS,
            "fps_source": "video" if info else "assumed",
            "num_video_frames": info.num_frames if info else -1,
            "num_crops": int(count),
            **{f"split_{task}": splits[name].get(task, "") for task in ANNOTATED_TASKS},
        })
    videos = pd.DataFrame(rows, columns=list(VIDEO_COLUMNS[:-2]))
    return videos.astype({"fps": np.float64, "num_video_frames": np.int64, "num_crops": np.int64})


def _name_spans(names: pd.Series) -> dict[str, tuple[int, int]]:
    """Row range of each name in the name-sorted frames table."""
    if isinstance(names.dtype, pd.CategoricalDtype):
        codes, uniques = names.cat.codes.to_numpy(), list(names.cat.categories)
    else:
        codes, uniques = pd.factorize(names)
        uniques = list(uniques)
    if codes.size and (np.any(np.diff(codes) < 0) or codes.min() < 0):
        raise ValueError("frames must be sorted by name, with no missing names")
    ends = np.cumsum(np.bincount(codes, minlength=len(uniques)))
    starts = ends - np.bincount(codes, minlength=len(uniques))
    return {str(name): (int(s), int(e)) for name, s, e in zip(uniques, starts, ends)}


def _log_summary(index: AffWild2Index, how: str) -> None:
    videos = index.videos
    per_task = ", ".join(f"{task} {int((videos[f'split_{task}'] == 'Train_Set').sum())}/"
                         f"{int((videos[f'split_{task}'] == 'Validation_Set').sum())}" for task in ANNOTATED_TASKS)
    no_crops = int((videos["num_crops"] == 0).sum())
    logger.info("Aff-wild2 index of %s (%s layout, %d expression classes): %d names (%d videos), %d cropped "
                "frames; train/val names: %s; %d names without crops; %s", index.data_root, index.release,
                index.num_expr_classes, len(videos), videos["video"].nunique(), len(index.frames), per_task,
                no_crops, how)
    assumed = int((videos["fps_source"] == "assumed").sum())
    if assumed:
        logger.warning("no video file under videos/batch1|batch2 for %d of %d names; assuming %g fps for them "
                       "(fps_source='assumed')", assumed, len(videos), ASSUMED_FPS)


# ---------------------------------------------------------------------------- cache

@dataclass(frozen=True)
class _CacheLocation:
    videos: Path
    frames: Path


def _cache_locations(root: Path, cache_dir: str | Path | None) -> list[_CacheLocation]:
    """Where to look for (in order) and write the cache: cache_dir, else data_root, else the user cache."""
    root_key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    if cache_dir is not None:
        return [_location(Path(cache_dir).expanduser(), f"affwild2_index-{root_key}")]
    return [_location(root / ".emenet_cache", "affwild2_index"),
            _location(user_cache_dir(), f"affwild2_index-{root_key}")]


def _location(directory: Path, stem: str) -> _CacheLocation:
    return _CacheLocation(directory / f"{stem}.videos.parquet", directory / f"{stem}.frames.parquet")


def _writable_dir(directory: Path) -> bool:
    """Whether files can be created in `directory` (made if missing); tried, not guessed from modes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        return True
    except OSError:
        return False


def _read_cache(location: _CacheLocation, fingerprint: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Both cached tables if they exist and match `fingerprint`, else None (a broken cache is rebuilt)."""
    if not (location.videos.is_file() and location.frames.is_file()):
        return None
    tables = []
    for path, columns in ((location.videos, VIDEO_COLUMNS), (location.frames, FRAME_COLUMNS)):
        try:
            metadata = pq.read_schema(path).metadata or {}
            if metadata.get(_FINGERPRINT_KEY, b"").decode() != fingerprint:
                logger.info("Aff-wild2 sources changed since %s was written; rebuilding the index", path)
                return None
            table = pq.read_table(path).to_pandas()
        except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
            logger.warning("ignoring unreadable index cache %s (%s)", path, exc)
            return None
        if tuple(table.columns) != columns:
            logger.warning("ignoring index cache %s with unexpected columns", path)
            return None
        tables.append(table)
    return tables[0], tables[1]


def _write_cache(locations: list[_CacheLocation], fingerprint: str, videos: pd.DataFrame,
                 frames: pd.DataFrame) -> _CacheLocation | None:
    """Write both tables atomically to the first writable location; None if there is none."""
    for location in locations:
        if not _writable_dir(location.frames.parent):
            logger.info("cache directory %s is not writable; trying the next one", location.frames.parent)
            continue
        for path, table in ((location.videos, videos), (location.frames, frames)):
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            metadata = {**(arrow.schema.metadata or {}), _FINGERPRINT_KEY: fingerprint.encode()}
            arrow = arrow.replace_schema_metadata(metadata)
            with atomic_path(path) as tmp:
                pq.write_table(arrow, tmp)
        return location
    logger.warning("could not write the Aff-wild2 index cache to %s; it will be rebuilt next time",
                   " or ".join(str(loc.frames.parent) for loc in locations))
    return None
