"""The original's training recipe, element by element, against hand-computed cases."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emenet.data.clips import LabeledVideo
from emenet.data.datasets import MultiTaskBatchSampler, steps_per_epoch
from emenet.data.labelled_clips import clip_windows, labelled_runs, labelled_training_windows


def _video(labelled: list[int], n: int, task: str = "AU") -> LabeledVideo:
    mask = np.zeros((n, 12), bool)
    mask[labelled] = True
    return LabeledVideo("v", Path("/nonexistent"), np.arange(1, n + 1), {task: np.zeros((n, 12), np.float32)},
                        {task: mask})


# --- epoch length -----------------------------------------------------------------------------

def test_steps_per_epoch_follow_the_shortest_task_with_incomplete_batches_dropped():
    sizes = {"AU": 23, "EXPR": 10, "VA": 57}
    assert steps_per_epoch(sizes, 4) == 2  # EXPR: 10 clips -> 2 full batches of 4
    assert steps_per_epoch(sizes, 4, "longest") == 14  # VA: 57 // 4
    assert steps_per_epoch({"AU": 9, "EXPR": 9}, 3) == 3
    with pytest.raises(ValueError, match="task EXPR has 2 training clips, fewer than --batch_size 3"):
        steps_per_epoch({"AU": 9, "EXPR": 2}, 3)


def test_shortest_epoch_gives_each_task_a_fresh_subset_without_repeats():
    ranges = {"AU": range(0, 23), "EXPR": range(23, 33), "VA": range(33, 90)}
    epochs = [list(MultiTaskBatchSampler(ranges, batch_size=4, seed=0, epoch=e)) for e in (1, 2)]
    for batches in epochs:
        assert len(batches) == 2 and all(len(b) == 12 for b in batches)
        for task, r in ranges.items():
            seen = [i for b in batches for i in b if i in r]
            assert len(seen) == 8 and len(set(seen)) == 8  # 2 steps x 4 clips, no clip twice
    va = [{i for b in batches for i in b if i >= 33} for batches in epochs]
    assert va[0] != va[1]  # another random subset of the largest task next epoch


# --- clip content -----------------------------------------------------------------------------

def test_clips_are_runs_of_labelled_frames_jumping_over_gaps_with_tails_dropped():
    # 12 crop frames; rows 3, 4 and 10 unannotated
    video = _video([0, 1, 2, 5, 6, 7, 8, 9, 11], 12)
    windows = labelled_training_windows([video], "AU", seq_len=3, fps=30)
    assert [w[1].tolist() for w in windows] == [[0, 1, 2], [5, 6, 7], [8, 9, 11]]
    windows = labelled_training_windows([video], "AU", seq_len=4, fps=30)
    assert [w[1].tolist() for w in windows] == [[0, 1, 2, 5], [6, 7, 8, 9]]  # tail [11] dropped


def test_clips_below_30_fps_take_every_offset():
    video = _video([0, 1, 2, 5, 6, 7, 8, 9, 11], 12)
    # fps 15: stride 2 over the labelled list [0, 1, 2, 5, 6, 7, 8, 9, 11]
    # offset 0 -> [0, 2, 6, 8, 11], offset 1 -> [1, 5, 7, 9]
    windows = labelled_training_windows([video], "AU", seq_len=2, fps=15)
    assert [w[1].tolist() for w in windows] == [[0, 2], [6, 8], [1, 5], [7, 9]]


def test_a_video_with_fewer_labelled_frames_than_seq_len_gives_no_clip_and_masked_keeps_todays():
    short = _video([0, 2], 6)
    assert labelled_training_windows([short], "AU", seq_len=3, fps=30) == []
    masked = clip_windows([short], "AU", seq_len=4, fps=30, mode="masked")
    assert [w[1].tolist() for w in masked] == [[0, 1, 2, 3], [2, 3, 4, 5]]


def test_a_row_with_any_unannotated_value_is_not_labelled():
    video = _video([0, 1, 2, 3], 4)
    video.masks["AU"][1, 5] = False
    assert labelled_runs(np.flatnonzero(video.masks["AU"].all(axis=1)), 3)[0].tolist() == [0, 2, 3]
    assert [w[1].tolist() for w in labelled_training_windows([video], "AU", 3, 30)] == [[0, 2, 3]]


# --- adaptive task weights and their normalisation -----------------------------------------------

def _run_hook(hook, history: list[dict[str, float]], weights) -> list[dict[str, float]]:
    from types import SimpleNamespace

    from emenet.training.trainer import TrainState
    trainer = SimpleNamespace(state=TrainState(), task_weights=weights)
    seen = []
    for metrics in history:
        hook.on_epoch_end(trainer, metrics)
        seen.append(dict(weights.current))
    return seen


def test_original_adaptive_lambdas_for_a_validation_history():
    from emenet.training.adaptive_lambda import OriginalAdaptiveTaskWeightHook
    from emenet.training.objectives import TaskWeights
    au = [0.3, 0.2, 0.25, 0.1, 0.4, 0.35, 0.3, 0.3, 0.3]
    va = [-0.1, -0.05, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]  # below the initial best of 0 until epoch 3
    history = [{"AU_score": a, "VA_score": v} for a, v in zip(au, va)]
    hook = OriginalAdaptiveTaskWeightHook({"AU": "AU_score", "VA": "VA_score"})
    seen = _run_hook(hook, history, TaskWeights({"AU": 1.0, "VA": 1.0}))
    # AU: epochs without improvement 0,1,2,3,0,1,2,3,4 -> lambda 1,1,log2 2,log2 3,(kept),(kept),log2 2,log2 3,log2 4
    expected_au = [1, 1, 1, np.log2(3), np.log2(3), np.log2(3), 1, np.log2(3), 2]
    # VA: 1,2,0,1,2,3,4,5,6 -> 1,1,1,1,1,log2 3,2,log2 5,log2 6
    expected_va = [1, 1, 1, 1, 1, np.log2(3), 2, np.log2(5), np.log2(6)]
    assert [w["AU"] for w in seen] == pytest.approx(expected_au)
    assert [w["VA"] for w in seen] == pytest.approx(expected_va)


def test_lower_is_better_metrics_start_from_1000():
    from emenet.training.adaptive_lambda import OriginalAdaptiveTaskWeightHook
    from emenet.training.objectives import TaskWeights
    hook = OriginalAdaptiveTaskWeightHook({"FA": "FA_loss"}, lower_is_better=("FA",))
    seen = _run_hook(hook, [{"FA_loss": v} for v in (5.0, 6.0, 7.0, 4.0, 8.0)], TaskWeights({"FA": 1.0}))
    assert [w["FA"] for w in seen] == pytest.approx([1, 1, 1, 1, 1])  # counts 0,1,2,0,1
    seen = _run_hook(hook, [{"FA_loss": 2000.0}] * 3, TaskWeights({"FA": 1.0}))
    assert [w["FA"] for w in seen] == pytest.approx([1, 1, np.log2(3)])


def test_reset_rule_differs_from_the_original():
    from emenet.training.hooks import AdaptiveTaskWeightHook
    from emenet.training.objectives import TaskWeights
    history = [{"AU_score": a} for a in (0.3, 0.2, 0.2, 0.2, 0.4)]
    seen = _run_hook(AdaptiveTaskWeightHook({"AU": "AU_score"}), history, TaskWeights({"AU": 1.0}))
    assert [w["AU"] for w in seen] == pytest.approx([1, 1, 1, np.log2(3), 1])  # back to base on improvement


def test_lambdas_are_normalised_over_all_the_models_heads():
    from emenet.training.config import TrainConfig
    from emenet.training.run import task_weights
    visual = task_weights(TrainConfig(tasks=["AU", "VA"], lambda_AU=2.0))
    assert visual.normalised() == pytest.approx({"AU": 2 / 5, "VA": 1 / 5})  # AU 2 + EXPR 1 + VA 1 + FA 1
    av = task_weights(TrainConfig(tasks=["AU", "EXPR", "VA"], modality="audiovisual"))
    assert av.normalised() == pytest.approx({"AU": 1 / 5, "EXPR": 1 / 5, "VA": 1 / 5})  # FA, VAD count too
    active = task_weights(TrainConfig(tasks=["AU", "VA"], lambda_AU=2.0, lambda_normalisation="active"))
    assert active.normalised() == pytest.approx({"AU": 2 / 3, "VA": 1 / 3})


def test_old_boolean_adaptive_lambda_configs_still_load():
    from emenet.training.config import TrainConfig
    assert TrainConfig(adaptive_lambda=True).adaptive_lambda == "reset"
    assert TrainConfig(adaptive_lambda=False).adaptive_lambda == "off"
    assert TrainConfig().adaptive_lambda == "original"


# --- per-frame augmentation, as torchvision's ColorJitter did on PIL images ---------------------

def _pil_jitter(image: np.ndarray, order: list[int], factors: list[float]) -> np.ndarray:
    """Pillow's own enhancers on one uint8 (H, W, 3) frame, in the given order."""
    from PIL import Image, ImageEnhance
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    pil = Image.fromarray(image)
    for op in order:
        pil = enhancers[op](pil).enhance(factors[op])
    return np.asarray(pil)


