"""One video's predictions as an interactive HTML page (Plotly), from its per-frame table.

Panels on one time axis: valence and arousal (with their conformal intervals as bands when the
table has them), the expression ribbon with the expression set's size, the AU probability
heatmap, and the uncertainty traces (total; epistemic dashed for an ensemble). A menu selects
the face track; hovering or clicking a frame shows that track's face crop of the nearest
sampled frame. The page needs no network: Plotly's script is embedded, or (for a folder of
reports) written once beside them and referenced by a relative path.

The numbers behind the charts are also embedded verbatim as JSON in
`<script type="application/json" id="emenet-data">` (the CSV's columns listed in
`REPORT_COLUMNS`, per track), so a reader or a test can check them against the CSV.

    >>> html = video_report_html(pd.read_csv("clip_predictions.csv"), title="clip.mp4")  # doctest: +SKIP
"""
from __future__ import annotations

import html as html_lib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from emenet.extras import require
from emenet.tasks import AU_NAMES, EXPR_NAMES_WITH_OTHER, VA_NAMES, expr_names

if TYPE_CHECKING:  # the report extra
    import plotly.graph_objects

DATA_ELEMENT_ID = "emenet-data"
PLOT_DIV_ID = "emenet-timeline"
# One colour per expression (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise), as the timeline PNG.
EXPR_COLOURS = ("#9e9e9e", "#d32f2f", "#689f38", "#7b1fa2", "#fbc02d", "#1976d2", "#f57c00", "#5d4037")  # + Other
ROWS = ("valence", "arousal", "expression", "AU", "uncertainty")


def report_columns(table: pd.DataFrame) -> list[str]:
    """The table's columns the report embeds: frame, time, face, predictions, intervals, sets, uncertainty."""
    wanted = ["track", "frame", "time", "face_found", "valence", "arousal", "valence_lo", "valence_hi", "arousal_lo",
              "arousal_hi", "abstain_VA", "expression", "expression_name", "EXPR_set", "EXPR_set_size", "abstain_EXPR",
              "abstain_AU", *(f"{n}_prob" for n in AU_NAMES), *(f"{n}_set" for n in AU_NAMES)]
    wanted += [f"{n}_{k}" for n in ("expression", *VA_NAMES, *AU_NAMES) for k in ("uncertainty", "epistemic")]
    return [c for c in wanted if c in table.columns]


def _json_values(series: pd.Series) -> list[Any]:
    """A column as JSON values: NaN -> null, numpy scalars -> Python."""
    out = []
    for v in series.tolist():
        if isinstance(v, float) and math.isnan(v):
            out.append(None)
        elif isinstance(v, (np.generic,)):
            out.append(v.item())
        else:
            out.append(v)
    return out


def report_data(table: pd.DataFrame) -> dict[str, Any]:
    """{"columns": [...], "tracks": {track: {column: values}}} of the embedded columns."""
    cols = report_columns(table)
    tracks = table["track"].unique().tolist() if "track" in table.columns else [0]
    out: dict[str, Any] = {"columns": cols, "tracks": {}}
    for tid in tracks:
        rows = table[table["track"] == tid] if "track" in table.columns else table
        out["tracks"][str(int(tid))] = {c: _json_values(rows[c]) for c in cols}
    return out


