"""Training-step speed settings (emenet.fast.training): the fast step learns what the plain one does."""
from __future__ import annotations

import copy

import pytest
import torch

import emenet
from emenet.data.augment import AugmentConfig
from emenet.errors import EMENetInputError
from emenet.fast.training import TrainSpeed, channels_last_clips
from emenet.models.mobilefacenet import ConvBlock
from emenet.training.config import TrainConfig
from emenet.training.trainer import Trainer
from model_helpers import teacher_batch, teacher_trainer


def _batch(seed: int = 0) -> dict:
    return teacher_batch(clips=1, steps=3, seed=seed)


def _trainer(model: emenet.EMENet, speed: TrainSpeed) -> Trainer:
    return teacher_trainer(model, AugmentConfig(), batch_size=1, speed=speed)


def test_fast_step_gives_the_plain_steps_losses_and_update():
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").train()
    fast_speed = TrainSpeed(channels_last=True, lean_activations=True)  # "fast" without the process-wide allocator
    plain, fast = _trainer(copy.deepcopy(model), TrainSpeed()), _trainer(copy.deepcopy(model), fast_speed)
    torch.manual_seed(1)  # dropout masks: the same draws for both steps
    losses_plain = plain.train_step(_batch(), torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    losses_fast = fast.train_step(_batch(), torch.Generator().manual_seed(2))
    assert set(losses_plain) == set(losses_fast) and losses_plain["loss"] > 0
    for k in losses_plain:
        assert losses_fast[k] == pytest.approx(losses_plain[k], rel=1e-4, abs=1e-5), k
    # The same update up to float rounding (sums in another order, which also depends on the
    # thread count): per parameter within 5% of its update (plus a floor for biases whose true
    # gradient is ~0, e.g. before another batch norm), and the whole update within 1%. A wrong
    # layout or a missed setting moves the update by its own size, not by percent.
    plain_updates, fast_updates = [], []
    for (name, a), b, start in zip(plain.model.named_parameters(), fast.model.parameters(), model.parameters()):
        update_plain, update_fast = (a - start).detach().flatten(), (b - start).detach().flatten()
        assert (update_fast - update_plain).norm() <= 5e-2 * update_plain.norm() + 1e-6, name
        plain_updates.append(update_plain)
        fast_updates.append(update_fast)
    plain_all, fast_all = torch.cat(plain_updates), torch.cat(fast_updates)
    assert plain_all.norm() > 1e-2  # the step did move the weights, so the comparison means something
    assert (fast_all - plain_all).norm() <= 1e-2 * plain_all.norm()
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in fast.model.parameters())
    blocks = [m for m in fast.model.modules() if isinstance(m, ConvBlock)]
    assert blocks and all(b.lean_activations for b in blocks)
    assert not any(m.lean_activations for m in plain.model.modules() if isinstance(m, ConvBlock))
    for name, buffer in plain.model.named_buffers():  # batch-norm statistics updated once, the same way
        torch.testing.assert_close(dict(fast.model.named_buffers())[name], buffer, rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_clips_keep_values_and_make_a_channels_last_batch():
    clips = torch.rand(2, 3, 3, 5, 4)
    out = channels_last_clips(clips)
    assert torch.equal(out, clips)
    assert out.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_training_options_choose_the_speed():
    assert TrainSpeed.from_options("plain", "cpu") == TrainSpeed()
    assert TrainSpeed.from_options("fast", "cpu") == TrainSpeed(channels_last=True, retain_freed_memory=True,
                                                                lean_activations=True)
    assert TrainSpeed.from_options("fast", "cuda", bf16=True) == TrainSpeed(channels_last=True, bf16=True)
    assert TrainSpeed.from_options("plain", "cpu", compile=True) == TrainSpeed(compile=True)
    assert TrainConfig().train_speed == "fast"
    with pytest.raises(EMENetInputError, match="--train_speed must be one of"):
        TrainConfig(train_speed="turbo")