def test_per_frame_jitter_matches_pillow_frame_by_frame():
    import torch

    from emenet.data.augment_frames import jitter_frames
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (12, 3, 9, 7), generator=g, dtype=torch.uint8)
    frames[0] = 250  # near white: brightness > 1 must clip
    out = jitter_frames(frames.float(), (0.3, 0.3, 0.3), torch.Generator().manual_seed(5))
    draw = torch.Generator().manual_seed(5)  # the same draws, in the documented order
    order = torch.argsort(torch.rand(12, 3, generator=draw), dim=1)
    factors = torch.stack([1.0 + (torch.rand(12, generator=draw) * 2.0 - 1.0) * 0.3 for _ in range(3)], dim=1)
    assert factors.min() >= 0.7 and factors.max() <= 1.3
    assert len({tuple(o) for o in order.tolist()}) > 1  # frames draw their own order
    for i in range(12):
        expected = _pil_jitter(frames[i].permute(1, 2, 0).numpy(), order[i].tolist(), factors[i].tolist())
        np.testing.assert_array_equal(out[i].permute(1, 2, 0).numpy().astype(np.uint8), expected, err_msg=f"frame {i}")


def test_per_frame_mode_draws_for_every_frame_and_stays_on_the_uint8_grid():
    import torch

    from emenet.data.augment import AugmentConfig, augment_clips
    base = (torch.randint(0, 256, (1, 1, 3, 8, 8), generator=torch.Generator().manual_seed(0)).float() / 255)
    clips = base.expand(2, 6, 3, 8, 8).contiguous()  # 2 clips of 6 equal frames
    out = augment_clips(clips, AugmentConfig(image_size=8), torch.Generator().manual_seed(1))
    assert not torch.equal(out[0, 0], out[0, 1])  # frames of one clip differ
    torch.testing.assert_close(out * 255, (out * 255).round(), rtol=0, atol=1e-4)
    flipped = augment_clips(clips, AugmentConfig(image_size=8, brightness=0, contrast=0, saturation=0),
                            torch.Generator().manual_seed(1))
    mirrored = [torch.equal(f, clips[0, 0].flip(-1)) for f in flipped.flatten(0, 1)]
    kept = [torch.allclose(f, clips[0, 0]) for f in flipped.flatten(0, 1)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)


