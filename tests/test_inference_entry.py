"""Entry points: Training/inference_one_image.py and the `emenet predict` functions; one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.cli import Script, main as emenet_main
from emenet.cli.predict import add_predict_arguments
from emenet.tasks import AU_NAMES, EXPR_NAMES

run_inference_one_image = Script("image", "inference_one_image.py").main

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "Training" / "inference_one_image.py"
PHOTO = REPO / "example_image" / "astronaut_photo.jpg"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Random checkpoints: `plain` (3 tasks) in the original <name>/net_epoch_<E>_<name>.pth layout,
    `aux` with the face-alignment head, `au_only` with other tasks."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    plain = emenet.save_checkpoint(root / "plain" / "net_epoch_4_plain.pth", emenet.create_model("emenet_v"), 4)
    aux = emenet.save_checkpoint(root / "aux.pth", emenet.create_model("emenet_v_aux"), 4)
    au_only = emenet.save_checkpoint(root / "au_only.pth", emenet.create_model("emenet_v", tasks=("AU",)), 4)
    return {"root": root, "plain": plain, "aux": aux, "au_only": au_only}


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_script_runs_on_the_example_image(ckpts, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(ckpts["aux"]), "--output_dir", str(out),
                          "--auxiliary"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "expression:" in run.stdout and "AU12" in run.stdout and "valence" in run.stdout
    files = {p.suffix: p for p in out.iterdir()}
    assert set(files) == {".png", ".pdf", ".json"} and files[".png"].stem == "astronaut_112_emenet"
    png = cv2.imread(str(files[".png"]))
    assert png is not None and png.shape[0] > 400 and png.shape[1] > 800
    assert files[".pdf"].read_bytes().startswith(b"%PDF")
    data = json.loads(files[".json"].read_text())
    assert data["aligned_input"] is True and data["face_box_xyxy"] is None
    assert set(data["AU"]) == set(AU_NAMES) and set(data["EXPR"]["probs"]) == set(EXPR_NAMES)
    assert set(data["AU"]["AU1"]) == {"prob", "active", "uncertainty"}
    assert len(data["landmarks"]) == 68 and data["checkpoints"] == [str(ckpts["aux"])]
    assert -1 <= data["VA"]["valence"]["value"] <= 1


def test_names_and_epochs_on_a_raw_photo_and_an_ensemble(ckpts, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--names", "plain", "--load_epochs", "4", "--checkpoints_dir", str(ckpts["root"]),
            "--checkpoint", str(ckpts["aux"]), "--image", str(PHOTO), "--output_dir", str(out)]
    assert run_inference_one_image(argv) == 0
    assert "ensemble" in capsys.readouterr().out
    data = json.loads((out / "astronaut_photo_emenet.json").read_text())
    assert data["aligned_input"] is False and len(data["face_box_xyxy"]) == 4 and data["num_models"] == 2
    assert set(data["EXPR"]["uncertainty"]) == {"total", "aleatoric", "epistemic"}
    assert "landmarks" in data  # from the member that has the head
    # outputs exist now: refused without --overwrite, replaced with it
    assert run_inference_one_image(argv) == 2
    assert "already exist" in _one_error_line(capsys.readouterr().err)
    assert run_inference_one_image(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize("case", ["unreadable", "no_face", "missing_checkpoint", "tasks_mismatch", "names_only"])
def test_image_errors_exit_2_with_one_line(ckpts, tmp_path, capsys, case):
    (tmp_path / "broken.jpg").write_bytes(b"\x00garbage")
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((240, 320, 3), 200, np.uint8))
    image, models, expected = str(PHOTO), ["--checkpoint", str(ckpts["plain"])], ""
    if case == "unreadable":
        image, expected = str(tmp_path / "broken.jpg"), "cannot read image"
    elif case == "no_face":
        image, expected = str(tmp_path / "wall.png"), "no face found"
    elif case == "missing_checkpoint":
        models = ["--names", "ghost", "--load_epochs", "3", "--checkpoints_dir", str(ckpts["root"])]
        expected = "net_epoch_3_ghost.pth: checkpoint not found"
    elif case == "tasks_mismatch":
        models, expected = ["--checkpoint", str(ckpts["plain"]), str(ckpts["au_only"])], "same tasks"
    else:
        models, expected = ["--names", "plain"], "--names and --load_epochs go together"
    code = run_inference_one_image(models + ["--image", image, "--output_dir", str(tmp_path / "out")])
    assert code == 2
    assert expected in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_script_error_has_no_traceback(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(tmp_path / "none.pth"),
                          "--output_dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "checkpoint not found" in _one_error_line(run.stderr)


def _small_video(path: Path, n: int = 12) -> Path:
    face = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    face = cv2.resize(face, (240, 240), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 240, 240, "yuv420p"
        for i in range(n):
            frame = np.roll(face, i, axis=1)  # a slowly moving face
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_predict_command_writes_csv_video_and_timeline(ckpts, tmp_path, capsys):
    video = _small_video(tmp_path / "clip.mp4")
    argv = [str(video), "--names", "plain", "--load_epochs", "4", "--checkpoints_dir", str(ckpts["root"]),
            "--output_dir", str(tmp_path / "pred"), "--no_progress"]
    assert emenet_main(["predict", *argv]) == 0
    stdout = capsys.readouterr().out
    assert "12 frames, face found in 12" in stdout
    df = pd.read_csv(tmp_path / "pred" / "clip_predictions.csv")
    assert len(df) == 12 and df["face_found"].all()
    assert cv2.imread(str(tmp_path / "pred" / "clip_timeline.png")) is not None
    with av.open(str(tmp_path / "pred" / "clip_annotated.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    assert emenet_main(["predict", *argv]) == 2
    assert "--overwrite" in _one_error_line(capsys.readouterr().err)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    assert emenet_main(["predict", str(tmp_path / "bad.mp4")] + argv[1:]) == 2
    assert "cannot be decoded as a video" in _one_error_line(capsys.readouterr().err)


def test_predict_arguments_parse_as_documented():
    import argparse
    parser = argparse.ArgumentParser()
    add_predict_arguments(parser)
    args = parser.parse_args(["v.mp4", "--names", "a", "b", "--load_epochs", "4", "6", "--checkpoints_dir", "D",
                              "--output_dir", "O"])
    assert (args.video, args.names, args.load_epochs, args.checkpoints_dir, args.output_dir) == \
        ("v.mp4", ["a", "b"], [4, 6], "D", "O")
    assert args.func.__name__ == "cmd_predict" and args.overwrite is False
