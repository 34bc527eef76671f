"""Training options: YAML under flags, the original's spellings, validation of values."""
from __future__ import annotations

import argparse

import pytest
import yaml

from emenet.errors import EMENetInputError
from emenet.training.config import TrainConfig, add_config_arguments, resolve_config, save_config


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    return p.parse_args(argv)


def test_defaults_are_the_originals():
    """The defaults of the original's last commit (reference README, "The original's training recipe")."""
    c = TrainConfig()
    assert (c.optimizer, c.lr, c.weight_decay, c.lr_policy, c.lr_decay_epochs, c.T_max, c.nepochs) == ("Adam", 1e-3, 0.0, "step", 3, 20000, 10)
    assert (c.seq_len, c.fps, c.batch_size, c.nhid, c.nlayers, c.dropout) == (16, 30, 5, 128, 1, 0.5)
    assert (c.TModel, c.nhead, c.load_epoch, c.metric) == ("GRU", 2, -1, "auto")
    assert (c.au_loss, c.expr_loss, c.va_loss, c.fa_loss) == ("bce", "ce", "ccc", "l1_loss")


def test_visual_audio_tree_has_its_own_defaults():
    av = resolve_config(_parse([]), modality="audiovisual")
    assert (av.seq_len, av.batch_size, av.lr_decay_epochs, av.nepochs) == (8, 8, 4, 15)
    assert resolve_config(_parse(["--seq_len", "12"]), modality="audiovisual").seq_len == 12  # flags still win
    assert resolve_config(_parse(["--modality", "audiovisual"])).nepochs == 15
    visual = resolve_config(_parse([]))
    assert (visual.seq_len, visual.batch_size, visual.lr_decay_epochs, visual.nepochs) == (16, 5, 3, 10)


def test_yaml_under_flags_and_saved_config_roundtrips(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"lr": 0.01, "seq_len": 8, "tasks": ["AU", "VA"]}))
    config = resolve_config(_parse(["--config", str(cfg_file), "--seq_len", "12", "--auxillary", "--TModel", "LSTM"]))
    assert config.lr == 0.01 and config.seq_len == 12 and config.auxiliary and config.TModel == "LSTM"
    assert config.tasks == ["AU", "VA"] and config.model_tasks == ("AU", "VA", "FA")
    save_config(config, tmp_path / "resolved.yaml")
    again = TrainConfig.from_dict(yaml.safe_load((tmp_path / "resolved.yaml").read_text()))
    assert again == config


def test_unknown_yaml_key_and_bad_values_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(EMENetInputError, match=r"bad.yaml: unknown option\(s\) \['learning_rate'\]"):
        resolve_config(_parse(["--config", str(bad)]))
    with pytest.raises(EMENetInputError, match="config file not found"):
        resolve_config(_parse(["--config", str(tmp_path / "missing.yaml")]))
    with pytest.raises(EMENetInputError, match="--lr_policy"):
        resolve_config(_parse(["--lr_policy", "linear"]))
    with pytest.raises(EMENetInputError, match="unknown task"):
        resolve_config(_parse(["--tasks", "AU", "POSE"]))


@pytest.mark.parametrize("text, expected", [
    ("lr: fast\n", "bad.yaml: lr must be a number, got 'fast'"),
    ("seq_len: 8.5\n", "bad.yaml: seq_len must be a whole number, got 8.5"),
    ("nepochs: true\n", "bad.yaml: nepochs must be a whole number, got True"),
    ("dropout: [0.1]\n", "bad.yaml: dropout must be a number, got [0.1]"),
])
def test_yaml_values_of_the_wrong_type_are_one_line_errors(tmp_path, text, expected):
    """They once reached torch's optimizer or a comparison and ended in a TypeError traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(EMENetInputError) as info:
        resolve_config(_parse(["--config", str(bad)]))
    assert str(info.value).endswith(expected)


def test_yaml_exponent_without_a_dot_is_the_number_it_spells(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("lr: 1e-3\nweight_decay: 5e-4\nmax_val_videos: null\n")
    assert yaml.safe_load(cfg_file.read_text())["lr"] == "1e-3"  # YAML 1.1 reads it as text
    config = resolve_config(_parse(["--config", str(cfg_file)]))
    assert (config.lr, config.weight_decay, config.max_val_videos) == (1e-3, 5e-4, None)


@pytest.mark.parametrize("flag, value, expected", [
    ("--lr", "-1", "--lr must not be negative, got -1.0"),
    ("--weight_decay", "-0.1", "--weight_decay must not be negative, got -0.1"),
    ("--num_workers", "-1", "--num_workers must not be negative, got -1"),
    ("--dropout", "1.5", "--dropout must be in [0, 1], got 1.5"),
    ("--nhid", "0", "--nhid must be positive, got 0"),
    ("--nlayers", "0", "--nlayers must be positive, got 0"),
    ("--lr_decay_epochs", "0", "--lr_decay_epochs must be positive, got 0"),
    ("--T_max", "0", "--T_max must be positive, got 0"),
    ("--fps", "0", "--fps must be positive, got 0"),
    ("--max_val_videos", "-1", "--max_val_videos must be at least 1 (leave it out for no cap), got -1"),
    ("--max_steps_per_epoch", "0", "--max_steps_per_epoch must be at least 1 (leave it out for no cap), got 0"),
])
def test_out_of_range_training_values_are_one_line_errors(flag, value, expected):
    """torch refuses these deep inside a run (a traceback after the data is indexed); refuse them first."""
    with pytest.raises(EMENetInputError) as info:
        resolve_config(_parse([flag, value]))
    assert str(info.value) == expected


def test_cuda_flag_selects_cuda_device():
    assert TrainConfig(cuda=True).device == "cuda"


def test_each_tree_shows_its_defaults_in_help():
    from emenet.cli.app import COMMANDS, _show_script_defaults
    helps = {}
    for tree, defaults in (("visual", {}), ("audiovisual", {"modality": "audiovisual"})):
        parser = argparse.ArgumentParser()
        COMMANDS["train"][0](parser)
        _show_script_defaults(parser, defaults)
        helps[tree] = {a.dest: a.help for a in parser._actions}
    assert helps["visual"]["seq_len"].endswith("(default: 16)") and helps["visual"]["nepochs"].endswith("(default: 10)")
    assert helps["audiovisual"]["seq_len"].endswith("(default: 8)") and helps["audiovisual"]["nepochs"].endswith("(default: 15)")
    assert "resumes from the latest checkpoint" in helps["visual"]["load_epoch"]
