"""The teacher step as the original ran it: a forward pass per task, one optimizer step."""
from __future__ import annotations

import copy

import pytest
import torch

import emenet
from emenet.data.augment import AugmentConfig, to_float_frames
from emenet.fast.training import TrainSpeed
from emenet.models.emenet import EMENetConfig
from emenet.training.objectives import TeacherObjective
from emenet.training.trainer import Trainer
from model_helpers import teacher_batch, teacher_trainer

NO_AUGMENT = AugmentConfig(brightness=0, contrast=0, saturation=0, hflip_prob=0)


def _trainer(model: emenet.EMENet, step: str) -> Trainer:
    return teacher_trainer(model, NO_AUGMENT, batch_size=2, teacher_step=step)


@pytest.fixture(scope="module")
def model() -> emenet.EMENet:
    torch.manual_seed(0)
    return emenet.EMENet(EMENetConfig(dropout=0.0)).train()


def _reference_step(model: emenet.EMENet, batch: dict) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Written out independently: a forward pass per task, the weighted losses summed, ONE backward."""
    objective, optimizer = TeacherObjective(), torch.optim.SGD(model.parameters(), lr=0.1)
    weight = 1.0 / len(model.tasks)
    total, losses = 0.0, {}
    for task, b in batch.items():
        logits, _ = model(to_float_frames(b["frames"]))
        loss = objective.task_loss(task, logits[task].flatten(0, 1), b["labels"].flatten(0, 1), b["mask"].flatten(0, 1))
        losses[f"loss_{task}"] = float(loss.detach())
        total = total + weight * loss
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    losses["loss"] = float(total.detach())
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_per_task_step_equals_per_task_forwards_with_one_backward_of_the_summed_loss(model):
    batch = teacher_batch()
    expected, expected_state = _reference_step(copy.deepcopy(model), batch)
    trainer = _trainer(copy.deepcopy(model), "per_task")
    got = trainer.train_step(batch, torch.Generator().manual_seed(0))
    assert set(got) == set(expected)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-5), k
    state = trainer.model.state_dict()
    moved = 0.0
    for k, v in expected_state.items():  # weights after the step AND batch-norm running statistics
        torch.testing.assert_close(state[k], v, rtol=1e-4, atol=1e-6, msg=k)
        moved += float((v.float() - model.state_dict()[k].float()).abs().sum())
    assert moved > 1.0  # the step changed the model, so the comparison means something


def test_concat_step_differs_in_batch_norm_statistics(model):
    """The joint pass normalises all tasks' clips together: a different model after one step."""
    batch = teacher_batch()
    per_task, concat = _trainer(copy.deepcopy(model), "per_task"), _trainer(copy.deepcopy(model), "concat")
    per_task.train_step(batch, torch.Generator().manual_seed(0))
    concat.train_step(batch, torch.Generator().manual_seed(0))
    a, b = per_task.model.backbone.conv1.bn.running_var, concat.model.backbone.conv1.bn.running_var
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("lean", [False, True])
def test_activation_checkpointing_gives_the_same_step(model, lean):
    """Also with lean batch norm + PReLU (emenet.models.bn_prelu) inside the recomputed stages."""
    batch = teacher_batch(clips=1, steps=2)
    plain = _trainer(copy.deepcopy(model), "per_task")
    checked = teacher_trainer(copy.deepcopy(model), NO_AUGMENT, batch_size=2, teacher_step="per_task",
                              speed=TrainSpeed(lean_activations=lean))
    checked.model.backbone.checkpoint_activations = True
    a = plain.train_step(batch, torch.Generator().manual_seed(0))
    b = checked.train_step(batch, torch.Generator().manual_seed(0))
    assert a == pytest.approx(b, rel=1e-5)
    sa, sb = plain.model.state_dict(), checked.model.state_dict()
    for k in sa:  # batch norms fold each batch into their running statistics once, not twice
        torch.testing.assert_close(sb[k], sa[k], rtol=1e-4, atol=1e-6, msg=k)


def test_unknown_teacher_step_is_refused(model):
    with pytest.raises(ValueError, match="teacher_step"):
        _trainer(model, "joint")