# --- the VAD loss of teachers -------------------------------------------------------------------

@pytest.mark.parametrize("grad", [True, False])
def test_legacy_vad_teacher_loss_is_counted_but_trains_nothing(grad):
    import torch

    from emenet.training.objectives import TeacherObjective
    g = torch.Generator().manual_seed(0)
    logits = {"VA": torch.randn(2, 3, 40, generator=g, requires_grad=True),
              "VAD": torch.randn(2, 3, 2, generator=g, requires_grad=True)}
    batch = {"VA": {"labels": torch.rand(2, 3, 2, generator=g) - 0.5, "mask": torch.ones(2, 3, 2, dtype=torch.bool),
                    "vad": torch.rand(2, 3, generator=g)}}
    losses = TeacherObjective(vad_grad=grad)(logits, batch, {"VA": slice(0, 2)}, None, {"VA": 0.5, "VAD": 0.25})
    values = {k: float(v.detach()) for k, v in losses.items()}
    assert values["loss"] == pytest.approx(0.5 * values["loss_VA"] + 0.25 * values["loss_VAD"])
    losses["loss"].backward()
    assert logits["VA"].grad.abs().sum() > 0
    assert (logits["VAD"].grad is not None and logits["VAD"].grad.abs().sum() > 0) == grad


# --- initialisation, optimiser and heads as the original had them --------------------------------

