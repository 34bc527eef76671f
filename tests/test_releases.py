"""Every Aff-wild2 release end to end on synthetic data: index, one short epoch, validation, test set.

One tiny dataset per release (`emenet synth --release`), one training epoch of two steps, the
validation of its checkpoint and a prediction of the synthetic test videos in the challenge format.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from emenet.data.affwild2 import load_affwild2_index
from emenet.data.synth import generate_synthetic_dataset
from emenet.data.synth_releases import NEW_CROPS_FOLDER, SYNTH_RELEASES
from emenet.challenge.submission import SubmissionMember, score_submission, write_submission
from emenet.challenge.test_set import build_test_set
from emenet.models.checkpoint import load_checkpoint, read_checkpoint_file
from emenet.tasks import EXPR_NAMES, EXPR_NAMES_WITH_OTHER
from emenet.training.config import TrainConfig
from emenet.training.run import train_teacher
from emenet.training.validate import validate_checkpoint

# The layout each synthetic release is read as, its expression classes and the score that picks epochs.
EXPECTED = {"abaw2": ("abaw2", 7, "total_score"), "abaw3": ("abaw3", 8, "abaw3_score"),
            "abaw5": ("abaw3", 8, "abaw3_score"), "abaw6": ("abaw3", 8, "abaw3_score"),
            "mtl": ("mtl", 8, "abaw3_score")}


@pytest.fixture(scope="module")
def release_root(tmp_path_factory):
    """release -> a tiny synthetic dataset in that layout, written on first use."""
    roots: dict[str, Path] = {}

    def make(release: str) -> Path:
        if release not in roots:
            root = tmp_path_factory.mktemp(f"synth_{release}")
            generate_synthetic_dataset(root, num_videos=3, seed=1, min_frames=30, max_frames=40, two_person_videos=1,
                                       num_test_videos=1, overwrite=True, progress=False, num_workers=1, release=release)
            roots[release] = root
        return roots[release]
    return make


def test_every_release_is_a_choice_of_synth():
    assert set(SYNTH_RELEASES) == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("release", list(EXPECTED))
def test_release_trains_validates_and_predicts_its_test_set(release, release_root, tmp_path, one_thread):
    layout, num_classes, select = EXPECTED[release]
    root = release_root(release)
    index = load_affwild2_index(root, cache_dir=tmp_path / "cache")
    assert (index.release, index.num_expr_classes) == (layout, num_classes)
    manifest = json.loads((root / "synth_manifest.json").read_text())
    train_names = {n for task in ("AU", "EXPR", "VA") for n in index.names(task, "train")}
    assert train_names == {n for t in manifest["splits"].values() for n in t["Train_Set"]}
    if release in ("abaw5", "abaw6"):  # a third of the names' crops live in the new-videos folder
        moved = manifest["new_crops_folder_names"]
        assert moved and all(index.crop_dir(n) == (root / NEW_CROPS_FOLDER / n).resolve() for n in moved)
    if num_classes == 8:
        assert (index.frames["expr"] == 7).any()  # `Other` frames made it into the index

    config = TrainConfig(data_root=str(root), checkpoints_dir=str(tmp_path / "ckpt"), loggings_dir=str(tmp_path / "logs"),
                         name="t", seq_len=4, batch_size=2, max_steps_per_epoch=2, nepochs=1, val_seq_len=32,
                         num_workers=0, seed=1, cache_dir=str(tmp_path / "cache"))
    result = train_teacher(config, progress=False)
    checkpoint = result.run_dir / "net_epoch_1_t.pth"
    saved = read_checkpoint_file(checkpoint)
    assert saved["config"]["num_expr_classes"] == num_classes
    assert (saved["dataset_release"], saved["select_metric"]) == (layout, select)
    assert result.best_score == result.history[0][select]
    model = load_checkpoint(checkpoint)
    assert model.config.num_expr_classes == num_classes
    assert model(torch.rand(1, 2, 3, 112, 112))[0]["EXPR"].shape == (1, 2, num_classes)

    metrics = validate_checkpoint(checkpoint, root, tmp_path / "val.json", cache_dir=str(tmp_path / "cache"),
                                  progress=False)
    assert metrics[select] == pytest.approx(result.history[0][select], abs=1e-6)

    extra = ()
    if release == "abaw5":  # a test video among the newly added ones: its crops are in the second folder
        import shutil
        from emenet.errors import EMENetInputError
        name = manifest["test_names"]["EXPR"][0]
        shutil.move(str(root / "cropped_aligned" / name), str(root / NEW_CROPS_FOLDER / name))
        with pytest.raises(EMENetInputError, match="no crop folder under"):
            build_test_set(root, progress=False)
        extra = (root / NEW_CROPS_FOLDER,)
    test_set = build_test_set(root, progress=False, extra_crops_dirs=extra)
    save_dir = tmp_path / "submission"
    write_submission([SubmissionMember("m", checkpoint)], test_set, save_dir, progress=False, num_workers=0)
    names = test_set.names("EXPR")
    assert names
    header = (save_dir / "merged" / "EXPR" / f"{names[0]}.txt").read_text().splitlines()[0]
    assert header == ",".join(EXPR_NAMES_WITH_OTHER if num_classes == 8 else EXPR_NAMES)
    scores = score_submission(save_dir / "merged", root / "synthetic_ground_truth", test_set)
    assert set(scores) <= {"AU", "EXPR", "VA"} and "EXPR" in scores
    assert len(scores["EXPR"]["f1_per_class"]) == num_classes
    if release != "abaw2":  # the single-file form of the later releases, built from the per-video files
        _check_release_files(save_dir, test_set, "mtl" if release == "mtl" else "abaw3")


def _check_release_files(save_dir: Path, test_set, release_format: str) -> None:
    from emenet.challenge.release_submission import write_release_files
    from emenet.challenge.submission import read_submission_file
    written = write_release_files(save_dir / "merged", test_set, save_dir / "release", release_format)
    if release_format == "mtl":
        complete = [n for n in test_set.names() if len(test_set[n].tasks) == 3]
        if len(complete) < len(test_set):  # the multi-task form needs every task of every test name
            return
        (path,) = written
        lines = path.read_text().splitlines()
        assert lines[0] == "image,valence,arousal,expression,aus"
        assert len(lines) - 1 == sum(test_set[n].num_crops for n in test_set)
        first = test_set[test_set.names()[0]]
        fields = lines[1].split(",")
        assert fields[0] == f"{first.name}/{int(first.crop_frames[0]):05d}.jpg" and len(fields) == 16
        return
    by_name = {p.name: p for p in written}
    lines = by_name["EXPR_Recognition_Challenge.txt"].read_text().splitlines()
    assert lines[0] == "image_location," + ",".join(EXPR_NAMES_WITH_OTHER)
    name = test_set.names("EXPR")[0]
    per_video = read_submission_file(save_dir / "merged" / "EXPR" / f"{name}.txt", "EXPR")
    assert lines[1] == f"{name}/00001.jpg,{per_video[0]}"
    assert len(lines) - 1 == sum(test_set[n].num_frames for n in test_set.names("EXPR"))


@pytest.mark.slow
def test_distillation_rounds_on_eight_class_data(release_root, tmp_path, one_thread):
    """A teacher, its annotation (soft labels with `Other`, and the --vis pictures) and a student."""
    import pandas as pd

    from emenet.viz.label_pictures import write_annotation_pictures
    from emenet.distill import rounds
    root = release_root("abaw3")
    base = TrainConfig(data_root=str(root), checkpoints_dir=str(tmp_path / "ck"), loggings_dir=str(tmp_path / "logs"),
                       cache_dir=str(tmp_path / "cache"), nepochs=1, max_steps_per_epoch=1, seq_len=4, batch_size=1,
                       val_seq_len=32, num_workers=0)
    table = rounds.run_rounds(rounds.DistillPlan(members=1, rounds=1, annotations_dir=str(tmp_path / "ann")), base,
                              progress=False)
    assert list(table["method"]) == ["teacher_exp_0", "ensemble", "student_round_1_exp_0", "ensemble"]
    assert "EXPR_f1_Other" in table.columns
    ann = tmp_path / "ann" / "round_0"
    manifest = json.loads((ann / "manifest.json").read_text())
    assert manifest["num_expr_classes"] == 8
    frames = pd.read_parquet(next((ann / "frames").glob("*.parquet")))
    assert "m0.EXPR.7" in frames.columns and "m0.EXPR.8" not in frames.columns
    student = load_checkpoint(tmp_path / "ck" / "student_round_1_exp_0" / "net_epoch_1_student_round_1_exp_0.pth")
    assert student.config.num_expr_classes == 8
    pictures = write_annotation_pictures(ann, tmp_path / "vis")
    assert [p.name for p in pictures] == ["au_frequency.png", "task_affinity.png"] and all(p.stat().st_size for p in pictures)


def test_index_command_prints_the_release_and_draws_its_labels(release_root, tmp_path, capsys):
    from emenet.cli import main
    root = release_root("mtl")
    assert main(["index", "--data_root", str(root), "--cache_dir", str(tmp_path / "cache"), "--vis", str(tmp_path / "vis")]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[:out.rindex("}") + 1])
    assert (summary["release"], summary["num_expr_classes"]) == ("mtl", 8)
    assert (tmp_path / "vis" / "au_frequency.png").stat().st_size and (tmp_path / "vis" / "task_affinity.png").is_file()
    assert main(["index", "--data_root", str(tmp_path / "nothing")]) == 2
    assert "root directory not found" in capsys.readouterr().err
