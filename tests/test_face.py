"""Faces in photos and videos: detection, crops like the training data, tracking, video outputs."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.data.images import read_rgb
from emenet.errors import EMENetInputError
from emenet.face import (Detections, FaceTracker, HaarFaceDetector, crop_face, crop_regions, smooth_track_boxes)
from emenet.inference import Predictor
from emenet.video import predict_video, predict_video_to_files
from emenet.video.predict import count_video_frames, fill_index

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "example_image" / "astronaut_photo.jpg"
CROP = REPO / "example_image" / "astronaut_112.jpg"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(float).ravel(), b.astype(float).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """An MP4 (H.264) of RGB frames; with no frames, an AVI whose video stream holds none."""
    with av.open(str(path), "w", format="mp4" if frames else "avi") as out:
        codec = "libx264" if frames and "libx264" in av.codecs_available else "mpeg4"
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2] if frames else (64, 64)
        stream.pix_fmt = "yuv420p"
        if not frames:
            out.start_encoding()  # write the header of an empty stream
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    torch.manual_seed(0)
    path = emenet.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "aux.pth", emenet.create_model("emenet_v_aux"), 1)
    return Predictor([path])


# ------------------------------------------------------------------------------ photos

def test_astronaut_photo_gives_one_face_cropped_like_the_training_crop():
    photo, reference = read_rgb(PHOTO), read_rgb(CROP)
    faces = HaarFaceDetector()(photo)
    assert len(faces) == 1
    crop = crop_face(photo, crop_regions(faces.boxes[0]))
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    assert _corr(crop, reference) > 0.88
    # the detector's bare box is a much worse crop: the calibrated expansion matters
    bare = crop_face(photo, crop_regions(faces.boxes[0], scale=1.0, shift_y=0.0))
    assert _corr(bare, reference) < 0.6
    # RGB order throughout: the channel means agree with the reference crop's
    np.testing.assert_allclose(crop.reshape(-1, 3).mean(0), reference.reshape(-1, 3).mean(0), atol=12)


def test_predict_image_crops_raw_photos_and_uses_aligned_crops_as_is(predictor):
    raw = predictor.predict_image(PHOTO)
    assert raw.box is not None and raw.num_faces == 1 and not raw.aligned_input
    assert _corr(raw.crop, read_rgb(CROP)) > 0.88
    aligned = predictor.predict_image(CROP)
    assert aligned.aligned_input and np.array_equal(aligned.crop, read_rgb(CROP))
    assert len(aligned.predictions) == 1 and aligned.to_dict()["face_box_xyxy"] is None


def test_image_errors_are_one_line(predictor, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(EMENetInputError, match="cannot read image"):
        predictor.predict_image(tmp_path / "broken.jpg")
    with pytest.raises(EMENetInputError, match="image not found"):
        predictor.predict_image(tmp_path / "missing.jpg")
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 300, 3), 127, np.uint8))
    with pytest.raises(EMENetInputError, match=r"no face found in the image \(300x200\)"):
        predictor.predict_image(tmp_path / "blank.png")


# ---------------------------------------------------------------------------- tracking

def _det(*boxes) -> Detections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.ones(len(b), np.float32))


def test_tracker_keeps_identity_through_short_gaps_and_ignores_intermittent_detections():
    tracker = FaceTracker(max_gap=3)
    face, shirt = [100, 40, 180, 120], [80, 200, 260, 380]
    for f in range(30):
        boxes = [] if f in (10, 11, 12) else [[face[0] + f, face[1], face[2] + f, face[3]]]  # a 3-frame gap
        if f % 4 == 0:
            boxes.append(shirt)  # a spurious detection now and then, far from the face
        tracker.update(f, _det(*boxes) if boxes else Detections.empty())
    main = tracker.main_track()
    assert main.num_detections == 27 and main.first_frame == 0 and main.last_frame == 29
    assert all(b[1] < 100 for b in main.boxes)
    assert len(tracker.tracks) >= 2  # the shirt got track(s) of its own
    # a gap longer than max_gap starts a new track
    tracker2 = FaceTracker(max_gap=2)
    for f in (0, 1, 2, 6, 7):
        tracker2.update(f, _det(face))
    assert [t.num_detections for t in tracker2.tracks] == [3, 2]
    with pytest.raises(ValueError, match="increasing order"):
        tracker2.update(7, _det(face))


def test_tracker_follows_two_faces_separately():
    tracker = FaceTracker()
    for f in range(10):
        tracker.update(f, _det([10 + 2 * f, 10, 60 + 2 * f, 60], [200 - 2 * f, 12, 250 - 2 * f, 62]))
    assert [t.num_detections for t in tracker.tracks] == [10, 10]
    assert tracker.tracks[0].box_array()[-1][0] == 28  # the left face stayed the left track


def test_smoothing_removes_jitter_and_keeps_constant_boxes():
    frames = np.arange(40)
    steady = np.tile([[10.0, 20.0, 110.0, 120.0]], (40, 1))
    np.testing.assert_allclose(smooth_track_boxes(frames, steady), steady, atol=1e-4)
    jitter = steady + np.random.default_rng(0).normal(0, 3, size=steady.shape)
    assert np.abs(smooth_track_boxes(frames, jitter) - steady).std() < 0.6 * np.abs(jitter - steady).std()
    short = smooth_track_boxes(np.array([5, 9]), steady[:2])  # shorter than the kernel, with a gap
    np.testing.assert_allclose(short, steady[:2], atol=1e-4)


def test_fill_index_takes_the_nearest_earlier_face():
    assert fill_index(np.array([False, False, True, False, True, True, False])).tolist() == [0, 0, 0, 0, 1, 2, 2]


# ------------------------------------------------------------------ the real video, once

@pytest.fixture(scope="module")
def utterance(shared_dir, predictor, tmp_path_factory):
    video = shared_dir / "data" / "utterance_1.mp4"
    out = predict_video_to_files(predictor, video, tmp_path_factory.mktemp("utterance"), progress=False)
    return video, out


@pytest.mark.slow
def test_video_has_one_subject_track_and_no_false_track_on_the_tshirt(utterance):
    """BlazeFace (the default) finds the man in (nearly) every frame and nothing else: one track."""
    video, out = utterance
    result = out.prediction
    height = result.meta.height
    assert result.face_found.mean() > 0.9
    assert len(result.tracks) == 1 and result.track_id == 0
    boxes = result.boxes[result.face_found]
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    assert np.all(centre_y < 0.45 * height) and np.all(boxes[:, 3] < 0.6 * height)  # the head, not the chest
    # smoothed boxes move little from frame to frame
    assert np.abs(np.diff(boxes, axis=0)).max() < 0.1 * (boxes[:, 2] - boxes[:, 0]).mean()
    # the crops are aligned on smoothed landmarks: the aligned regions move little too
    regions = result.regions[result.face_found]
    assert np.abs(np.diff(regions[:, :2], axis=0)).max() < 0.1 * regions[:, 2].mean()


@pytest.mark.slow
def test_video_csv_has_one_row_per_decoded_frame(utterance):
    video, out = utterance
    n_frames = count_video_frames(video)
    df = pd.read_csv(out.csv)
    assert len(df) == n_frames == out.prediction.num_frames
    assert df["frame"].tolist() == list(range(n_frames))
    assert df["time"].is_monotonic_increasing and df["time"].iloc[-1] == pytest.approx((n_frames - 1) / 29.97, abs=0.05)
    for column in ("face_found", "box_x0", "box_y1", "AU12_prob", "AU12", "AU12_uncertainty", "Happiness_prob",
                   "expression_name", "valence", "arousal_uncertainty", "landmark00_x"):
        assert column in df.columns
    assert df.filter(like="_prob").notna().all().all()


@pytest.mark.slow
def test_annotated_video_and_timeline_are_readable(utterance):
    video, out = utterance
    with av.open(str(out.video)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert abs(float(stream.average_rate) - 29.97) < 0.01
    assert len(frames) == count_video_frames(video)
    assert frames[0].shape[1] > 640  # the frame plus the side panel
    timeline = cv2.imread(str(out.timeline))
    assert timeline is not None and timeline.shape[0] > 300 and timeline.shape[1] > 600


@pytest.mark.slow
def test_existing_outputs_are_not_replaced_without_overwrite(utterance, predictor):
    video, out = utterance
    before = out.csv.stat().st_mtime_ns
    with pytest.raises(EMENetInputError, match="already exist.*--overwrite"):
        predict_video_to_files(predictor, video, out.csv.parent, progress=False)
    assert out.csv.stat().st_mtime_ns == before
    assert not [p for p in out.csv.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


# ------------------------------------------------------------- small synthetic videos

def test_frames_without_a_face_take_the_nearest_earlier_prediction(predictor, tmp_path):
    face = cv2.resize(read_rgb(PHOTO), (256, 256), interpolation=cv2.INTER_AREA)
    blank = np.full_like(face, 90)
    with_face = set(range(3, 8)) | set(range(11, 15))
    video = _write_video(tmp_path / "gaps.mp4", [face if i in with_face else blank for i in range(16)])
    result = predict_video(predictor, video, progress=False)
    assert np.flatnonzero(result.face_found).tolist() == sorted(with_face)
    assert len(result.face_predictions) == len(with_face)
    filled = result.to_dataframe()
    source = {0: 3, 1: 3, 2: 3, 8: 7, 9: 7, 10: 7, 15: 14}  # frame -> the face frame it repeats
    prob_cols = [c for c in filled.columns if c.endswith("_prob")]
    for frame, face_frame in source.items():
        pd.testing.assert_series_equal(filled.loc[frame, prob_cols], filled.loc[face_frame, prob_cols],
                                       check_names=False)
    assert filled.loc[9, ["box_x0", "box_y1"]].isna().all() and not filled.loc[9, "face_found"]


def test_video_errors_are_one_line(predictor, tmp_path):
    (tmp_path / "text.mp4").write_text("this is not a video\n")
    with pytest.raises(EMENetInputError, match="cannot be decoded as a video"):
        predict_video(predictor, tmp_path / "text.mp4", progress=False)
    with pytest.raises(EMENetInputError, match="video not found"):
        predict_video_to_files(predictor, tmp_path / "missing.mp4", tmp_path / "out", progress=False)
    empty = _write_video(tmp_path / "empty.avi", [])
    with pytest.raises(EMENetInputError, match="the video has no decodable frames"):
        predict_video(predictor, empty, progress=False)
    no_face = _write_video(tmp_path / "noface.mp4", [np.full((64, 96, 3), 40 + 10 * i, np.uint8) for i in range(5)])
    with pytest.raises(EMENetInputError, match="no face found in any of its 5 frames"):
        predict_video(predictor, no_face, progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
