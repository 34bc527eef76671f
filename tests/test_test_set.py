"""Test-set index, ensemble submission files and their scorer, on a small synthetic dataset.

The scripts run as subprocesses (as users run them); reruns and the scorer are called as
library functions. Torch runs on one thread: the suite shares two cores, where more threads
only wait on each other.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.errors import EMENetInputError
from emenet.inference.predictor import Predictor
from emenet.challenge.submission import (MERGED, members_from_names, read_submission_file, score_submission,
                                         write_submission)
from emenet.challenge.test_set import (build_test_set, frames_to_ranges, ranges_to_frames, read_test_set,
                                       write_test_set)
from emenet.evaluation.metrics import au_metrics, ccc, expr_metrics
from emenet.data.images import read_rgb

REPO = Path(__file__).resolve().parents[1]
CREATE = REPO / "Training" / "create_test_set_file.py"
TEST_ENSEMBLE = REPO / "Training" / "test_ensemble.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
HEADERS = {"AU": "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26",
           "EXPR": "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise",
           "VA": "valence,arousal"}
MEMBERS = ("m0", "m1")
GT_DIRS = {"AU": "AU_Set", "EXPR": "EXPR_Set", "VA": "VA_Set"}


def _run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600, env=ENV)


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_error_line(returncode: int, stderr: str) -> str:
    assert returncode == 2, stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]



@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """4 annotated + 2 test videos. The first test name also loses its first two crops, so
    both filling rules (nearest earlier crop; the first crop before it) are exercised."""
    from emenet.data.synth import generate_synthetic_dataset
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_dataset(root, num_videos=4, seed=0, min_frames=40, max_frames=60, num_test_videos=2,
                               overwrite=True, progress=False, num_workers=2)
    manifest = json.loads((root / "synth_manifest.json").read_text())
    test_names = sorted({n for names in manifest["test_names"].values() for n in names})
    missing = {n: set(manifest["names"][n]["missing_crops"]) for n in test_names}
    first = test_names[0]
    for frame in (1, 2):
        (root / "cropped_aligned" / first / f"{frame:05d}.jpg").unlink(missing_ok=True)
        missing[first].add(frame)
    return {"root": root, "manifest": manifest, "names": test_names, "missing": missing}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    ckpts = tmp_path_factory.mktemp("checkpoints")
    for seed, name in enumerate(MEMBERS):
        torch.manual_seed(seed)
        emenet.save_checkpoint(ckpts / name / f"net_epoch_1_{name}.pth", emenet.create_model("emenet_v"), 1)
    return ckpts


@pytest.fixture(scope="module")
def test_set_file(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("index") / "test_set.parquet"
    run = _run(CREATE, "--data_dir", str(synth["root"] / "cropped_aligned"), "--video_dir",
               str(synth["root"] / "videos"), "--out", str(out), "--no_progress")
    assert run.returncode == 0, run.stderr
    assert f"{len(synth['names'])} test names" in run.stdout
    return out


@pytest.fixture(scope="module")
def submission(test_set_file, checkpoints, tmp_path_factory, one_thread):
    """The script's main() in this process (its subprocess run is in the error test)."""
    save_dir = tmp_path_factory.mktemp("submission")
    code = _load_script(TEST_ENSEMBLE).main([
        "--names", *MEMBERS, "--load_epochs", "1", "--checkpoints_dir", str(checkpoints), "--test_set_file",
        str(test_set_file), "--save_dir", str(save_dir), "--batch_size", "16", "--chunk_size", "16", "--no_progress"])
    assert code == 0
    return save_dir


def _decode_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _read_rows(path: Path) -> tuple[str, np.ndarray]:
    lines = path.read_text().splitlines()
    return lines[0], np.array([[float(v) for v in line.split(",")] for line in lines[1:]])


# ------------------------------------------------------------------------------- index

def test_index_lists_every_frame_and_its_crops(synth, test_set_file, tmp_path):
    manifest, root = synth["manifest"], synth["root"]
    test_set = read_test_set(test_set_file)
    assert list(test_set) == list(dict.fromkeys(manifest["test_names"]["AU"] + manifest["test_names"]["EXPR"]
                                                + manifest["test_names"]["VA"]))
    for name in synth["names"]:
        entry, facts = test_set[name], manifest["names"][name]
        assert entry.num_frames == facts["num_frames"] == _decode_count(root / facts["video"])
        assert entry.fps == facts["fps"]
        assert entry.video_path == (root / facts["video"]).resolve()
        assert set(entry.tasks) == {t for t, names in manifest["test_names"].items() if name in names}
        expected = [f for f in range(1, entry.num_frames + 1) if f not in synth["missing"][name]]
        assert entry.crop_frames.tolist() == expected
        assert np.flatnonzero(~entry.has_crop()).tolist() == [f - 1 for f in sorted(synth["missing"][name])]
    df = pd.read_parquet(test_set_file)  # an open format, readable without emenet
    assert {"name", "task_AU", "num_frames", "crop_frames", "fps"} <= set(df.columns)
    # CSV form and the packet count agree with the decoded Parquet one
    csv = write_test_set(build_test_set(root, count_method="packets", progress=False), tmp_path / "test_set.csv")
    again = read_test_set(csv)
    assert [(v.name, v.tasks, v.num_frames, v.crop_frames.tolist()) for v in again.values()] == \
        [(v.name, v.tasks, v.num_frames, v.crop_frames.tolist()) for v in test_set.values()]


