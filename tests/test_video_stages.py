"""The concurrent video pipeline: bounded queues, stage clocks, and outputs equal to the sequential path."""
from __future__ import annotations

import json
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

import emenet
from emenet.data.images import read_rgb
from emenet.inference import Predictor
from emenet.video.outputs import ANNOTATED_VIDEO_PRESET, predict_video_to_files
from emenet.video.stages import BackgroundConsumer, StageClock, prefetch, timed_iter
from emenet.video.predict import VideoWriter, predict_video_tracks
from emenet.video.job import PredictSettings, VideoJob, process_video

PHOTO = Path(__file__).resolve().parents[1] / "example_image" / "astronaut_photo.jpg"
NUM_FRAMES = 30
CHUNK = 12  # frames per chunk: three chunks, the last one short


# ------------------------------------------------------------------ the stage helpers

def test_stage_clock_adds_up_per_stage_and_puts_the_slowest_first():
    clock = StageClock()
    clock.add("decode", 0.5, 10)
    clock.add("detect", 2.0, 10)
    clock.add("decode", 0.5, 10)
    summary = clock.summary()
    assert list(summary) == ["detect", "decode"]
    assert summary["decode"] == {"seconds": 1.0, "frames": 20, "frames_per_s": 20.0}
    assert summary["detect"] == {"seconds": 2.0, "frames": 10, "frames_per_s": 5.0}


def test_timed_iter_counts_the_time_spent_producing_each_item():
    def slow():
        for n in (2, 3):
            time.sleep(0.02)
            yield list(range(n))
    clock = StageClock()
    assert list(timed_iter(slow(), clock, "decode")) == [[0, 1], [0, 1, 2]]
    assert clock.frames() == {"decode": 5}
    assert clock.seconds()["decode"] >= 0.04


def test_prefetch_keeps_order_and_raises_the_producers_error_where_it_happened():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        yield 2
        raise ValueError("bad frame 3")
    seen = []
    with pytest.raises(ValueError, match="bad frame 3"):
        for item in prefetch(broken()):
            seen.append(item)
    assert seen == [1, 2]


def test_prefetch_runs_at_most_depth_items_ahead_and_stops_with_its_consumer():
    produced = []
    closed = threading.Event()

    def source():
        try:
            for k in range(1000):
                produced.append(k)
                yield k
        finally:
            closed.set()
    items = prefetch(source(), depth=2)
    assert next(items) == 0
    time.sleep(0.3)  # time for the producer to run ahead as far as it may
    assert len(produced) <= 1 + 2 + 1  # the consumed item, the queue, one blocked in put
    items.close()  # the consumer stops early: the producer's thread ends and closes its source
    assert closed.wait(2.0)
    assert len(produced) < 10
    assert not [t for t in threading.enumerate() if t.name == "emenet-prefetch"]


