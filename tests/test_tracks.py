"""Every person in a video: track filtering, ids that stay on their person, one hidden state per track."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.data.synth import generate_synthetic_dataset
from emenet.face.detector import Detections, HaarFaceDetector
from emenet.face.tracking import FaceTracker, Track, box_iou, filter_tracks, is_body_face
from emenet.inference import Predictor
from emenet.video import predict_video_to_files
from emenet.viz.drawing import PANEL_WIDTH
from emenet.video.predict import (VideoWriter, iter_video_chunks, predict_video_tracks, read_video_meta,
                                    track_geometry, track_video_faces)

OCCLUDED = range(15, 27)  # frames where a "hand" covers the left person's face (longer than 8 frames)


def _track(track_id: int, frames, box) -> Track:
    t = Track(track_id)
    for f in frames:
        t.add(f, np.asarray(box, np.float32) + np.float32(f % 3), 10.0)
    return t


def _det(*boxes) -> Detections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.ones(len(b), np.float32))


# --------------------------------------------------------------------- filtering rules

def test_body_faces_and_short_tracks_are_dropped_and_the_rest_renumbered():
    face = _track(0, range(100), [100, 40, 200, 140])       # 100 px face, chin at y = 140
    shirt = _track(1, range(0, 100, 2), [90, 200, 250, 360])  # centre (170, 280): on its chest
    beside = _track(2, range(5, 95), [300, 45, 395, 140])    # a second person, same height: kept
    short = _track(3, range(40, 50), [500, 50, 560, 110])    # 10 detections: too short
    early = _track(4, range(0, 60), [420, 40, 480, 100])     # appears first, to the right of `face`
    kept, dropped = filter_tracks([face, shirt, beside, short, early], min_length=25)
    # kept: ordered by first frame, ties left to right; then the dropped ones, in the same order
    assert [t.num_detections for t in kept] == [100, 60, 90]
    assert [float(t.boxes[0][0]) for t in kept] == [100.0, 420.0, 302.0]  # + the jitter of _track
    assert [t.track_id for t in kept + dropped] == [0, 1, 2, 3, 4]
    assert sorted(t.num_detections for t in dropped) == [10, 50]
    # the shirt is dropped for where it is, not for its length: it has 50 >= 25 detections
    assert is_body_face(shirt, [face]) and not is_body_face(beside, [face])
    kept_all, _ = filter_tracks([face, shirt], min_length=1, drop_body_faces=False)
    assert len(kept_all) == 2
    # the input tracks are unchanged
    assert (face.track_id, shirt.track_id) == (0, 1)


def test_body_region_boundaries_are_as_documented():
    face = _track(0, range(10), [100, 100, 200, 200])  # width 100, height 100, centre x 150, chin 200
    def hit(box) -> bool:
        return is_body_face(_track(1, range(10), box), [face])
    assert hit([170, 210, 270, 310])          # centre (220, 260): 0.7 widths right, below the chin
    assert hit([250, 210, 350, 310])          # centre x 300: exactly 1.5 widths right
    assert not hit([255, 210, 355, 310])      # centre x 305: beyond
    assert not hit([100, 80, 200, 180])       # centre above the chin
    assert not hit([100, 560, 200, 660])      # centre 410 below the chin: more than 4 face heights
    # a candidate seen mostly when the face is not: not a body face (half of its detections needed)
    rare = _track(1, list(range(5)) + list(range(50, 70)), [120, 220, 180, 280])
    assert not is_body_face(rare, [face])


def test_the_most_persistent_track_is_always_kept():
    kept, dropped = filter_tracks([_track(0, range(9), [0, 0, 50, 50]), _track(1, range(3), [200, 0, 250, 50])],
                                  min_length=25)
    assert [t.num_detections for t in kept] == [9] and [t.num_detections for t in dropped] == [3]
    assert filter_tracks([], min_length=5) == ([], [])
    with pytest.raises(ValueError, match="min_length"):
        filter_tracks([], min_length=0)


def test_tracks_survive_an_occlusion_and_do_not_jump_to_the_other_face_or_a_false_detection():
    tracker = FaceTracker(max_gap=25)
    left, right = np.array([40, 50, 120, 130.0]), np.array([260, 52, 340, 132.0])
    for f in range(60):
        boxes = [right + [f, 0, f, 0]]  # the right person drifts slowly right
        if f not in range(20, 40):       # a hand hides the left face for 20 frames
            boxes.append(left + [0.5 * f, 0, 0.5 * f, 0])
        if f in range(20, 40, 3):       # meanwhile a false detection, larger and lower (a poster)
            boxes.append([60, 160, 200, 300])
        tracker.update(f, _det(*boxes))
    by_length = sorted(tracker.tracks, key=lambda t: -t.num_detections)
    right_track, left_track = by_length[:2]
    assert right_track.num_detections == 60 and left_track.num_detections == 40
    assert left_track.frames == list(range(20)) + list(range(40, 60))  # one track across the gap
    assert np.all(left_track.box_array()[:, 0] < 100) and np.all(right_track.box_array()[:, 0] > 250)
    assert all(t.num_detections <= 7 for t in by_length[2:])  # the false detection stayed apart


# ------------------------------------------------------------- a two-person video

@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v")
    with torch.no_grad():  # spread the outputs so that two people's predictions differ visibly
        for head in model.tmodels:
            head.decoder.weight.mul_(20.0)
    return Predictor([emenet.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pth", model, 1)])


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """`emenet synth`'s two-person video (45 frames), with the left face hidden for 12 frames,
    and both persons' ground-truth face boxes."""
    root = tmp_path_factory.mktemp("synth")
    summary = generate_synthetic_dataset(root / "data", num_videos=1, two_person_videos=1, num_test_videos=0,
                                         min_frames=45, max_frames=45, progress=False, num_workers=1)
    source = root / "data" / summary.videos[0]
    truth = {side: pd.read_csv(root / "data" / "synthetic_ground_truth" / "face_boxes" / f"{source.stem}_{side}.csv")
             [["x0", "y0", "x1", "y1"]].to_numpy() for side in ("left", "right")}
    meta = read_video_meta(source)
    video = root / "two_people.mp4"
    with VideoWriter(video, meta.rate, meta.width, meta.height) as writer:
        for chunk in iter_video_chunks(source):
            for k, frame in enumerate(chunk.frames):
                if chunk.start + k in OCCLUDED:
                    x0, y0, x1, y1 = truth["left"][chunk.start + k].round().astype(int)
                    frame = frame.copy()
                    frame[y0:y1, x0:x1] = (200, 160, 130)
                writer.write(frame)
    return video, truth