def test_frame_ranges_round_trip():
    frames = np.array([3, 4, 5, 9, 11, 12])
    assert frames_to_ranges(frames) == "3-5;9;11-12"
    assert ranges_to_frames(frames_to_ranges(frames)).tolist() == frames.tolist()
    assert ranges_to_frames("").tolist() == []


def test_index_errors_are_one_line(synth, tmp_path, capsys):
    root = synth["root"]
    code = _load_script(CREATE).main(["--data_dir", str(root), "--au_txt", str(tmp_path / "nope.txt"), "--out",
                                      str(tmp_path / "x.parquet"), "--no_progress"])
    assert "test list not found" in _one_error_line(code, capsys.readouterr().err)
    assert not (tmp_path / "x.parquet").exists()
    (tmp_path / "no_videos").mkdir()
    with pytest.raises(EMENetInputError, match="no video under"):
        build_test_set(root, tmp_path / "no_videos", progress=False)
    (tmp_path / "crops").mkdir()
    with pytest.raises(EMENetInputError, match="no crop folder"):
        build_test_set(tmp_path / "crops", root / "videos",
                       {"AU": root / "abaw2_test_set" / "test_set_AU_Challenge.txt"}, progress=False)
    with pytest.raises(EMENetInputError, match="test-set file not found"):
        read_test_set(tmp_path / "missing.parquet")


# ---------------------------------------------------------------------------- submission

def test_every_frame_in_every_file(synth, test_set_file, submission):
    test_set = read_test_set(test_set_file)
    for folder in (*MEMBERS, MERGED):
        for name, entry in test_set.items():
            for task in ("AU", "EXPR", "VA"):
                path = submission / folder / task / f"{name}.txt"
                if task not in entry.tasks:
                    assert not path.exists()
                    continue
                header, rows = _read_rows(path)
                assert header == HEADERS[task]
                assert len(rows) == entry.num_frames
                if task == "AU":
                    assert rows.shape[1] == 12 and set(np.unique(rows)) <= {0.0, 1.0}
                elif task == "EXPR":
                    assert rows.shape[1] == 1 and set(np.unique(rows)) <= set(range(7))
                else:
                    assert rows.shape[1] == 2 and np.abs(rows).max() <= 1
                table = pd.read_csv(submission / f"{folder}_with_uncertainty" / task / f"{name}.csv")
                assert len(table) == entry.num_frames and table["frame"].tolist() == list(range(1, len(table) + 1))
                unc = table[[c for c in table.columns if c.endswith(("_uncertainty", "_aleatoric"))]].to_numpy()
                assert unc.size and (unc >= 0).all() and (unc <= 1 + 1e-6).all()
                assert any(c.endswith("_epistemic") for c in table.columns) == (folder == MERGED)


def test_frames_without_crop_repeat_the_nearest_earlier(synth, test_set_file, submission):
    test_set = read_test_set(test_set_file)
    checked_before_first = 0
    for name in synth["names"]:
        entry = test_set[name]
        crops = entry.crop_frames
        assert synth["missing"][name], "the synthetic test video should miss some crops"
        for task in entry.tasks:
            _, rows = _read_rows(submission / MERGED / task / f"{name}.txt")
            table = pd.read_csv(submission / f"{MERGED}_with_uncertainty" / task / f"{name}.csv")
            for frame in sorted(synth["missing"][name]):
                earlier = crops[crops < frame]
                source = int(earlier[-1]) if len(earlier) else int(crops[0])
                checked_before_first += not len(earlier)
                np.testing.assert_array_equal(rows[frame - 1], rows[source - 1])
                assert table.loc[frame - 1, "has_crop"] == 0 and table.loc[frame - 1, "source_frame"] == source
                np.testing.assert_array_equal(table.iloc[frame - 1, 2:].to_numpy(),
                                              table.iloc[source - 1, 2:].to_numpy())
            own = table[table["has_crop"] == 1]
            assert (own["source_frame"] == own["frame"]).all()
    assert checked_before_first > 0