def _track_traces(go, rows: pd.DataFrame, tid: int, visible: bool) -> list[tuple[Any, int]]:
    """(trace, subplot row) pairs of one track."""
    t = rows["time"].to_numpy()
    traces: list[tuple[Any, int]] = []
    blue = "#1976d2"
    for r, dim in enumerate(VA_NAMES, start=1):
        if dim not in rows:
            continue
        if f"{dim}_lo" in rows:
            traces.append((go.Scatter(x=t, y=rows[f"{dim}_hi"], mode="lines", line={"width": 0}, showlegend=False,
                                      hoverinfo="skip", visible=visible, name=f"{dim} upper"), r))
            traces.append((go.Scatter(x=t, y=rows[f"{dim}_lo"], mode="lines", line={"width": 0}, fill="tonexty",
                                      fillcolor="rgba(25,118,210,0.2)", name=f"{dim} interval", visible=visible,
                                      hovertemplate="interval low %{y:.2f}<extra></extra>"), r))
        traces.append((go.Scatter(x=t, y=rows[dim], mode="lines", line={"color": blue, "width": 1.5}, name=dim,
                                  visible=visible, hovertemplate=f"{dim} %{{y:.3f}}<br>t %{{x:.2f}} s<extra></extra>"), r))
    classes = expr_names(8 if f"{EXPR_NAMES_WITH_OTHER[-1]}_prob" in rows else 7)  # Other in later releases
    if "expression" in rows:
        expr = rows["expression"].to_numpy(dtype=float)
        sets = rows["EXPR_set"].fillna("").astype(str).tolist() if "EXPR_set" in rows else [""] * len(rows)
        hover = [[f"{classes[int(e)]}" + (f"<br>set: {s.replace('|', ', ')}" if s else "") for e, s in zip(expr, sets)]]
        n = len(classes)
        scale = [[edge / n, EXPR_COLOURS[k]] for k in range(n) for edge in (k, k + 1)]  # one flat band per class
        traces.append((go.Heatmap(x=t, y=["expression"], z=[expr], zmin=-0.5, zmax=n - 0.5, colorscale=scale,
                                  showscale=False, text=hover, hovertemplate="%{text}<extra></extra>", visible=visible,
                                  name="expression"), 3))
    au = [f"{n}_prob" for n in AU_NAMES if f"{n}_prob" in rows]
    if au:
        traces.append((go.Heatmap(x=t, y=[c[:-5] for c in au], z=rows[au].to_numpy().T, zmin=0, zmax=1,
                                  colorscale="Greys", colorbar={"title": "P(AU)", "len": 0.25, "y": 0.3},
                                  hovertemplate="%{y} %{z:.2f}<br>t %{x:.2f} s<extra></extra>", visible=visible,
                                  name="AU"), 4))
    curves = [("expression", "#7b1fa2"), ("valence", blue), ("arousal", "#f57c00")]
    for name, colour in curves:
        if f"{name}_uncertainty" in rows:
            traces.append((go.Scatter(x=t, y=rows[f"{name}_uncertainty"], mode="lines", name=f"{name} uncertainty",
                                      line={"color": colour, "width": 1.2}, visible=visible), 5))
        if f"{name}_epistemic" in rows:
            traces.append((go.Scatter(x=t, y=rows[f"{name}_epistemic"], mode="lines", name=f"{name} epistemic",
                                      line={"color": colour, "width": 1, "dash": "dash"}, visible=visible), 5))
    au_unc = [f"{n}_uncertainty" for n in AU_NAMES if f"{n}_uncertainty" in rows]
    if au_unc:
        traces.append((go.Scatter(x=t, y=rows[au_unc].mean(axis=1), mode="lines", name="AU uncertainty (mean)",
                                  line={"color": "#2e7d32", "width": 1.2}, visible=visible), 5))
    if "EXPR_set_size" in rows:
        traces.append((go.Scatter(x=t, y=rows["EXPR_set_size"] / len(classes), mode="lines",
                                  line={"color": "black", "width": 1, "shape": "hv"},
                                  name=f"expression set size / {len(classes)}",
                                  visible=visible, customdata=rows["EXPR_set_size"],
                                  hovertemplate="set size %{customdata}<extra></extra>"), 5))
    return traces