def test_original_initialisation_is_kaiming_fan_out_and_uniform_audio_visual_decoders():
    from emenet.training.config import TrainConfig
    from emenet.training.run import build_model
    model = build_model(TrainConfig(seed=1))
    w = model.backbone.conv_6_sep.conv.weight.detach()  # (512, 128, 1, 1): fan_out = 512 -> std sqrt(2 / 512) = 0.0625
    assert float(w.std()) == pytest.approx(0.0625, rel=0.03) and abs(float(w.mean())) < 0.002
    torch_default = build_model(TrainConfig(seed=1, init="torch")).backbone.conv_6_sep.conv.weight.detach()
    assert float(torch_default.std()) < 0.06  # kaiming_uniform(a=sqrt 5): bound 1/sqrt(128), std ~0.051
    av = build_model(TrainConfig(seed=1, modality="audiovisual"))
    for head in av.tmodels:
        top = float(head.decoder.weight.detach().abs().max())
        assert 0.09 < top <= 0.1


def test_training_from_scratch_says_so_in_one_line(caplog):
    from emenet.training.config import TrainConfig
    from emenet.training.run import build_model
    with caplog.at_level("WARNING", logger="emenet.training.run"):
        build_model(TrainConfig(modality="audiovisual"))
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and "--pretrained_backbone" in lines[0] and "--pretrained_audio_backbone" in lines[0]


def test_sgd_momentum_defaults_to_the_originals():
    from emenet.training.config import TrainConfig
    from emenet.training.run import build_model, build_optimizer
    for config, momentum in ((TrainConfig(optimizer="SGD"), 0.5), (TrainConfig(optimizer="SGD", modality="audiovisual"), 0.0),
                             (TrainConfig(optimizer="SGD", sgd_momentum="0.9"), 0.9)):
        optimizer = build_optimizer(config, build_model(config))
        assert optimizer.param_groups[0]["momentum"] == momentum


def test_dropout_between_recurrent_layers():
    from emenet.models.emenet import EMENet, EMENetConfig
    assert EMENet(EMENetConfig(num_layers=2)).tmodels[0].rnn.dropout == 0.5
    assert EMENet(EMENetConfig(num_layers=1)).tmodels[0].rnn.dropout == 0.0


# --- the original's audio window timing ----------------------------------------------------------

def test_legacy_audio_window_centres_at_29_97_fps():
    from emenet.audio import window_centres
    from emenet.audio_timing import legacy_window_centres
    frames = np.array([100, 8991])  # 8991 = five minutes at 29.97 fps
    n = 16000 * 400
    # teacher: F = round(29.97) + 1 = 31; centre = int((k + 0.5) / 31 * 16000 - 5040) + 5040
    #   k = 100: 100.5 / 31 * 16000 = 51870.97 -> 51870;  k = 8991: 8991.5 / 31 * 16000 = 4640774.19 -> 4640774
    np.testing.assert_array_equal(legacy_window_centres(frames, 29.97, 16000, 10080, n), [51870, 4640774])
    # students: F = 32: 100.5 / 32 * 16000 = 50250 exactly; 8991.5 / 32 * 16000 = 4495750
    np.testing.assert_array_equal(legacy_window_centres(frames, 29.97, 16000, 10080, n, "student"), [50250, 4495750])
    exact = window_centres(frames, 29.97, 16000)  # round((k + 0.5) / 29.97 * 16000)
    np.testing.assert_array_equal(exact, [53654, 4800267])  # 53653.65 and 4800266.93, rounded
    drift_s = (exact[1] - 4640774) / 16000
    assert drift_s == pytest.approx(9.97, abs=0.01)  # about 10 s after five minutes


def test_legacy_windows_are_clamped_to_the_track():
    from emenet.audio_timing import legacy_window_starts
    starts = legacy_window_starts(np.array([0, 1, 309]), 29.97, 16000, 10080, num_samples=160000)
    # k = 0, 1: middle * sr - 5040 < 0 -> 0; k = 309: 309.5 / 31 * 16000 - 5040 = 154703.2 > 160000 - 10080
    np.testing.assert_array_equal(starts, [0, 0, 149920])


