"""Interactive HTML reports (emenet.viz.report): the embedded data equals the CSV; folder runs get an
index page and one Plotly script beside the reports."""
from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.cli import main as emenet_main
from emenet.tasks import AU_NAMES

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "example_image" / "astronaut_photo.jpg"


@pytest.fixture(scope="module")
def plotly(require_extra):
    return require_extra("plotly", "report")


def _small_video(path: Path, n: int = 12, shift: int = 1) -> Path:
    face = cv2.resize(cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB), (240, 240), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 240, 240, "yuv420p"
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(face, shift * i, axis=1), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _assert_report_matches_csv(html: str, csv: Path) -> dict:
    from emenet.viz.report.video_report import read_report_data
    data = read_report_data(html)
    table = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    assert set(data["tracks"]) == {str(t) for t in table["track"].unique()}
    for tid, columns in data["tracks"].items():
        rows = table[table["track"] == int(tid)]
        assert set(columns) == set(data["columns"]) and len(columns["frame"]) == len(rows)
        for name, values in columns.items():
            expected = rows[name].tolist()
            for got, want in zip(values, expected):
                if isinstance(want, float) and math.isnan(want):
                    assert got is None, name
                elif isinstance(want, (float, np.floating)):
                    assert got == pytest.approx(float(want), rel=1e-12, abs=0), name
                else:
                    assert got == (want.item() if hasattr(want, "item") else want), name
    return data


def test_report_page_of_a_table(plotly):
    """Two tracks, conformal columns and an ensemble's epistemic column: traces per track, a track menu."""
    from emenet.viz.report.video_report import DATA_ELEMENT_ID, read_report_data, video_report_html
    rng = np.random.default_rng(0)
    n = 8
    parts = []
    for tid in (0, 1):
        part = {"track": tid, "frame": np.arange(n), "time": np.arange(n) / 25, "face_found": True,
                "valence": rng.uniform(-1, 1, n), "arousal": rng.uniform(-1, 1, n), "expression": rng.integers(0, 7, n),
                "expression_name": "Happiness", "expression_uncertainty": rng.random(n),
                "expression_epistemic": rng.random(n) / 10, "EXPR_set": "Happiness|Surprise", "EXPR_set_size": 2,
                "valence_lo": -0.5, "valence_hi": np.where(np.arange(n) == 3, np.nan, 0.5)}
        part.update({f"{a}_prob": rng.random(n) for a in AU_NAMES})
        parts.append(pd.DataFrame(part))
    table = pd.concat(parts, ignore_index=True)
    html = video_report_html(table, title="a <b>video</b>", thumbs={0: {2: "AAAA"}})
    data = read_report_data(html)
    assert data["tracks"]["1"]["EXPR_set"] == ["Happiness|Surprise"] * n
    assert data["tracks"]["0"]["valence_hi"][3] is None  # NaN travels as null
    np.testing.assert_allclose(data["tracks"]["1"]["arousal"], table.loc[table.track == 1, "arousal"])
    assert f'id="{DATA_ELEMENT_ID}"' in html and "a &lt;b&gt;video&lt;/b&gt;" in html  # the title is escaped
    assert "track 0" in html and "track 1" in html  # the menu
    assert len(re.findall(r"<script[^>]*>", html)) >= 4 and "plotly.js" in html.lower()  # script embedded
    assert '"2": "AAAA"' in html


@pytest.mark.slow
def test_predict_report_for_a_video_and_a_folder(plotly, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = emenet.save_checkpoint(tmp_path / "m.pth", emenet.create_model("emenet_v"), 1)
    video = _small_video(tmp_path / "clip.mp4")
    base = ["--checkpoint", str(ckpt), "--no_progress", "--backend", "eager", "--min_track_length", "1", "--report"]
    assert emenet_main(["predict", str(video), "--output_dir", str(tmp_path / "one"), *base]) == 0
    html = (tmp_path / "one" / "clip_report.html").read_text()
    data = _assert_report_matches_csv(html, tmp_path / "one" / "clip_predictions.csv")
    assert "valence" in data["columns"] and "AU12_prob" in data["columns"]
    thumbs = json.loads(re.search(r'id="emenet-thumbs">(.*?)</script>', html, re.S).group(1))
    assert thumbs["0"] and all(len(v) > 100 for v in thumbs["0"].values())  # JPEG face crops
    assert len(html) > 1_000_000  # Plotly's script is inside: the page opens without a network

    folder = tmp_path / "videos"
    folder.mkdir()
    _small_video(folder / "a.mp4")
    _small_video(folder / "b.mp4", shift=2)
    assert emenet_main(["predict", str(folder), "--output_dir", str(tmp_path / "many"), *base]) == 0
    many = tmp_path / "many"
    assert (many / "plotly.min.js").stat().st_size > 1_000_000
    index = (many / "report_index.html").read_text()
    for name in ("a", "b"):
        page = (many / name / f"{name}_report.html").read_text()
        assert 'src="../plotly.min.js"' in page and len(page) < 1_000_000  # the script once, beside them
        _assert_report_matches_csv(page, many / name / f"{name}_predictions.csv")
        assert f'href="{name}/{name}_report.html"' in index
