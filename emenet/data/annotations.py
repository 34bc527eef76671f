"""Parsing and validation of one Aff-wild2 annotation file (AU_Set, EXPR_Set or VA_Set).

A file is one header line, then one row per video frame (row k belongs to frame k + 1).
Parsing is vectorised (numpy for the structure, pandas' C parser for the numbers) because
Aff-wild2 has ~2.8M annotated frames; a malformed file stops with one line `path:line: why`.

Example:
    >>> labels = read_annotation_file(Path("annotations/AU_Set/Train_Set/12-24.txt"), "AU")
    >>> labels.shape  # (num_rows, 12), float32, -1 rows still in place
"""
from __future__ import annotations

import codecs
import io
from pathlib import Path

import numpy as np
import pandas as pd

from emenet.errors import EMENetInputError
from emenet.tasks import AU_NAMES, EXPR_NAMES, TASKS, TaskKind, TaskSpec

# Label columns of each annotated task, in file order; EXPR files hold one class index per row.
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "AU": AU_NAMES,
    "EXPR": ("expr",),
    "VA": ("valence", "arousal"),
}
ANNOTATED_TASKS: tuple[str, ...] = ("AU", "EXPR", "VA")

_NEWLINE = ord("\n")
_COMMA = ord(",")


def check_task(task: str) -> str:
    """Canonical name of an annotated task ('au' -> 'AU'); EMENetInputError for anything else."""
    canonical = str(task).upper()
    if canonical not in LABEL_COLUMNS:
        raise EMENetInputError(f"unknown annotated task {task!r}; valid tasks are {list(ANNOTATED_TASKS)}")
    return canonical


def read_annotation_file(path: Path, task: str) -> np.ndarray:
    """Read one annotation file into a (num_rows, C) float32 array of raw values.

    EXPR files may have the 7-class header of the 2nd ABAW or the 8-class one (`...,Other`) of the
    3rd ABAW on; `read_annotation_file_with_classes` also says which.

    The -1 (AU, EXPR) and -5 (VA) markers of unannotated rows are kept as they are; turning them
    into a mask is the index's job. C is 12 for AU, 1 for EXPR, 2 for VA. Checks the header, the
    number of values per row, that every value is numeric and in range; the first problem raises
    EMENetInputError naming the file and its 1-based line number.
    """
    return read_annotation_file_with_classes(path, task)[0]


def read_header_and_body(path: Path) -> tuple[bytes, bytes]:
    """An annotation file's header line and the rest, without a UTF-8 BOM and with Unix line ends."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EMENetInputError(f"{path}: cannot read annotation file ({exc.strerror or exc})") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    header, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n")
    return header, body


def read_annotation_file_with_classes(path: Path, task: str) -> tuple[np.ndarray, int]:
    """`read_annotation_file` and the number of expression classes its header names (0 for AU, VA)."""
    path = Path(path)
    task = check_task(task)
    width = len(LABEL_COLUMNS[task])
    header, body = read_header_and_body(path)
    num_classes = _check_header(path, header, task)
    body = body.rstrip()  # trailing blank lines and whitespace are harmless
    if not body:
        return np.empty((0, width), dtype=np.float32), num_classes
    body += b"\n"
    check_row_widths(path, body, width)
    values = _parse_numbers(path, body, width)
    check_ranges(path, values, task, num_classes or len(EXPR_NAMES))
    return values.astype(np.float32), num_classes


def _check_header(path: Path, header: bytes, task: str) -> int:
    """Check the header line; return the expression class count it names (0 for AU and VA).

    A task with class variants accepts each variant's header: EXPR the 2nd ABAW's 7 classes
    and the 3rd ABAW on's 8 (`Other`)."""
    spec = TASKS[task]
    variants = {",".join(v): len(v) for v in spec.class_variants}
    text = header.decode("utf-8", errors="replace").strip()
    found = ",".join(part.strip() for part in text.split(","))
    if found in variants:
        return variants[found]
    expected = "' or '".join(variants) or spec.header
    if found != expected:
        if not text:
            raise EMENetInputError(f"{path}:1: expected header '{expected}', got an empty line")
        raise EMENetInputError(f"{path}:1: expected header '{expected}', got '{text[:120]}'")
    return 0


