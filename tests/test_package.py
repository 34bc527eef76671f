"""The top-level package: `emenet.Predictor` and friends without importing the video stack up front."""
import subprocess
import sys

import pytest


def test_inference_api_is_reachable_from_the_top_level_lazily():
    code = ("import sys, emenet; assert 'emenet.inference' not in sys.modules; "
            "from emenet.inference import Predictor; assert emenet.Predictor is Predictor; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_video_api_is_reachable_from_the_top_level_lazily():
    code = ("import sys, emenet; assert 'emenet.video' not in sys.modules; "
            "from emenet.video import predict_video, predict_video_to_files; "
            "assert emenet.predict_video is predict_video and emenet.predict_video_to_files is predict_video_to_files; "
            "assert emenet.predict_image.__module__ == 'emenet.inference.image'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_unknown_attribute_raises_attribute_error():
    import emenet
    with pytest.raises(AttributeError, match="no_such_thing"):
        emenet.no_such_thing  # noqa: B018
    assert set(emenet.__all__) >= {"Predictor", "load_checkpoint", "create_model"}