def timeline_figure(table: pd.DataFrame, title: str = "") -> "plotly.graph_objects.Figure":
    """The Plotly figure of the module docstring (every track's traces; a menu picks the track)."""
    go = require("plotly").graph_objects
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=5, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.2, 0.2, 0.08, 0.3, 0.22], subplot_titles=ROWS)
    tracks = table["track"].unique().tolist() if "track" in table.columns else [0]
    owner = []
    for i, tid in enumerate(tracks):
        rows = table[table["track"] == tid] if "track" in table.columns else table
        for trace, row in _track_traces(go, rows, int(tid), visible=(i == 0)):
            fig.add_trace(trace, row=row, col=1)
            owner.append(int(tid))
    if len(tracks) > 1:
        buttons = [{"label": f"track {int(tid)}", "method": "update",
                    "args": [{"visible": [o == int(tid) for o in owner]}]} for tid in tracks]
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 0.0, "y": 1.08, "xanchor": "left"}])
    for r in (1, 2):
        fig.update_yaxes(range=[-1.05, 1.05], row=r, col=1)
    fig.update_yaxes(range=[0, 1.02], row=5, col=1)
    fig.update_xaxes(title_text="time (s)", row=5, col=1)
    fig.update_layout(title={"text": title, "x": 0.5}, height=950, hovermode="x", template="plotly_white",
                      legend={"orientation": "h", "y": -0.08}, margin={"l": 60, "r": 20, "t": 90, "b": 60})
    return fig, tracks


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}} #emenet-crop{{position:fixed;right:1em;top:1em;border:1px solid #999;
background:#fff;padding:4px;text-align:center;font-size:12px}} #emenet-crop img{{width:112px;height:112px;
image-rendering:pixelated}}</style></head>
<body><h2>{title}</h2><p>{summary}</p>
<div id="emenet-crop"><img id="emenet-crop-img" alt="face crop"><div id="emenet-crop-text">hover a frame</div></div>
{plot}
<script type="application/json" id="{data_id}">{data}</script>
<script type="application/json" id="emenet-thumbs">{thumbs}</script>
<script>
(function () {{
  var thumbs = JSON.parse(document.getElementById("emenet-thumbs").textContent);
  var data = JSON.parse(document.getElementById("{data_id}").textContent);
  var track = Object.keys(data.tracks)[0];
  var plot = document.getElementById("{plot_id}");
  function show(ev) {{
    if (!ev || !ev.points || !ev.points.length) return;
    var t = ev.points[0].x, rows = data.tracks[track], best = 0;
    for (var i = 0; i < rows.time.length; i++) if (Math.abs(rows.time[i] - t) < Math.abs(rows.time[best] - t)) best = i;
    var frame = rows.frame[best], pics = thumbs[track] || {{}}, keys = Object.keys(pics).map(Number), near = null;
    for (var k = 0; k < keys.length; k++) if (near === null || Math.abs(keys[k] - frame) < Math.abs(near - frame)) near = keys[k];
    if (near !== null) document.getElementById("emenet-crop-img").src = "data:image/jpeg;base64," + pics[near];
    document.getElementById("emenet-crop-text").textContent = "track " + track + ", frame " + frame +
      (near !== null && near !== frame ? " (crop of " + near + ")" : "");
  }}
  plot.on("plotly_hover", show);
  plot.on("plotly_click", show);
  plot.on("plotly_buttonclicked", function (ev) {{ track = ev.button.label.replace("track ", ""); }});
}})();
</script></body></html>
"""


def _script_safe(text: str) -> str:
    """JSON inside a <script> element: no `</` can close it early."""
    return text.replace("</", "<\\/")


def video_report_html(table: pd.DataFrame, title: str = "", thumbs: Mapping[int, Mapping[int, str]] | None = None,
                      plotly_js: str | bool = True, summary: str = "") -> str:
    """The page. `plotly_js`: True embeds Plotly's script; a path (relative to the page) references it."""
    pio = require("plotly").io
    fig, _ = timeline_figure(table, title)
    plot = pio.to_html(fig, include_plotlyjs=plotly_js, full_html=False, div_id=PLOT_DIV_ID,
                       config={"displaylogo": False, "responsive": True})
    data = json.dumps(report_data(table), allow_nan=False)
    thumbs_json = json.dumps({str(k): {str(f): v for f, v in d.items()}
                              for k, d in (thumbs or {}).items()})
    return _PAGE.format(title=html_lib.escape(title), summary=html_lib.escape(summary), plot=plot,
                        data_id=DATA_ELEMENT_ID, data=_script_safe(data), thumbs=_script_safe(thumbs_json),
                        plot_id=PLOT_DIV_ID)


def read_report_data(html: str) -> dict[str, Any]:
    """The embedded data of a report page (for tests and for readers who want the numbers)."""
    start_tag = f'<script type="application/json" id="{DATA_ELEMENT_ID}">'
    start = html.index(start_tag) + len(start_tag)
    end = html.index("</script>", start)
    return json.loads(html[start:end].replace("<\\/", "</"))


def plotly_js_source() -> str:
    """Plotly's own minified script (the installed package's), to write once beside a folder of reports."""
    return require("plotly").offline.get_plotlyjs()