def check_row_widths(path: Path, body: bytes, width: int) -> None:
    """Every line must hold exactly `width` values: count commas per line without a Python loop."""
    buf = np.frombuffer(body, dtype=np.uint8)
    line_ends = np.flatnonzero(buf == _NEWLINE)
    commas = np.flatnonzero(buf == _COMMA)
    commas_per_line = np.diff(np.searchsorted(commas, line_ends), prepend=0)
    line_lengths = np.diff(line_ends, prepend=-1) - 1
    bad = np.flatnonzero((commas_per_line != width - 1) | (line_lengths == 0))
    if bad.size:
        row = int(bad[0])
        what = f"{width} comma-separated values" if width > 1 else "1 value"
        if line_lengths[row] == 0:
            got = "an empty line"
        else:
            got = str(int(commas_per_line[row]) + 1)
        raise EMENetInputError(f"{path}:{row + 2}: expected {what}, got {got}")


def _parse_numbers(path: Path, body: bytes, width: int) -> np.ndarray:
    """Parse the (already width-checked) rows with pandas' C parser; locate the culprit on failure."""
    try:
        frame = pd.read_csv(io.BytesIO(body), header=None, names=list(range(width)), dtype=np.float64,
                            na_filter=False, engine="c", skip_blank_lines=False)
        values = frame.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        values = None
    if values is None or values.shape[0] != body.count(b"\n") or not np.isfinite(values).all():
        _raise_first_non_numeric(path, body, width)
    return values


def _raise_first_non_numeric(path: Path, body: bytes, width: int) -> None:
    """Error path only: find the first token that is not a finite number."""
    tokens = body.decode("utf-8", errors="replace").replace("\n", ",").split(",")[:-1]
    parsed = pd.to_numeric(pd.Series(tokens, dtype=object).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(parsed))
    if bad.size == 0:  # the C parser disagreed with to_numeric; still report where the data starts
        raise EMENetInputError(f"{path}:2: could not parse the values as numbers")
    index = int(bad[0])
    raise EMENetInputError(f"{path}:{index // width + 2}: non-numeric value '{tokens[index].strip()[:40]}'")


def _multilabel_range(spec: TaskSpec, values: np.ndarray, num_classes: int) -> tuple[np.ndarray, str]:
    missing = spec.missing_value
    return (values == 0) | (values == 1) | (values == missing), f"expected 0, 1 or {missing}"


def _multiclass_range(spec: TaskSpec, values: np.ndarray, num_classes: int) -> tuple[np.ndarray, str]:
    missing = spec.missing_value
    ok = (values == np.round(values)) & (values >= missing) & (values <= num_classes - 1)
    return ok, f"expected an integer in {missing}..{num_classes - 1}"


def _regression_range(spec: TaskSpec, values: np.ndarray, num_classes: int) -> tuple[np.ndarray, str]:
    missing = spec.missing_value
    ok = ((values >= -1) & (values <= 1)) | (values == missing)
    return ok, f"expected a value in [-1, 1] or the {missing:g} marker"


# Per kind: which label values are in range, and the rule an error states.
_KIND_RANGES = {TaskKind.MULTILABEL: _multilabel_range, TaskKind.MULTICLASS: _multiclass_range,
                TaskKind.BINNED_REGRESSION: _regression_range}


def check_ranges(path: Path, values: np.ndarray, task: str, num_expr_classes: int = len(EXPR_NAMES)) -> None:
    """Every value of one task's (rows, C) label columns in its range; row r is line r + 2."""
    spec = TASKS[task]
    ok, rule = _KIND_RANGES[spec.kind](spec, values, num_expr_classes)
    bad = np.argwhere(~ok)
    if bad.size:
        row, col = (int(i) for i in bad[0])
        column = LABEL_COLUMNS[task][col]
        raise EMENetInputError(f"{path}:{row + 2}: {column} value {values[row, col]:g}: {rule}")