def test_clip_windows_use_the_legacy_timing_when_asked(tmp_path):
    from emenet.data.audio_source import AudioSource, clip_windows
    track = np.arange(16000 * 20, dtype=np.float32)  # sample i holds the value i
    np.save(tmp_path / "t.npy", track)
    exact = clip_windows(AudioSource(tmp_path / "t.npy", 29.97), np.array([100]), 10080)
    legacy = clip_windows(AudioSource(tmp_path / "t.npy", 29.97, timing="legacy"), np.array([100]), 10080)
    assert exact[0, 5040] == 53654 and legacy[0, 5040] == 51870


def test_frame_windows_and_checkpoints_carry_the_legacy_timing(tmp_path):
    import torch

    from emenet.audio import frame_windows
    from emenet.inference.predictor import Predictor
    from emenet.models.checkpoint import load_checkpoint, save_checkpoint
    from emenet.models.emenet_va import EMENetVA, EMENetVAConfig
    track = np.arange(16000 * 20, dtype=np.float32)
    legacy = frame_windows(track, 29.97, np.array([100]), 16000, 0.63, timing="legacy")
    assert legacy[0, 5040] == 51870 and frame_windows(track, 29.97, np.array([100]), 16000, 0.63)[0, 5040] == 53654
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "net_epoch_1_va.pth", EMENetVA(EMENetVAConfig(audio_timing="legacy")), 1)
    assert load_checkpoint(path).config.audio_timing == "legacy"
    assert Predictor([path], backend="eager").audio_timing == "legacy"
    assert Predictor([path], backend="eager", audio_timing="exact").audio_timing == "exact"


# --- ensemble selection --------------------------------------------------------------------------

def test_keep_best_by_validation_total_score():
    from emenet.distill.selection import keep_best
    assert keep_best(["a", "b", "c", "d", "e"], [2.1, 2.5, 1.9, 2.5, 2.4], 3) == ["b", "d", "e"]
    assert keep_best(["a", "b"], [1.0, 2.0], None) == ["a", "b"]
    with pytest.raises(ValueError, match="keep"):
        keep_best(["a"], [1.0], 0)


def test_distill_rounds_keep_k_members_and_say_which(tmp_path, monkeypatch):
    import emenet.distill.rounds as rounds
    from emenet.distill.parallel import JobOutcome
    from emenet.training.config import TrainConfig
    scores = {"teacher_exp_0": 1.0, "teacher_exp_1": 3.0, "teacher_exp_2": 2.0, "teacher_exp_3": 0.5}
    monkeypatch.setattr(rounds, "run_jobs", lambda fn, jobs, ray: [
        JobOutcome(name, True, {"best_epoch": 2, "best_score": scores[name]}) for name, _ in jobs])
    evaluated = []

    def fake_scores(members, *args, **kwargs):
        evaluated.append([m.name for m in members])
        return [{"method": m.name, "epoch": m.epoch, "total_score": scores[m.name]} for m in members] + [
            {"method": "ensemble", "epoch": -1, "total_score": 9.0}]
    monkeypatch.setattr(rounds, "ensemble_validation_scores", fake_scores)
    plan = rounds.DistillPlan(members=4, rounds=0, annotations_dir=str(tmp_path), keep=2)
    table = rounds.run_rounds(plan, TrainConfig(data_root="x", checkpoints_dir=str(tmp_path)), progress=False)
    assert evaluated == [["teacher_exp_1", "teacher_exp_2"]]  # the ensemble is the 2 best
    kept = dict(zip(table["method"], table["kept"]))
    assert kept == {"teacher_exp_0": False, "teacher_exp_3": False, "teacher_exp_1": True, "teacher_exp_2": True,
                    "ensemble": True}
    assert "kept" in (tmp_path / "summary.md").read_text()
    with pytest.raises(Exception, match="--keep"):
        rounds.DistillPlan(members=4, keep=5)


# --- the audio branch's spectrogram augmentation ------------------------------------------------