@pytest.fixture(scope="module")
def two_outputs(two_people, predictor, tmp_path_factory):
    video, _ = two_people
    return predict_video_to_files(predictor, video, tmp_path_factory.mktemp("pred"), progress=False)


def test_two_people_get_two_tracks_whose_ids_stay_on_them(two_people, two_outputs):
    _, truth = two_people
    result = two_outputs.result
    assert result.track_ids == [0, 1] and result.num_kept == 2
    for track_id, person, other in ((0, "left", "right"), (1, "right", "left")):
        p = result.track(track_id)
        frames = np.flatnonzero(p.face_found)
        own = np.array([box_iou(p.boxes[i:i + 1], truth[person][i:i + 1])[0, 0] for i in frames])
        cross = np.array([box_iou(p.boxes[i:i + 1], truth[other][i:i + 1])[0, 0] for i in frames])
        assert frames[0] <= 1 and frames[-1] >= 43  # from start to end
        assert own.min() > 0.5 and cross.max() == 0.0, (track_id, own.min(), cross.max())
    # the left track lived through the hidden face: no face there, one track before and after
    left = result.track(0)
    assert not left.face_found[list(OCCLUDED)].any()
    assert left.face_found[:OCCLUDED.start].mean() > 0.9 and left.face_found[OCCLUDED.stop:].mean() > 0.9


