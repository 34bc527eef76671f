"""Every face of a photo: a group photo built from real faces gives one result per face (JSON,
figure, text), `--largest_face` keeps the one-face output, `--detector haar` still works."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import emenet
from emenet.data.images import read_rgb
from emenet.face import HaarFaceDetector
from emenet.face.tracking import box_iou
from emenet.inference import Predictor
from emenet.cli import Script
from emenet.video.outputs import format_image_prediction, write_image_outputs

run_inference_one_image = Script("image", "inference_one_image.py").main

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"


def group_photo() -> tuple[np.ndarray, np.ndarray]:
    """Five real heads side by side (the astronaut, Grace Hopper at two sizes, the cameraman turned
    half away, the astronaut mirrored) on a plain wall, scaled by 1.5: (1725x450 image, the heads'
    (5, 4) boxes). The Haar cascade misses the cameraman."""
    astronaut = read_rgb(REPO / "example_image" / "astronaut_photo.jpg")[20:230, 120:330]
    grace = read_rgb(FACES / "grace_hopper.jpg")[60:400, 100:430]
    heads = [astronaut, cv2.resize(grace, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA),
             read_rgb(FACES / "cameraman.jpg")[60:260, 140:340], astronaut[:, ::-1],
             cv2.resize(grace, None, fx=0.45, fy=0.45, interpolation=cv2.INTER_AREA)]
    canvas = np.full((300, 1150, 3), (150, 140, 125), np.uint8)
    x, boxes = 10, []
    for head in heads:
        canvas[30:30 + head.shape[0], x:x + head.shape[1]] = head
        boxes.append([x, 30, x + head.shape[1], 30 + head.shape[0]])
        x += head.shape[1] + 20
    scale = 1.5
    return cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR), np.array(boxes) * scale


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    torch.manual_seed(0)
    path = emenet.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pth", emenet.create_model("emenet_v"), 1)
    return Predictor([path])


@pytest.fixture(scope="module")
def group(tmp_path_factory) -> tuple[Path, np.ndarray]:
    image, heads = group_photo()
    path = tmp_path_factory.mktemp("group") / "group.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path, heads


def test_group_photo_gives_one_result_per_face(predictor, group, tmp_path, one_thread):
    path, heads = group
    result = predictor.predict_image(path)
    assert len(result.faces) == result.num_faces == 5
    boxes = np.stack([f.box for f in result.faces])
    assert np.all(np.diff((boxes[:, 0] + boxes[:, 2]) / 2) > 0)  # numbered left to right
    for face, head in zip(result.faces, heads):
        assert np.all(face.box[:2] >= head[:2] - 5) and np.all(face.box[2:] <= head[2:] + 5)  # in its own head
        assert face.points.shape == (6, 2) and face.crop.shape == (112, 112, 3)
    # each face is its own one-frame sequence: the same as predicting its crop alone
    for face in result.faces:
        alone = predictor.predict_independent(face.crop[None])
        np.testing.assert_allclose(face.predictions.expr_probs, alone.expr_probs, atol=1e-6)
    sizes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert result.main_index == int(np.argmax(sizes)) and result.box is result.main.box

    outputs = write_image_outputs(result, tmp_path)
    data = json.loads(outputs.json.read_text())
    assert data["num_faces_detected"] == data["num_faces_predicted"] == len(data["faces"]) == 5
    assert [f["face"] for f in data["faces"]] == list(range(5))
    first = data["faces"][0]
    assert set(first["points_xy"]) == {"right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear", "left_ear"}
    assert "EXPR" in first and "uncertainty" in first["EXPR"] and len(first["face_box_xyxy"]) == 4
    assert data["face_box_xyxy"] == data["faces"][data["main_face"]]["face_box_xyxy"]  # the one-face keys
    picture = cv2.imread(str(outputs.png))
    assert picture is not None and picture.shape[1] > 1000
    text = format_image_prediction(result)
    assert "5 face(s) detected, 5 predicted" in text and "face 4:" in text and text.count("expression:") == 5

    # the Haar cascade, for comparison, misses the man turned half away
    assert len(predictor.predict_image(path, detector=HaarFaceDetector()).faces) == 4


def test_largest_face_keeps_the_one_face_output(predictor, group, tmp_path, capsys):
    path, heads = group
    out = tmp_path / "out"
    assert run_inference_one_image(["--checkpoint", str(predictor.paths[0]), "--image", str(path), "--output_dir",
                                    str(out), "--largest_face"]) == 0
    data = json.loads((out / "group_emenet.json").read_text())
    assert data["num_faces_detected"] == 5 and data["num_faces_predicted"] == 1 and len(data["faces"]) == 1
    iou = box_iou(np.array([data["face_box_xyxy"]]), heads)[0]
    assert int(np.argmax(iou)) == 1  # Grace Hopper at 0.6: the largest head
    assert "1 predicted" in capsys.readouterr().out
    # a bad detector option is one line, exit 2
    assert run_inference_one_image(["--checkpoint", str(predictor.paths[0]), "--image", str(path), "--output_dir",
                                    str(out), "--detection_threshold", "1.5", "--overwrite"]) == 2
    assert "--detection_threshold must be in (0, 1)" in capsys.readouterr().err
