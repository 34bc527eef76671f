"""The run layout: the original's file names, epochs found on disk, names and epochs to paths."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emenet import run_layout
from emenet.errors import EMENetInputError


def test_file_names_are_the_originals():
    assert run_layout.net_file_name("teacher_exp_0", 4) == "net_epoch_4_teacher_exp_0.pth"
    assert run_layout.optimizer_file_name(12) == "opt_epoch_12_OPT.pth"
    assert run_layout.checkpoint_path("ck", "a_b", 3) == Path("ck/a_b/net_epoch_3_a_b.pth")
    assert run_layout.optimizer_file(Path("ck/a"), 3) == Path("ck/a/opt_epoch_3_OPT.pth")


@pytest.mark.parametrize("file_name, expected", [
    ("net_epoch_12_teacher_exp_0.pth", (12, "teacher_exp_0")),
    ("net_epoch_3_net_epoch_1_x.pth", (3, "net_epoch_1_x")),  # a name may itself look like a file name
    ("opt_epoch_3_OPT.pth", None),
    ("net_epoch_x_a.pth", None),
    ("net_epoch_3_a.pth.tmp", None),
])
def test_parse_net_file(file_name, expected):
    assert run_layout.parse_net_file(file_name) == expected


def test_completed_epochs_need_both_files(tmp_path):
    run = tmp_path / "a"
    assert run_layout.completed_epochs(run, "a") == [] and run_layout.latest_epoch(run, "a") is None
    run.mkdir()
    for epoch in (1, 2, 10):
        run_layout.net_file(run, "a", epoch).touch()
        run_layout.optimizer_file(run, epoch).touch()
    run_layout.net_file(run, "a", 11).touch()  # optimizer state missing: an unfinished epoch
    run_layout.net_file(run, "b", 12).touch()  # another run's name
    run_layout.optimizer_file(run, 12).touch()
    assert run_layout.completed_epochs(run, "a") == [1, 2, 10]  # numeric order, not 1, 10, 2
    assert run_layout.latest_epoch(run, "a") == 10
    assert run_layout.completed_epochs(run, "b") == [12]


def test_best_epoch_from_history(tmp_path):
    with pytest.raises(EMENetInputError, match="history.json: not found"):
        run_layout.best_epoch(tmp_path)
    run_layout.history_file(tmp_path).write_text("{not json")
    with pytest.raises(EMENetInputError, match="unreadable run history"):
        run_layout.best_epoch(tmp_path)
    run_layout.history_file(tmp_path).write_text(json.dumps({"best_epoch": 2, "best_score": 0.5, "epochs": []}))
    assert run_layout.best_epoch(tmp_path) == 2


def test_names_and_epochs_to_paths():
    assert run_layout.named_checkpoint_paths(["a", "b"], [4], "ck") == [Path("ck/a/net_epoch_4_a.pth"),
                                                                         Path("ck/b/net_epoch_4_b.pth")]
    assert run_layout.pair_names_and_epochs(["a", "b"], [4, 8]) == [("a", 4), ("b", 8)]
    with pytest.raises(EMENetInputError, match="2 names but 3 epochs"):
        run_layout.pair_names_and_epochs(["a", "b"], [1, 2, 3])
    with pytest.raises(EMENetInputError, match="no model name"):
        run_layout.pair_names_and_epochs([], [1])


def test_docstring_examples():
    import doctest
    assert doctest.testmod(run_layout).failed == 0
