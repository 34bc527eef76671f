"""The index page of a folder run's reports, and Plotly's script written once beside them."""
from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emenet.io_utils import write_atomic

PLOTLY_JS_NAME = "plotly.min.js"
INDEX_NAME = "report_index.html"


def write_plotly_js(output_dir: str | os.PathLike) -> Path:
    """`<output_dir>/plotly.min.js`, the installed Plotly's script (rewritten: it follows the installed version)."""
    from emenet.viz.report.video_report import plotly_js_source
    path = Path(output_dir) / PLOTLY_JS_NAME
    source = plotly_js_source()
    return write_atomic(path, lambda tmp: tmp.write_text(source, encoding="utf-8"))


def _report_of(output_dir: str | os.PathLike, video: str) -> Path | None:
    found = sorted(Path(output_dir).glob("*_report.html"))
    stem = Path(video).stem
    return next((p for p in found if p.name == f"{stem}_report.html"), found[0] if found else None)


def index_rows(root: str | os.PathLike, outcomes: Sequence[Any]) -> list[dict[str, Any]]:
    """Per video: its status and counts, and its report's path relative to `root` (None if it has none)."""
    rows = []
    for o in outcomes:
        report = _report_of(o.output_dir, o.video) if o.status in ("done", "skipped") else None
        rows.append({"video": o.video, "status": o.status, "frames": o.frames, "tracks": o.tracks,
                     "face_frames": o.face_frames, "error": o.error,
                     "report": None if report is None else os.path.relpath(report, root)})
    return rows


def report_index_html(rows: Sequence[dict[str, Any]], title: str = "EMENet reports") -> str:
    """A plain table linking every video's report (no script needed)."""
    body = []
    for r in rows:
        link = (f'<a href="{html.escape(r["report"])}">{html.escape(Path(r["video"]).name)}</a>' if r["report"]
                else html.escape(Path(r["video"]).name))
        cells = [link, html.escape(r["status"]), *(html.escape("" if r[k] is None else str(r[k]))
                                                   for k in ("frames", "tracks", "face_frames", "error"))]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("video", "status", "frames", "tracks", "frames with a face", "error"))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            "<style>body{font-family:sans-serif;margin:1em}td,th{padding:2px 10px;text-align:left}"
            "tr:nth-child(even){background:#f3f3f3}</style></head>"
            f"<body><h2>{html.escape(title)}</h2><table><tr>{head}</tr>{''.join(body)}</table></body></html>\n")


def write_report_index(output_dir: str | os.PathLike, outcomes: Sequence[Any]) -> Path:
    """`<output_dir>/report_index.html` for a folder run's outcomes (summary.csv's rows)."""
    page = report_index_html(index_rows(output_dir, outcomes), title=f"EMENet reports: {Path(output_dir).resolve()}")
    return write_atomic(Path(output_dir) / INDEX_NAME, lambda tmp: tmp.write_text(page, encoding="utf-8"))