def test_each_track_is_its_own_sequence(two_people, two_outputs, predictor):
    """The pipeline's predictions of a track equal its crops run alone as one sequence."""
    video, _ = two_people
    result = two_outputs.result
    frames = np.concatenate([c.frames for c in iter_video_chunks(video)])
    for p in result.predictions:
        index = np.flatnonzero(p.face_found)
        geometry = track_geometry(result.tracks[p.track_id], len(frames))  # landmark-aligned crops
        assert geometry.affines is not None
        crops = np.stack([geometry.crop(frames[i], i) for i in index])
        alone, _ = predictor.predict_frames(crops)
        np.testing.assert_allclose(p.face_predictions.expr_probs, alone.expr_probs, atol=1e-5)
        np.testing.assert_allclose(p.face_predictions.va_probs, alone.va_probs, atol=1e-5)
        np.testing.assert_array_equal(p.face_predictions.au, alone.au)
    # two people, two different sequences: the predictions differ
    assert not np.allclose(result.track(0).face_predictions.va[:5], result.track(1).face_predictions.va[:5])


def test_two_person_outputs_have_rows_boxes_and_panels_per_track(two_outputs):
    out = two_outputs
    df = pd.read_csv(out.csv)
    assert list(df.columns[:4]) == ["track", "frame", "time", "face_found"]
    assert df.groupby("track").size().to_dict() == {0: 45, 1: 45}
    left = df[df.track == 0].set_index("frame")
    assert not left.loc[list(OCCLUDED), "face_found"].any()
    # hidden frames repeat the last prediction seen before the hand came
    np.testing.assert_allclose(left.loc[list(OCCLUDED), "valence"], left.loc[OCCLUDED.start - 1, "valence"])
    with av.open(str(out.video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    width = read_video_meta(out.video).width
    assert len(frames) == 45 and width >= 512 + 2 * PANEL_WIDTH  # the frame and two panels
    timeline = cv2.imread(str(out.timeline))
    assert timeline is not None and timeline.shape[0] > 1500  # two blocks of panels


def test_main_face_keeps_one_track(two_people, predictor):
    video, _ = two_people
    result = predict_video_tracks(predictor, video, progress=False, main_face=True)
    assert len(result.predictions) == 1 and result.main_track_id == 1  # the right person was never hidden
    assert result.to_dataframe()["track"].unique().tolist() == [1]
    # a length threshold above the left track's detections leaves the right person alone
    left = result.tracks[0].num_detections
    kept, dropped = filter_tracks(result.tracks, min_length=left + 1)
    assert [t.num_detections for t in kept] == [45] and left in [t.num_detections for t in dropped]


# ------------------------------------------------------------------------ the real video

@pytest.mark.slow
def test_real_video_gives_one_track_and_the_tshirt_never_becomes_one(shared_dir):
    """The Haar cascade finds a face on the t-shirt print; its tracks are dropped. (BlazeFace, the
    default, finds no face there at all: tests/test_face.py.)"""
    tracks = track_video_faces(shared_dir / "data" / "utterance_1.mp4", HaarFaceDetector(), progress=False,
                               min_track_length=1)
    height = tracks.meta.height
    assert len(tracks.kept) == 1  # even with no length threshold at all
    man = tracks.kept[0]
    assert man.num_detections > 0.9 * tracks.num_frames
    centre_y = lambda t: np.median((t.box_array()[:, 1] + t.box_array()[:, 3]) / 2)  # noqa: E731
    assert centre_y(man) < 0.45 * height
    # the t-shirt print was detected (the check is not vacuous), in tracks on his chest
    assert tracks.dropped and all(centre_y(t) > 0.5 * height for t in tracks.dropped)
    assert max(t.num_detections for t in tracks.dropped) >= 25  # longer than the default threshold