def _intervals(row: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_spec_augment_masks_follow_nemos_marblenet_configuration():
    import torch

    from emenet.models.spec_augment import SpecAugmentConfig, spec_augment_mask
    torch.manual_seed(0)
    n, lengths = 3000, torch.full((3000,), 63)  # 64 MFCC frames, 63 valid (NeMo's length for 10080 samples)
    bands = spec_augment_mask(n, 64, 64, lengths, SpecAugmentConfig(time_masks=0, rect_masks=0), "cpu")
    assert bool((bands == bands[:, :, :1]).all())  # whole rows of coefficients
    runs = [r for m in bands[:, :, 0].numpy() for r in _intervals(m)]
    assert min(a for a, _ in runs) == 0 and max(a for a, _ in runs) <= 64 - 15
    assert max(b - a for a, b in runs) <= 2 * 15  # two bands of at most 15 may touch
    spans = spec_augment_mask(n, 64, 64, lengths, SpecAugmentConfig(freq_masks=0, rect_masks=0), "cpu")
    runs = [r for m in spans[:, 0, :].numpy() for r in _intervals(m)]
    assert max(a for a, _ in runs) == 63 - 25  # starts up to max(1, valid length - time_width) = 38
    assert max(b for _, b in runs) <= 38 + 25
    single = spec_augment_mask(n, 64, 64, lengths, SpecAugmentConfig(freq_masks=0, rect_masks=0, time_masks=1), "cpu")
    widths = single[:, 0, :].sum(dim=1)
    assert set(widths.tolist()) == set(range(26))  # every width 0..25, ends included
    # expected width of one span: mean of 0..25 = 12.5
    assert float(widths.float().mean()) == pytest.approx(12.5, abs=0.5)
    rects = spec_augment_mask(n, 64, 64, lengths, SpecAugmentConfig(freq_masks=0, time_masks=0, rect_masks=1), "cpu")
    for m in rects[:50].numpy():  # one cut-out: a rectangle of at most 15 x 25
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if len(rows):
            assert m[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all() and m.sum() == len(rows) * len(cols)
            assert len(rows) <= 15 and len(cols) <= 25 and rows.min() <= 64 - 15 and cols.min() <= 64 - 25


def test_audio_branch_augments_only_in_training():
    import torch

    from emenet.models.marblenet import MarbleNet
    from emenet.models.spec_augment import SpecAugmentConfig
    torch.manual_seed(0)
    net = MarbleNet()
    audio = torch.randn(2, 10080) * 0.1
    plain = net.eval()(audio)
    net.spec_augment = SpecAugmentConfig()
    torch.testing.assert_close(net.eval()(audio), plain)
    net.train()
    seen = []
    hook = net.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    net(audio)
    hook.remove()
    assert float((seen[0] == 0).float().mean()) > 0.05  # masked MFCC values reach the encoder


# --- students' frames ----------------------------------------------------------------------------

def test_students_learn_on_frames_with_some_ground_truth():
    from emenet.data.soft_labels import DISTILL_KEY, SoftLabelLayout
    from emenet.data.student_frames import keep_labelled_frames
    layout = SoftLabelLayout(("EXPR", "VA"))
    n = 8
    mask = np.zeros((n, layout.width), bool)
    for t in layout.tasks:
        mask[:, layout.soft[t]] = True
    mask[[1, 2], layout.ground_truth["EXPR"]] = True  # EXPR labels on frames 1, 2
    mask[[2, 5, 6], layout.ground_truth["VA"]] = True  # VA labels on frames 2, 5, 6
    video = LabeledVideo("v", Path("/nonexistent"), np.arange(1, n + 1), {DISTILL_KEY: np.zeros((n, layout.width))},
                         {DISTILL_KEY: mask})
    kept = keep_labelled_frames([video], layout)[0]
    assert np.flatnonzero(kept.masks[DISTILL_KEY][:, 0]).tolist() == [1, 2, 5, 6]
    assert (kept.masks[DISTILL_KEY][:, layout.ground_truth["VA"]] == mask[:, layout.ground_truth["VA"]]).all()
    # the original's clips: runs of those frames, tails dropped
    assert [w[1].tolist() for w in labelled_training_windows([kept], DISTILL_KEY, 3, 30)] == [[1, 2, 5]]
