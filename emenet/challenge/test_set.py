"""The challenge test set as one table: per test name its tasks, video, frame rate, frame count and crops.

A submission needs one row for *every* frame of a test video (reference README, section 2),
while `cropped_aligned/<name>/` only holds the frames where a face was found. This index
records both, so the submission writer knows every frame without opening a video again:

| column | meaning |
| --- | --- |
| `name` | test name (a video stem, or `<video>_left` / `<video>_right`) |
| `task_AU`, `task_EXPR`, `task_VA` | whether the name is in that task's official test list |
| `video`, `video_path` | the video's stem and file (both sides of a two-person video share it) |
| `crop_dir` | its folder of 112x112 crops (`cropped_aligned/<name>`) |
| `fps` | frame rate from the video's headers |
| `num_frames` | number of video frames, counted (see `count_video_frames`) |
| `header_num_frames` | the container's own count (-1 when it records none), for comparison |
| `frame_count_method` | `decode` or `packets` |
| `num_crops`, `first_crop` | crops present, first frame with a crop (1-based) |
| `crop_frames` | the 1-based frames that have a crop; every other frame has none |

Saved as Parquet (`crop_frames` a list column) or CSV (`crop_frames` as ranges, `1-37;40-60`),
chosen by the file's suffix. Paths are absolute, so the file works from any directory.

    >>> test_set = build_test_set("data/affwild2/cropped_aligned", "data/affwild2/videos")  # doctest: +SKIP
    >>> write_test_set(test_set, "test_set.parquet")  # doctest: +SKIP
    >>> entry = read_test_set("test_set.parquet")["video204"]  # doctest: +SKIP
    >>> entry.num_frames, entry.has_crop().sum()  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from emenet.data.video_info import VIDEO_EXTENSIONS, video_info, video_stem
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path

log = logging.getLogger(__name__)

# The challenge's task order, and the official list file of each (abaw2_test_set/test_set_<X>_Challenge.txt).
SUBMISSION_TASKS: tuple[str, ...] = ("AU", "EXPR", "VA")
TEST_LIST_FILES: dict[str, str] = {"AU": "test_set_AU_Challenge.txt", "EXPR": "test_set_Expr_Challenge.txt",
                                   "VA": "test_set_VA_Challenge.txt"}
TEST_LIST_DIR = "abaw2_test_set"
CROPS_DIR = "cropped_aligned"
COUNT_METHODS: tuple[str, ...] = ("decode", "packets")
FORMAT = "emenet-test-set-1"  # stored in the Parquet metadata and checked on reading
_FORMAT_KEY = b"emenet.format"
_CROP_NAME = re.compile(r"^(\d+)\.jpg$", re.IGNORECASE)
COLUMNS: tuple[str, ...] = ("name", "task_AU", "task_EXPR", "task_VA", "video", "video_path", "crop_dir", "fps",
                            "num_frames", "header_num_frames", "frame_count_method", "num_crops", "first_crop",
                            "crop_frames")


@dataclass(frozen=True)
class TestVideo:
    """One test name: its tasks, video, frame count and the 1-based frames that have a crop."""

    name: str
    tasks: tuple[str, ...]
    video_path: Path
    crop_dir: Path
    fps: float
    num_frames: int
    crop_frames: np.ndarray  # (num_crops,) int64, 1-based, increasing, all <= num_frames
    header_num_frames: int = -1
    frame_count_method: str = "decode"

    __test__ = False  # not a pytest test class, despite the name

    @property
    def num_crops(self) -> int:
        return int(len(self.crop_frames))

    def has_crop(self) -> np.ndarray:
        """(num_frames,) bool: whether frame k + 1 has a crop."""
        mask = np.zeros(self.num_frames, bool)
        mask[self.crop_frames - 1] = True
        return mask

    def crop_paths(self) -> list[Path]:
        """The crop files in frame order."""
        return [self.crop_dir / f"{int(f):05d}.jpg" for f in self.crop_frames]


class TestSet(Mapping[str, TestVideo]):
    """Test names in list order (AU list, then names first seen in EXPR, then VA), by name."""

    __test__ = False

    def __init__(self, videos: Sequence[TestVideo]):
        self._videos = {v.name: v for v in videos}
        if len(self._videos) != len(videos):
            raise ValueError("TestSet: repeated test name")

    def __getitem__(self, name: str) -> TestVideo:
        return self._videos[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._videos)

    def __len__(self) -> int:
        return len(self._videos)

    def names(self, task: str | None = None) -> list[str]:
        """Every test name, or those listed for `task`."""
        return [n for n, v in self._videos.items() if task is None or task in v.tasks]

    @property
    def num_frames(self) -> int:
        return sum(v.num_frames for v in self._videos.values())

    def to_dataframe(self) -> pd.DataFrame:
        rows = []
        for v in self._videos.values():
            rows.append({"name": v.name, **{f"task_{t}": t in v.tasks for t in SUBMISSION_TASKS},
                         "video": v.video_path.stem, "video_path": str(v.video_path), "crop_dir": str(v.crop_dir),
                         "fps": float(v.fps), "num_frames": int(v.num_frames),
                         "header_num_frames": int(v.header_num_frames), "frame_count_method": v.frame_count_method,
                         "num_crops": v.num_crops, "first_crop": int(v.crop_frames[0]) if v.num_crops else -1,
                         "crop_frames": v.crop_frames.astype(np.int32)})
        return pd.DataFrame(rows, columns=list(COLUMNS))


# ----------------------------------------------------------------------------- sources

def read_test_list(path: str | os.PathLike) -> list[str]:
    """Names of one official test list, one per line (blank lines skipped, repeats dropped)."""
    path = Path(path)
    if not path.is_file():
        raise EMENetInputError(f"{path}: test list not found")
    names = [line.strip() for line in path.read_text().splitlines()]
    return list(dict.fromkeys(n for n in names if n))


def resolve_data_dirs(data_dir: str | os.PathLike) -> tuple[Path, Path]:
    """(data root, crops folder) of `data_dir`, which is either an Aff-wild2 root holding
    `cropped_aligned/`, or the crops folder itself (its parent is then the root)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EMENetInputError(f"{data_dir}: crops folder not found")
    if (data_dir / CROPS_DIR).is_dir():
        return data_dir, data_dir / CROPS_DIR
    return data_dir.parent, data_dir


