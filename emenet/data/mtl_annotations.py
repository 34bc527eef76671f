"""Parsing and validation of one s-Aff-Wild2 (multi-task challenge) annotation file.

The 3rd and 4th ABAW's multi-task challenge ships one file per split: a header
`image,valence,arousal,expression,aus`, then one row per annotated image,
`<video>/<frame>.jpg,v,a,e,au1,...,au26` (16 comma-separated fields). Frames are a sparse sample
of each video. Unannotated: -5 for valence/arousal, -1 for the expression and the AUs.

    >>> rows = read_mtl_file(Path("training_set_annotations_22.txt"))  # doctest: +SKIP
    >>> rows.names[:2], rows.frames[:2], rows.au.shape  # doctest: +SKIP
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emenet.data.annotations import check_ranges, check_row_widths, read_header_and_body
from emenet.errors import EMENetInputError
from emenet.tasks import AU_NAMES, EXPR_NAMES_WITH_OTHER

MTL_HEADER = "image,valence,arousal,expression,aus"
# The same header with the AU column spelled out, as some copies have it.
_MTL_HEADER_EXPANDED = "image,valence,arousal,expression," + ",".join(AU_NAMES)
MTL_WIDTH = 1 + 2 + 1 + len(AU_NAMES)
MTL_EXPR_CLASSES = len(EXPR_NAMES_WITH_OTHER)


@dataclass(frozen=True)
class MTLRows:
    """One file's rows, in file order: video name, 1-based frame, raw labels (-1 / -5 kept)."""

    names: np.ndarray  # (n,) object
    frames: np.ndarray  # (n,) int64
    va: np.ndarray  # (n, 2) float32
    expr: np.ndarray  # (n,) float32
    au: np.ndarray  # (n, 12) float32


def read_mtl_file(path: Path) -> MTLRows:
    """Read and validate one multi-task annotation file; the first problem names file and line."""
    path = Path(path)
    header, body = read_header_and_body(path)
    text = ",".join(part.strip() for part in header.decode("utf-8", errors="replace").strip().split(","))
    if text not in (MTL_HEADER, _MTL_HEADER_EXPANDED):
        raise EMENetInputError(f"{path}:1: expected header '{MTL_HEADER}', got '{text[:120]}'")
    body = body.rstrip()
    if not body:
        empty = np.empty((0,), dtype=np.float32)
        return MTLRows(np.empty(0, dtype=object), np.empty(0, dtype=np.int64), np.empty((0, 2), np.float32), empty,
                       np.empty((0, len(AU_NAMES)), np.float32))
    body += b"\n"
    check_row_widths(path, body, MTL_WIDTH)
    table = pd.read_csv(io.BytesIO(body), header=None, names=list(range(MTL_WIDTH)), dtype={0: str},
                        na_filter=False, engine="c", skip_blank_lines=False)
    names, frames = _parse_images(path, table[0])
    values = _numbers(path, table.iloc[:, 1:])
    va, expr, au = values[:, 0:2], values[:, 2:3], values[:, 3:]
    check_ranges(path, va, "VA")
    check_ranges(path, expr, "EXPR", MTL_EXPR_CLASSES)
    check_ranges(path, au, "AU")
    _check_unique(path, names, frames)
    return MTLRows(names, frames, va.astype(np.float32), expr[:, 0].astype(np.float32), au.astype(np.float32))


def _parse_images(path: Path, images: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """`<video>/<digits>.jpg` -> (video names, frame numbers); anything else stops at its line."""
    parts = images.str.strip().str.extract(r"^(?P<name>[^/\\]+)[/\\](?P<frame>\d+)\.jpg$")
    bad = np.flatnonzero(parts["name"].isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise EMENetInputError(f"{path}:{row + 2}: image '{str(images.iloc[row])[:80]}': expected <video>/<frame>.jpg")
    frames = parts["frame"].astype(np.int64).to_numpy()
    zero = np.flatnonzero(frames < 1)
    if zero.size:
        raise EMENetInputError(f"{path}:{int(zero[0]) + 2}: frame numbers start at 1, got {int(frames[zero[0]])}")
    return parts["name"].to_numpy(dtype=object), frames


def _numbers(path: Path, block: pd.DataFrame) -> np.ndarray:
    values = block.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        row, col = (int(i) for i in bad[0])
        raise EMENetInputError(f"{path}:{row + 2}: non-numeric value '{str(block.iat[row, col]).strip()[:40]}'")
    return values


def _check_unique(path: Path, names: np.ndarray, frames: np.ndarray) -> None:
    keys = pd.Series(names).astype(str) + "/" + pd.Series(frames).astype(str)
    dup = np.flatnonzero(keys.duplicated().to_numpy())
    if dup.size:
        row = int(dup[0])
        raise EMENetInputError(f"{path}:{row + 2}: image {keys.iloc[row]} is listed twice")
