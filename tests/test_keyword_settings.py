"""Keyword-only optional settings (Trainer) and the loss weights as an explicit mapping (TrainConfig)."""
from __future__ import annotations

import argparse
from dataclasses import fields

import pytest
import torch

from emenet.training.config import TrainConfig, add_config_arguments, resolve_config
from emenet.training.run import task_weights
from emenet.training.trainer import Trainer


def _config(argv: list[str], **script_defaults) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return resolve_config(parser.parse_args(argv), **script_defaults)


def test_loss_weights_are_every_lambda_flag():
    config = _config(["--lambda_AU", "2", "--lambda_VA", "0.5", "--lambda_VAD", "3"])
    lambdas = {f.name.removeprefix("lambda_"): getattr(config, f.name) for f in fields(TrainConfig)
               if f.name.startswith("lambda_") and f.name != "lambda_normalisation"}
    assert config.loss_weights == lambdas == {"AU": 2.0, "EXPR": 1.0, "VA": 0.5, "FA": 1.0, "VAD": 3.0}
    assert "loss_weights" not in config.to_dict()  # the config file's format is unchanged


def test_task_weights_take_the_loss_weights():
    visual = task_weights(_config(["--lambda_AU", "2", "--lambda_VA", "0.5"]))  # trains AU, EXPR, VA; FA inactive
    assert visual.normalised() == pytest.approx({"AU": 2 / 4.5, "EXPR": 1 / 4.5, "VA": 0.5 / 4.5})
    av = task_weights(_config(["--lambda_VAD", "3"], modality="audiovisual"))  # VAD joins the sum, untrained
    assert av.normalised() == pytest.approx({t: 1 / 7 for t in ("AU", "EXPR", "VA")})


def test_trainer_settings_are_keyword_only():
    model = torch.nn.Linear(1, 1)
    required = [model, None, None, None, False, None, None, None, None, 1, 1, 0, torch.device("cpu")]
    assert Trainer(*required, num_workers=2).num_workers == 2
    with pytest.raises(TypeError):
        Trainer(*required, 10)  # steps_per_epoch, positionally