def test_members_stream_each_video_as_one_sequence(synth, test_set_file, submission, checkpoints, one_thread):
    """Chunks of 16 crops with the hidden state carried == the whole video in one call."""
    test_set = read_test_set(test_set_file)
    name = synth["names"][0]
    entry = test_set[name]
    crops = np.stack([read_rgb(p, 112) for p in entry.crop_paths()])
    predictor = Predictor([checkpoints / "m1" / "net_epoch_1_m1.pth"], batch_size=64)
    preds, _ = predictor.predict_frames(crops)
    rows = entry.crop_frames - 1
    au = pd.read_csv(submission / "m1_with_uncertainty" / "AU" / f"{name}.csv")
    np.testing.assert_allclose(au[[f"{n}_prob" for n in emenet.AU_NAMES]].to_numpy()[rows], preds.au_probs, atol=2e-6)
    va = pd.read_csv(submission / "m1_with_uncertainty" / "VA" / f"{name}.csv")
    np.testing.assert_allclose(va[["valence", "arousal"]].to_numpy()[rows], preds.va, atol=2e-6)


def test_merged_is_the_mean_of_the_members(synth, test_set_file, submission):
    test_set = read_test_set(test_set_file)
    for name, entry in test_set.items():
        for task in entry.tasks:
            members = [pd.read_csv(submission / f"{m}_with_uncertainty" / task / f"{name}.csv") for m in MEMBERS]
            merged = pd.read_csv(submission / f"{MERGED}_with_uncertainty" / task / f"{name}.csv")
            _, rows = _read_rows(submission / MERGED / task / f"{name}.txt")
            if task == "AU":
                cols = [f"{n}_prob" for n in emenet.AU_NAMES]
                mean = np.mean([m[cols].to_numpy() for m in members], axis=0)
                clear = np.abs(mean - 0.5) > 1e-7
                np.testing.assert_array_equal((mean > 0.5)[clear], rows[clear].astype(bool))
                np.testing.assert_allclose(merged[cols].to_numpy(), mean, atol=1e-7)
            elif task == "EXPR":
                cols = [f"{n}_prob" for n in emenet.EXPR_NAMES]
                mean = np.mean([m[cols].to_numpy() for m in members], axis=0)
                np.testing.assert_array_equal(mean.argmax(axis=1), rows[:, 0])
                total = merged["expression_uncertainty"].to_numpy()
                parts = merged["expression_aleatoric"] + merged["expression_epistemic"]
                np.testing.assert_allclose(total, parts, atol=1e-6)
                np.testing.assert_allclose(merged["expression_aleatoric"],
                                           np.mean([m["expression_uncertainty"] for m in members], axis=0), atol=1e-6)
            else:
                mean = np.mean([m[["valence", "arousal"]].to_numpy() for m in members], axis=0)
                np.testing.assert_allclose(rows, mean, atol=1e-6)


def test_rerun_skips_done_videos_and_overwrite_redoes_them(synth, test_set_file, submission, checkpoints, one_thread):
    files = sorted(p for p in submission.rglob("*") if p.is_file() and p.suffix in (".txt", ".csv"))
    old = 1_000_000_000
    for p in files:
        os.utime(p, (old, old))
    members = members_from_names(list(MEMBERS), [1], checkpoints)
    result = write_submission(members, test_set_file, submission, batch_size=16, progress=False)
    assert result.done == [] and sorted(result.skipped) == sorted(synth["names"])
    assert all(p.stat().st_mtime == old for p in files)
    # a name with one file missing is redone, the other is not touched
    name, other = synth["names"]
    (submission / "m0" / "AU" / f"{name}.txt").unlink()
    result = write_submission(members, test_set_file, submission, batch_size=16, progress=False)
    assert result.done == [name] and result.skipped == [other]
    assert all(p.stat().st_mtime == old for p in files if other in p.name)
    assert (submission / "m0" / "AU" / f"{name}.txt").is_file()
    # other members in the same folder: refused, unless --overwrite
    with pytest.raises(EMENetInputError, match="other members"):
        write_submission(members[:1], test_set_file, submission, progress=False)
    result = write_submission(members, test_set_file, submission, overwrite=True, batch_size=16, progress=False)
    assert sorted(result.done) == sorted(synth["names"])
    assert all(p.stat().st_mtime > old for p in files)