def test_background_consumer_keeps_order_and_raises_the_consumers_error():
    seen = []
    with BackgroundConsumer(seen.append, depth=1) as consumer:
        for k in range(20):
            consumer.put(k)
    assert seen == list(range(20))

    def fail(item: int) -> None:
        if item == 3:
            raise OSError("disk full")
    consumer = BackgroundConsumer(fail, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for k in range(50):
            consumer.put(k)
        consumer.close()
    consumer.close()  # closing again is harmless


# ------------------------------------------------------------- the pipeline, end to end

@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    """A synthetic video: the astronaut's face sliding and turning slightly (192x192, 25 fps)."""
    face = cv2.resize(read_rgb(PHOTO), (192, 192), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("video") / "face.mp4"
    with VideoWriter(path, Fraction(25), 192, 192) as writer:
        for i in range(NUM_FRAMES):
            turn = cv2.getRotationMatrix2D((96, 96), 0.5 * i, 1.0)
            writer.write(cv2.warpAffine(np.roll(face, i, axis=1), turn, (192, 192)))
    return path


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v")
    return Predictor([emenet.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pth", model, 1)], batch_size=CHUNK)


def _both_paths(predictor, video, tmp_path):
    return {concurrent: predict_video_to_files(predictor, video, tmp_path / str(concurrent), progress=False,
                                               concurrent=concurrent)
            for concurrent in (False, True)}


def test_concurrent_pipeline_writes_the_same_csv_as_the_sequential_one(predictor, face_video, tmp_path):
    outs = _both_paths(predictor, face_video, tmp_path)
    sequential, concurrent = outs[False], outs[True]
    assert sequential.result.main.face_found.sum() > NUM_FRAMES // 2  # the face is found: predictions compared
    assert concurrent.csv.read_bytes() == sequential.csv.read_bytes()
    assert concurrent.timeline.read_bytes() == sequential.timeline.read_bytes()
    assert concurrent.prediction.num_frames == NUM_FRAMES
    # every stage is timed, with the frames it handled: two decodes, one detection pass, one write
    for out in outs.values():
        frames = {stage: v["frames"] for stage, v in out.stages.items()}
        assert frames["decode"] == 2 * NUM_FRAMES
        assert frames["detect"] == frames["track"] == frames["write"] == NUM_FRAMES
        assert frames["predict"] == frames["crop"] == int(out.prediction.face_found.sum())
        assert all(v["seconds"] > 0 for v in out.stages.values())
        seconds = [v["seconds"] for v in out.stages.values()]
        assert seconds == sorted(seconds, reverse=True)  # slowest first


def test_tables_are_written_while_the_writer_still_works_on_the_last_chunk(predictor, face_video):
    predicted = threading.Event()
    seen: dict = {}

    def on_chunk(chunk, tracks, geometries) -> None:  # the last chunk waits until on_predicted has run
        if chunk.frames.start + len(chunk.frames) == NUM_FRAMES:
            seen["predicted_before_last_write"] = predicted.wait(timeout=30)

    def on_predicted(result) -> None:
        seen["result"] = result
        predicted.set()

    result = predict_video_tracks(predictor, face_video, progress=False, on_chunk=on_chunk, on_predicted=on_predicted)
    assert seen["result"] is result and seen["predicted_before_last_write"]


def test_at_most_chunks_in_flight_decoded_chunks_are_alive_at_once(predictor, face_video, monkeypatch):
    """The bound the long-video memory check relies on (chunks_in_flight), reached with a slow writer."""
    import weakref
    import emenet.video.predict as video_predict
    live, peak = [0], [0]
    lock = threading.Lock()

    def gone() -> None:
        with lock:
            live[0] -= 1

    class CountedChunk(video_predict.FrameChunk):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            with lock:
                live[0] += 1
                peak[0] = max(peak[0], live[0])
            weakref.finalize(self, gone)

    monkeypatch.setattr(video_predict, "FrameChunk", CountedChunk)
    predict_video_tracks(predictor, face_video, chunk_size=3, progress=False,
                         on_chunk=lambda chunk, tracks, geometries: time.sleep(0.2))  # 10 chunks, a slow writer
    assert peak[0] == video_predict.chunks_in_flight()


def test_a_video_jobs_marker_records_its_stage_times(predictor, face_video, tmp_path):
    job = VideoJob(face_video, "face", tmp_path / "face")
    outcome = process_video(predictor, job, PredictSettings())
    assert outcome.status == "done", outcome.error
    marker = json.loads(job.marker.read_text())
    assert {"decode", "detect", "predict", "write"} <= set(marker["stage_seconds"])
    assert all(s > 0 for s in marker["stage_seconds"].values())
    assert set(marker["stage_frames_per_s"]) == set(marker["stage_seconds"])


def _x264_settings(path: Path) -> dict[str, str]:
    """The encoder settings x264 records in its stream (an SEI message: "options: cabac=1 ref=1 ...")."""
    data = path.read_bytes()
    start = data.index(b"options: ") + len(b"options: ")
    text = data[start:data.index(b"\x00", start)].decode("ascii", "replace")
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def _decoded(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, [f.to_ndarray(format="rgb24") for f in container.decode(stream)]


def test_fast_preset_writes_an_h264_file_of_the_same_frames_at_the_same_quality(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for i in range(16):  # a textured picture with a moving box and text, like an annotated frame
        frame = cv2.resize(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), (96, 64), interpolation=cv2.INTER_CUBIC)
        cv2.rectangle(frame, (10 + i, 12), (40 + i, 50), (255, 0, 0), 2)
        cv2.putText(frame, f"{i / 16:.2f}", (50, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        frames.append(frame)
    psnr = {}
    for preset in ("veryfast", ANNOTATED_VIDEO_PRESET):
        with VideoWriter(tmp_path / f"{preset}.mp4", Fraction(25), 96, 64, preset=preset) as writer:
            for frame in frames:
                writer.write(frame)
        codec, decoded = _decoded(tmp_path / f"{preset}.mp4")
        assert codec == "h264" and len(decoded) == len(frames) and decoded[0].shape == frames[0].shape
        errors = np.array([[np.mean((d.astype(np.float64) - f) ** 2) for f in frames] for d in decoded])
        assert (errors.argmin(axis=1) == np.arange(len(frames))).all()  # each frame is its own source's, in order
        psnr[preset] = 10 * np.log10(255 ** 2 / np.diag(errors).mean())
    assert psnr[ANNOTATED_VIDEO_PRESET] > psnr["veryfast"] - 1.0 and psnr[ANNOTATED_VIDEO_PRESET] > 20


def test_the_annotated_video_is_encoded_with_the_annotated_preset(predictor, face_video, tmp_path):
    reference = tmp_path / "reference.mp4"
    with VideoWriter(reference, Fraction(25), 32, 32, preset=ANNOTATED_VIDEO_PRESET) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    out = predict_video_to_files(predictor, face_video, tmp_path / "out", progress=False)
    settings, expected = _x264_settings(out.video), _x264_settings(reference)
    keys = ("cabac", "deblock", "bframes", "me", "subme", "ref", "trellis")  # the preset's, not the size's
    assert {k: settings[k] for k in keys} == {k: expected[k] for k in keys}
    assert len(_decoded(out.video)[1]) == NUM_FRAMES


@pytest.mark.slow
def test_concurrent_pipeline_matches_the_sequential_one_on_the_real_video(shared_dir, predictor, tmp_path):
    outs = _both_paths(predictor, shared_dir / "data" / "utterance_1.mp4", tmp_path)
    assert outs[True].csv.read_bytes() == outs[False].csv.read_bytes()


# ---------------------------------------------------------------- the benchmark's rows

def test_first_frame_stops_at_the_first_predicted_chunk_and_marks_both_moments(predictor, face_video, capsys):
    from emenet.bench.first_frame import FIRST_FRAME_MARKER, READY_MARKER, main
    assert main([str(face_video), "auto", str(CHUNK), str(predictor.paths[0])]) == 0
    assert capsys.readouterr().out.split() == [READY_MARKER, FIRST_FRAME_MARKER]


def test_time_markers_times_each_marker_line_from_the_start_of_the_command():
    import os
    import sys
    from emenet.bench.workloads import _time_markers
    script = "import time; print('A', flush=True); time.sleep(0.3); print('noise'); print('B', flush=True)"
    marks = _time_markers([sys.executable, "-c", script], dict(os.environ), ("A", "B"))
    assert 0 < marks["A"] < marks["B"] <= marks["exit_s"] and marks["B"] - marks["A"] >= 0.3
    with pytest.raises(RuntimeError, match=r"before printing \['C'\]"):
        _time_markers([sys.executable, "-c", script], dict(os.environ), ("A", "C"))


def test_report_shows_the_stage_times_and_the_cold_start_rows():
    from emenet.bench.report import evaluate_targets, render_markdown
    stages = {"detect": {"seconds": 12.0, "frames": 300, "frames_per_s": 25.0},
              "predict": {"seconds": 3.0, "frames": 300, "frames_per_s": 100.0}}
    video = {"backend": "onnx", "num_frames": 300, "frames_per_s": 20.0, "stages": stages, "peak_rss_mb": 700.0}
    cold = {"backend": "auto", "first_use_ready_s": 20.0, "first_use_first_frame_s": 31.5, "cached_ready_s": 2.0,
            "cached_first_frame_s": 13.25}
    report = {"results": {"video/1/auto": video, "cold_start/1": cold, "cold_start/5": {"error": "RuntimeError: x"}},
              "machine": {"cpu": "c", "usable_cpus": 2, "gpu": None, "torch_threads": 2, "python": "3",
                          "platform": "p"},
              "config": {"members": 5, "batch": 64, "stream_frames": 16, "quick_mode": False}, "versions": {},
              "method": {"timing": "t", "training_timing": "t", "video_timing": "v", "memory": "m", "baseline": "b",
                         "isolation": "i"}, "started": "now", "seconds": 1.0, "targets": []}
    md = render_markdown(report)
    assert "| 1 | auto (onnx) | 300 | 20.0 |  | detect 12.0 (25), predict 3.0 (100) | 700 |" in md
    assert "| 1 | auto | 20.0 | 31.5 | 2.0 | 13.2 |" in md
    assert "| 5 | failed: RuntimeError: x |" in md
    follow = {**video, "detect_every": 4, "frames_per_s": 33.0}
    targets = {t["target"]: t for t in evaluate_targets(
        {"results": {"video/5/auto": video, "video/5/auto_follow": follow}, "config": {"members": 5}})}
    target = targets["video pipeline, 5-member ensemble"]
    assert target["met"] is False and target["detail"] == "with --detect_every 4: 33.0 frames/s"