def default_test_lists(data_root: str | os.PathLike) -> dict[str, Path]:
    """The official list files under `<data_root>/abaw2_test_set/`."""
    return {task: Path(data_root) / TEST_LIST_DIR / file for task, file in TEST_LIST_FILES.items()}


def find_videos(video_dir: str | os.PathLike) -> dict[str, Path]:
    """Map each video stem under `video_dir` (searched recursively; an Aff-wild2 root's `videos/`
    when it has one) to its file. batch1 before batch2 (sorted paths), .mp4 before .avi."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise EMENetInputError(f"{video_dir}: video folder not found")
    if (video_dir / "videos").is_dir():
        video_dir = video_dir / "videos"
    candidates = []
    for root, dirs, files in os.walk(video_dir):
        dirs.sort()
        for file in files:
            stem, ext = os.path.splitext(file)
            if ext.lower() in VIDEO_EXTENSIONS:
                candidates.append((Path(root).relative_to(video_dir).parts, VIDEO_EXTENSIONS.index(ext.lower()),
                                   stem, Path(root) / file))
    found: dict[str, Path] = {}
    for _, _, stem, path in sorted(candidates):
        if stem in found:
            log.warning("%s: another video named %s was found first (%s); using that one", path, stem, found[stem])
            continue
        found[stem] = path
    return found


def list_crop_frames(crop_dir: str | os.PathLike) -> np.ndarray:
    """Sorted 1-based frame numbers of the `<digits>.jpg` crops in `crop_dir` (other files ignored)."""
    crop_dir = Path(crop_dir)
    if not crop_dir.is_dir():
        raise EMENetInputError(f"{crop_dir}: crop folder not found")
    with os.scandir(crop_dir) as entries:
        frames = [int(m.group(1)) for e in entries if (m := _CROP_NAME.match(e.name))]
    return np.unique(np.asarray(frames, np.int64))


def count_video_frames(path: str | os.PathLike, method: str = "decode") -> int:
    """Frames of a video's first video stream, counted, not read from its headers.

    `decode` decodes every frame (exact; about 400 frames/s for 640x360 H.264 on two cores);
    `packets` counts the non-empty packets without decoding (fast; equal to the frame count
    for the MP4 and AVI files of Aff-wild2, one frame per packet).
    """
    if method not in COUNT_METHODS:
        raise EMENetInputError(f"unknown frame count method {method!r}; valid methods are {list(COUNT_METHODS)}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise EMENetInputError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            if method == "packets":
                return sum(1 for packet in container.demux(stream) if packet.size > 0)
            stream.thread_type = "AUTO"
            return sum(1 for _ in container.decode(stream))
    except (OSError, av.error.FFmpegError) as exc:
        raise EMENetInputError(f"{path}: cannot be decoded as a video "
                               f"({type(exc).__name__}: {str(exc)[:160]})") from None


# ------------------------------------------------------------------------------- build

def build_test_set(data_dir: str | os.PathLike, video_dir: str | os.PathLike | None = None,
                   test_lists: Mapping[str, str | os.PathLike] | None = None, count_method: str = "decode",
                   num_workers: int | None = None, progress: bool = True,
                   extra_crops_dirs: Sequence[str | os.PathLike] = ()) -> TestSet:
    """Index the test names of the official lists: their videos, frame counts and crops.

    `data_dir` is an Aff-wild2 root or its `cropped_aligned/` folder; `video_dir` defaults to the
    root's `videos/`; `test_lists` maps task ("AU", "EXPR", "VA") to a list file and defaults to
    the root's `abaw2_test_set/` lists. Raises EMENetInputError (one line) for a missing list,
    video or crop folder, a name without any crop, or an unreadable video. Crops numbered beyond
    the video's last frame are dropped with a warning (a submission has one row per frame).
    `extra_crops_dirs` are more crop folders searched after the first (later releases keep newly
    added videos' crops in a folder of their own).
    """
    data_root, crops_root = resolve_data_dirs(data_dir)
    crop_roots = [crops_root, *(Path(d) for d in extra_crops_dirs)]
    video_dir = Path(video_dir) if video_dir is not None else data_root / "videos"
    lists = {task: Path(p) for task, p in (test_lists or default_test_lists(data_root)).items()}
    unknown = [t for t in lists if t not in SUBMISSION_TASKS]
    if unknown or not lists:
        raise EMENetInputError(f"test lists must be given for tasks among {list(SUBMISSION_TASKS)}, got {list(lists)}")
    missing = [str(p) for p in lists.values() if not p.is_file()]
    if missing:
        raise EMENetInputError(f"test list{'s' if len(missing) > 1 else ''} not found: {', '.join(missing)}")
    tasks_of: dict[str, list[str]] = {}
    for task in SUBMISSION_TASKS:
        for name in read_test_list(lists[task]) if task in lists else []:
            tasks_of.setdefault(name, []).append(task)
    if not tasks_of:
        raise EMENetInputError(f"the test lists {', '.join(map(str, lists.values()))} name no video")

    videos = find_videos(video_dir)
    video_of = {name: videos.get(video_stem(name, videos)) for name in tasks_of}
    no_video = [n for n, p in video_of.items() if p is None]
    if no_video:
        raise EMENetInputError(f"no video under {video_dir} for {len(no_video)} test name(s): "
                               f"{', '.join(no_video[:5])}{' ...' if len(no_video) > 5 else ''}")
    crop_dir_of = {n: next((r / n for r in crop_roots if (r / n).is_dir()), crops_root / n) for n in tasks_of}
    no_crops = [n for n in tasks_of if not crop_dir_of[n].is_dir()]
    if no_crops:
        raise EMENetInputError(f"no crop folder under {' or '.join(map(str, crop_roots))} for {len(no_crops)} test name(s): "
                               f"{', '.join(no_crops[:5])}{' ...' if len(no_crops) > 5 else ''}")

    unique_videos = sorted(set(video_of.values()))
    workers = max(1, min(num_workers or min(os.cpu_count() or 1, 4), len(unique_videos)))

    def measure(path: Path) -> tuple[float, int, int]:
        info = video_info(path)
        return info.fps, info.num_frames, count_video_frames(path, count_method)

    with ThreadPoolExecutor(workers) as pool, \
            tqdm(total=len(unique_videos), unit="video", desc="counting frames", disable=not progress) as bar:
        facts = {}
        for path, result in zip(unique_videos, pool.map(measure, unique_videos)):
            facts[path] = result
            bar.update()

    entries = []
    for name, tasks in tasks_of.items():
        path = video_of[name]
        fps, header_frames, num_frames = facts[path]
        if num_frames <= 0:
            raise EMENetInputError(f"{path}: the video of {name} has no decodable frames")
        if header_frames > 0 and header_frames != num_frames:
            log.warning("%s: the header says %d frames, %d counted (%s); using the count", path, header_frames,
                        num_frames, count_method)
        crop_frames = list_crop_frames(crop_dir_of[name])
        crop_frames = crop_frames[crop_frames >= 1]
        beyond = int((crop_frames > num_frames).sum())
        if beyond:
            log.warning("%s: %d crop(s) numbered beyond the video's %d frames are ignored", name, beyond, num_frames)
            crop_frames = crop_frames[crop_frames <= num_frames]
        if len(crop_frames) == 0:
            raise EMENetInputError(f"{crop_dir_of[name]}: no face crop for test name {name}; its frames cannot be "
                                   f"predicted")
        entries.append(TestVideo(name, tuple(tasks), path.resolve(), crop_dir_of[name].resolve(), fps, num_frames,
                                 crop_frames, header_frames, count_method))
    test_set = TestSet(entries)
    log.info("test set: %d names (%s), %d frames, %d with a crop", len(test_set),
             ", ".join(f"{t} {len(test_set.names(t))}" for t in SUBMISSION_TASKS if t in lists), test_set.num_frames,
             sum(v.num_crops for v in test_set.values()))
    return test_set


# ------------------------------------------------------------------------ reading, writing

def frames_to_ranges(frames: np.ndarray) -> str:
    """Increasing frame numbers -> `a-b;c;d-e` runs (the CSV form of `crop_frames`).

    >>> frames_to_ranges(np.array([1, 2, 3, 5, 7, 8]))
    '1-3;5;7-8'
    """
    frames = np.asarray(frames, np.int64)
    if len(frames) == 0:
        return ""
    breaks = np.flatnonzero(np.diff(frames) != 1)
    starts = frames[np.r_[0, breaks + 1]]
    ends = frames[np.r_[breaks, len(frames) - 1]]
    return ";".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts, ends))


def ranges_to_frames(text: str) -> np.ndarray:
    """Inverse of `frames_to_ranges`.

    >>> ranges_to_frames("1-3;5;7-8").tolist()
    [1, 2, 3, 5, 7, 8]
    """
    parts = []
    for run in filter(None, str(text).split(";")):
        a, _, b = run.partition("-")
        parts.append(np.arange(int(a), int(b or a) + 1, dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".txt")


def write_test_set(test_set: TestSet, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write the index as Parquet, or CSV when `path` ends in .csv or .txt, atomically."""
    path = Path(path)
    df = test_set.to_dataframe()
    with atomic_path(path, overwrite) as tmp:
        if _is_csv(path):
            df.assign(crop_frames=[frames_to_ranges(f) for f in df["crop_frames"]]).to_csv(tmp, index=False)
        else:
            table = pa.Table.from_pandas(df, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), _FORMAT_KEY: FORMAT.encode()})
            pq.write_table(table, tmp)
    return path