def test_backend_option_reaches_every_member(checkpoints, test_set_file, tmp_path, monkeypatch, one_thread):
    """--backend was once parsed and then dropped: every member ran on `auto` (never eager)."""
    import emenet.challenge.submission as submission_module
    made = []

    class Recording(Predictor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self.backend)

    monkeypatch.setattr(submission_module, "Predictor", Recording)
    code = _load_script(TEST_ENSEMBLE).main([
        "--names", *MEMBERS, "--load_epochs", "1", "--checkpoints_dir", str(checkpoints), "--test_set_file",
        str(test_set_file), "--save_dir", str(tmp_path / "s"), "--backend", "eager", "--batch_size", "16",
        "--chunk_size", "16", "--no_progress"])
    assert code == 0
    assert made == ["eager", "eager"]


# ------------------------------------------------------------------------------- scoring

def test_scorer_matches_the_metrics_on_synthetic_ground_truth(synth, test_set_file, submission, tmp_path):
    gt_dir = synth["root"] / "synthetic_ground_truth"
    test_set = read_test_set(test_set_file)
    scores = score_submission(submission / MERGED, gt_dir, test_set_file)
    assert set(scores) == {"AU", "EXPR", "VA"}
    # the same numbers from the files read here and the metric functions
    expected = {}
    for task in scores:
        preds, truth = [], []
        for name in test_set.names(task):
            preds.append(_read_rows(submission / MERGED / task / f"{name}.txt")[1])
            truth.append(_read_rows(gt_dir / GT_DIRS[task] / f"{name}.txt")[1])
        expected[task] = (np.concatenate(preds), np.concatenate(truth))
    p, t = expected["AU"]
    assert scores["AU"]["score"] == pytest.approx(au_metrics(p.astype(int), t.astype(int))["score"])
    p, t = expected["EXPR"]
    assert scores["EXPR"]["score"] == pytest.approx(expr_metrics(p[:, 0].astype(int), t[:, 0].astype(int))["score"])
    p, t = expected["VA"]
    keep = (t != -5).all(axis=1)
    assert scores["VA"]["ccc_valence"] == pytest.approx(ccc(p[keep, 0], t[keep, 0]), abs=1e-6)
    assert scores["VA"]["ccc_arousal"] == pytest.approx(ccc(p[keep, 1], t[keep, 1]), abs=1e-6)

    # a submission equal to the ground truth (unannotated rows filled) scores perfectly
    perfect = tmp_path / "perfect"
    for task in scores:
        for name in test_set.names(task):
            header, rows = _read_rows(gt_dir / GT_DIRS[task] / f"{name}.txt")
            if task == "VA":
                rows[(rows == -5).any(axis=1)] = 0.0
            else:
                rows[rows == -1] = 0
            fmt = "%.3f" if task == "VA" else "%d"
            (perfect / task).mkdir(parents=True, exist_ok=True)
            np.savetxt(perfect / task / f"{name}.txt", rows, fmt=fmt, delimiter=",", header=header, comments="")
    best = score_submission(perfect, gt_dir, test_set)
    assert best["AU"]["accuracy"] == 1.0 and best["EXPR"]["accuracy"] == 1.0 and best["EXPR"]["f1"] > 0
    assert best["VA"]["ccc_valence"] == pytest.approx(1.0) and best["VA"]["ccc_arousal"] == pytest.approx(1.0)

    # a file with a frame too few is refused with its name
    name = test_set.names("VA")[0]
    path = perfect / "VA" / f"{name}.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(EMENetInputError, match="rows, the video has"):
        score_submission(perfect, gt_dir, test_set)
    with pytest.raises(EMENetInputError, match="header"):
        (perfect / "EXPR" / "bad.txt").write_text("expression\n1\n")
        read_submission_file(perfect / "EXPR" / "bad.txt", "EXPR")


def test_ensemble_script_errors_are_one_line(checkpoints, test_set_file, tmp_path, capsys):
    run = _run(TEST_ENSEMBLE, "--names", "m0", "nope", "--load_epochs", "1", "--checkpoints_dir", str(checkpoints),
               "--test_set_file", str(test_set_file), "--save_dir", str(tmp_path / "s"))
    assert "checkpoint not found" in _one_error_line(run.returncode, run.stderr)
    code = _load_script(TEST_ENSEMBLE).main(["--names", "m0", "--load_epochs", "1", "--checkpoints_dir",
                                             str(checkpoints), "--test_set_file", str(tmp_path / "missing.parquet"),
                                             "--save_dir", str(tmp_path / "s")])
    assert "test-set file not found" in _one_error_line(code, capsys.readouterr().err)
    code = _load_script(TEST_ENSEMBLE).main(["--test_set_file", str(test_set_file)])
    assert "no model given" in _one_error_line(code, capsys.readouterr().err)
    assert not (tmp_path / "s").exists()


def test_docstring_examples():
    import doctest

    import emenet.challenge.submission
    import emenet.challenge.test_set
    for module in (emenet.challenge.test_set, emenet.challenge.submission):
        assert doctest.testmod(module).failed == 0
