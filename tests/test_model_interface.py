"""One model interface, `model(frames, audio=None, hidden=None)`, and one streaming loop
(`emenet.training.evaluate.stream_logits`) with hooks, checked against whole-sequence calls."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import emenet
from emenet.data.clips import LabeledVideo
from emenet.errors import EMENetInputError
from emenet.training.evaluate import StreamHook, stream_logits

WINDOW = 400  # audio samples per frame: small, above the STFT's minimum


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: emenet.create_model(name, **({"audio_window": WINDOW} if "va" in name else {})).eval()
            for name in emenet.list_models()}


def test_every_registered_model_says_whether_it_hears(models):
    assert {name: m.uses_audio for name, m in models.items()} == {
        "emenet_v": False, "emenet_v_aux": False, "emenet_va": True, "emenet_va_aux": True}


def test_one_call_for_every_model(models):
    frames = torch.rand(1, 3, 3, 112, 112)
    audio = torch.randn(1, 3, WINDOW) * 0.1
    with torch.no_grad():
        for name, model in models.items():
            logits, hidden = model(frames, audio)
            assert set(logits) == set(hidden) == set(model.tasks), name
            assert all(v.shape[:2] == (1, 3) for v in logits.values()), name
            more, _ = model(frames, audio, hidden=hidden)
            again, _ = model(frames, audio=audio, hidden=hidden)
            torch.testing.assert_close(more, again)
            if not model.uses_audio:  # a visual model ignores the audio, so an ensemble passes it to all
                torch.testing.assert_close(model(frames, hidden=hidden)[0], more)
                with pytest.raises(TypeError, match="by keyword"):  # the earlier call would drop the state
                    model(frames, hidden)


def test_an_audio_visual_model_without_audio_is_one_clear_error(models):
    with pytest.raises(EMENetInputError, match=f"needs the audio window of every frame.*{WINDOW}"):
        models["emenet_va"](torch.rand(1, 2, 3, 112, 112))


def test_emenet_va_builds_its_heads_as_emenet_does(models):
    """The original VA key layout (video_backbone, audio_backbone, tmodels), heads over 512 + 128 features."""
    va, v = models["emenet_va"], models["emenet_v"]
    assert list(va._modules) == ["video_backbone", "audio_backbone", "tmodels"]
    assert list(v._modules) == ["backbone", "tmodels"]
    assert va.backbone is va.video_backbone
    assert va.state_dict()["tmodels.0.rnn.weight_ih_l0"].shape == (3 * 128, 512 + 128)
    assert v.state_dict()["tmodels.0.rnn.weight_ih_l0"].shape == (3 * 128, 512)
    with pytest.raises(TypeError, match="EMENetVAConfig"):
        emenet.EMENetVA(emenet.EMENetConfig())


# --- the one streaming loop ------------------------------------------------------------------

@pytest.fixture(scope="module")
def crop_videos(tmp_path_factory) -> list[tuple[LabeledVideo, torch.Tensor]]:
    """Two videos of 5 and 3 random crops (lossless PNG data under the crops' .jpg names), with
    their frames (1, n, 3, 112, 112) in [0, 1] as the reference input."""
    rng = np.random.default_rng(0)
    videos = []
    for name, n in (("a", 5), ("b", 3)):
        crop_dir = tmp_path_factory.mktemp(name)
        crops = rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)
        video = LabeledVideo(name, Path(crop_dir), np.arange(1, n + 1))
        for crop, path in zip(crops, video.crop_paths(np.arange(n))):
            Image.fromarray(crop).save(path, format="PNG")
        videos.append((video, torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)[None]))
    return videos


class _Recorder(StreamHook):
    def __init__(self):
        self.events = []

    def start_video(self) -> None:
        self.events.append("start")

    def on_features(self, step, member, model, features) -> None:
        self.events.append((step, member, features.clone()))


def test_streaming_in_chunks_equals_one_call_per_video(models, crop_videos):
    members = [models["emenet_v"], models["emenet_v_aux"]]
    hook = _Recorder()
    out = list(stream_logits(members, [v for v, _ in crop_videos], chunk=2, hooks=[hook], progress=False))
    assert [vid for vid, _ in out] == [0, 1]
    with torch.no_grad():
        for (vid, per_member), (_, frames) in zip(out, crop_videos):
            for model, logits in zip(members, per_member):
                whole, _ = model(frames)
                assert set(logits) == set(model.tasks)
                for task, z in logits.items():
                    np.testing.assert_allclose(z, whole[task][0].numpy(), rtol=1e-4, atol=1e-5)
    # chunks of 2: video a is steps 0, 1, 2 and video b steps 3, 4; every member's features go to the hook
    starts = [i for i, e in enumerate(hook.events) if e == "start"]
    assert starts == [0, 7]
    steps = [(e[0], e[1]) for e in hook.events if e != "start"]
    assert steps == [(s, m) for s in range(5) for m in (0, 1)]
    with torch.no_grad():
        first = torch.cat([e[2] for e in hook.events[1:7] if e[1] == 0], dim=1)  # member 0's features of video a
        torch.testing.assert_close(first, members[0].encode_frames(crop_videos[0][1]), rtol=1e-4, atol=1e-5)


def test_streaming_keeps_only_the_asked_tasks(models, crop_videos):
    out = list(stream_logits([models["emenet_v_aux"]], [crop_videos[1][0]], chunk=8, tasks=("AU", "VA"), progress=False))
    assert [set(z) for _, (z,) in out] == [{"AU", "VA"}]