def read_test_set(path: str | os.PathLike) -> TestSet:
    """Read an index written by `write_test_set` (Parquet or CSV)."""
    path = Path(path)
    if not path.is_file():
        raise EMENetInputError(f"{path}: test-set file not found (write it with Training/create_test_set_file.py)")
    try:
        if _is_csv(path):
            df = pd.read_csv(path, keep_default_na=False, dtype={"crop_frames": str})
            crop_frames = [ranges_to_frames(s) for s in df["crop_frames"]]
        else:
            table = pq.read_table(path)
            if (table.schema.metadata or {}).get(_FORMAT_KEY) != FORMAT.encode():
                raise EMENetInputError(f"{path}: not an EMENet test-set file (format {FORMAT} expected)")
            df = table.to_pandas()
            crop_frames = [np.asarray(f, np.int64) for f in df["crop_frames"]]
    except (OSError, ValueError, pa.ArrowException) as exc:
        if isinstance(exc, EMENetInputError):
            raise
        raise EMENetInputError(f"{path}: cannot read the test-set file "
                               f"({type(exc).__name__}: {str(exc)[:160]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise EMENetInputError(f"{path}: not an EMENet test-set file (missing columns {missing})")
    entries = []
    for row, frames in zip(df.itertuples(index=False), crop_frames):
        tasks = tuple(t for t in SUBMISSION_TASKS if bool(getattr(row, f"task_{t}")))
        entries.append(TestVideo(str(row.name), tasks, Path(row.video_path), Path(row.crop_dir), float(row.fps),
                                 int(row.num_frames), frames, int(row.header_num_frames), str(row.frame_count_method)))
    return TestSet(entries)
