"""End to end on synthetic data: training lowers the loss, checkpoints reload, resume is exact."""
from __future__ import annotations

import json

import pytest
import torch

import emenet
from emenet.errors import EMENetInputError
from emenet.training.config import TrainConfig
from emenet.run_layout import completed_epochs
from emenet.training.run import train_teacher
from emenet.training.validate import validate_checkpoint


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from emenet.data.synth import generate_synthetic_dataset
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_dataset(root, num_videos=6, seed=3, min_frames=60, max_frames=90, two_person_videos=1,
                               num_test_videos=1, overwrite=True, progress=False)
    return root


def _config(root, ckpts, **kw) -> TrainConfig:
    base = dict(data_root=str(root), checkpoints_dir=str(ckpts), loggings_dir=str(ckpts / "logs"), seq_len=6,
                batch_size=2, max_steps_per_epoch=4, nepochs=2, val_seq_len=32, max_val_videos=2, num_workers=0, seed=5)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_training_lowers_loss_and_checkpoint_reloads(synth_root, tmp_path):
    result = train_teacher(_config(synth_root, tmp_path, name="e2e", nepochs=3, max_steps_per_epoch=8, lr=3e-3),
                           progress=False)
    assert completed_epochs(result.run_dir, "e2e") == [1, 2, 3]
    events = list((tmp_path / "logs" / "e2e").glob("events.out.tfevents.*"))
    assert events, "TensorBoard scalars written"
    history = json.loads((result.run_dir / "history.json").read_text())
    assert len(history["epochs"]) == 3 and history["best_epoch"] == result.best_epoch
    # the reloaded checkpoint scores exactly what the run logged for that epoch
    ckpt = result.run_dir / "net_epoch_3_e2e.pth"
    rescored = validate_checkpoint(ckpt, synth_root, tmp_path / "val.json", progress=False)
    logged = history["epochs"][2]
    for key, value in rescored.items():
        assert value == pytest.approx(logged[key], abs=1e-6), key
    assert json.loads((tmp_path / "val.json").read_text())["metrics"] == rescored
    # training loss fell: mean of the last epoch's steps below the first epoch's
    assert logged["train_loss"] < history["epochs"][0]["train_loss"]


@pytest.mark.slow
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(synth_root, tmp_path):
    train_teacher(_config(synth_root, tmp_path / "a", name="run"), progress=False)
    train_teacher(_config(synth_root, tmp_path / "b", name="run", nepochs=1), progress=False)  # "interrupted" after epoch 1
    train_teacher(_config(synth_root, tmp_path / "b", name="run", load_epoch=-1), progress=False)
    a = torch.load(tmp_path / "a" / "run" / "net_epoch_2_run.pth", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "run" / "net_epoch_2_run.pth", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # a rerun resumes by default (a finished run stays as it is); --load_epoch 0 never replaces it
    again = train_teacher(_config(synth_root, tmp_path / "a", name="run"), progress=False)
    assert again.best_epoch in (1, 2) and completed_epochs(tmp_path / "a" / "run", "run") == [1, 2]
    unchanged = torch.load(tmp_path / "a" / "run" / "net_epoch_2_run.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(unchanged[k], a[k]) for k in a)
    with pytest.raises(EMENetInputError, match="already holds epochs"):
        train_teacher(_config(synth_root, tmp_path / "a", name="run", load_epoch=0), progress=False)
    with pytest.raises(EMENetInputError, match="no complete checkpoint for epoch 7"):
        train_teacher(_config(synth_root, tmp_path / "a", name="run", load_epoch=7), progress=False)


@pytest.mark.slow
def test_auxiliary_head_trains_against_a_landmark_teacher(synth_root, tmp_path):
    from emenet.models.mobilefacenet import MobileFaceNet
    torch.manual_seed(0)
    teacher = MobileFaceNet(landmark_outputs=136)
    torch.save({"state_dict": teacher.state_dict()}, tmp_path / "mobilefacenet_model_best.pth.tar")
    with pytest.raises(EMENetInputError, match="--fa_teacher"):
        train_teacher(_config(synth_root, tmp_path, name="aux", auxiliary=True), progress=False)
    cfg = _config(synth_root, tmp_path, name="aux", auxiliary=True, nepochs=1, max_steps_per_epoch=2,
                  fa_teacher=str(tmp_path / "mobilefacenet_model_best.pth.tar"),
                  pretrained_backbone=str(tmp_path / "mobilefacenet_model_best.pth.tar"))
    result = train_teacher(cfg, progress=False)
    model = emenet.load_checkpoint(result.run_dir / "net_epoch_1_aux.pth")
    assert model.tasks == ("EXPR", "AU", "VA", "FA")
    assert "train_loss_FA" in result.history[0]
