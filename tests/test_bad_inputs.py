"""Bad inputs and failing disks, as a user meets them: every case exits 2 with one `error:` line
that names the problem, no traceback, and leaves no temporary or partial output behind.

The entry points run in-process (`main(argv)` with capsys): much faster than subprocesses.
Disk failures are simulated where the file system itself cannot be made to fail (see
tests/failure_helpers.py); where this process may mount a small tmpfs (root on Linux), the
last tests also fill a real one and write into a real read-only one.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from failure_helpers import (EACCES, ENOSPC, EROFS, World, fail_writes_under, leftovers,
                             make_unreadable)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(failure_world) -> World:
    return failure_world


def _emenet(argv: list[str]) -> int:
    from emenet.cli import main
    return main(argv)


def _image(argv: list[str]) -> int:
    from emenet.cli import Script
    return Script("image", "inference_one_image.py").main(argv)


def _demo(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "Demo" / "Demo_Visual_Model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


ENTRY = {"emenet": _emenet, "image": _image, "demo": _demo}


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _predict_image(w: World, out: Path, image: str | Path | None = None, model: str | Path | None = None) -> list[str]:
    return ["--checkpoint", str(model or w.checkpoint), "--image", str(image or w.crop), "--output_dir", str(out)]


def _predict_video(w: World, out: Path, video: str | Path | None = None, model: str | Path | None = None) -> list[str]:
    return ["predict", str(video or w.video), "--checkpoint", str(model or w.checkpoint), "--output_dir", str(out),
            "--no_progress", "--backend", "eager"]


def _validate(w: World, out: Path, root: str | Path | None = None, model: str | Path | None = None) -> list[str]:
    return ["validate", "--checkpoint", str(model or w.checkpoint), "--data_root", str(root or w.data),
            "--cache_dir", str(out / "cache")]


def _train(w: World, out: Path, root: str | Path | None = None, ckpts: str | Path | None = None) -> list[str]:
    return ["train", "--data_root", str(root or w.data), "--checkpoints_dir", str(ckpts or out / "checkpoints"),
            "--loggings_dir", str(out / "logs"), "--name", "run", "--seq_len", "4", "--batch_size", "1",
            "--max_steps_per_epoch", "1", "--nepochs", "1", "--max_val_videos", "1", "--val_seq_len", "16",
            "--cache_dir", str(out / "cache")]


def _copy_data(w: World, out: Path, drop: str | None = None) -> Path:
    import shutil
    root = out / "data"
    shutil.copytree(w.data, root, ignore=shutil.ignore_patterns(".emenet_cache"))
    if drop:
        shutil.rmtree(root / drop)
    return root


def _broken_annotation(w: World, out: Path) -> Path:
    root = _copy_data(w, out)
    path = sorted((root / "annotations" / "EXPR_Set").rglob("*.txt"))[0]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + ["happy"] + lines[4:]) + "\n")
    return root


def _broken_crop(w: World, out: Path, split: str) -> Path:
    """A copy of the data whose crops of a `split` video are truncated JPEGs (from the third on)."""
    root = _copy_data(w, out)
    ann = sorted((root / "annotations" / "EXPR_Set" / split).glob("*.txt"))[0]
    for crop in sorted((root / "cropped_aligned" / ann.stem).glob("*.jpg"))[2:]:
        crop.write_bytes(crop.read_bytes()[:300])
    return root


def _resume_with_optimizer_file(w: World, out: Path, content: bytes) -> list[str]:
    """A run folder with epoch 1's network and an optimizer state holding `content`; resume it."""
    import shutil
    run = out / "checkpoints" / "run"
    run.mkdir(parents=True)
    shutil.copy(w.checkpoint, run / "net_epoch_1_run.pth")
    (run / "opt_epoch_1_OPT.pth").write_bytes(content)
    return _train(w, out) + ["--load_epoch", "-1", "--nepochs", "2"]


def _ensemble(w: World, out: Path, *more: str, command: str = "validate-ensemble") -> list[str]:
    """`command` (validate-ensemble, conformal) of one member, the world's checkpoint in the run layout under `out`."""
    run = out / "ck" / "m0"
    run.mkdir(parents=True)
    (run / "net_epoch_1_m0.pth").symlink_to(w.checkpoint)
    return [command, "--data_root", str(w.data), "--names", "m0", "--load_epochs", "1",
            "--checkpoints_dir", str(out / "ck"), "--cache_dir", str(out / "cache"), "--no_progress", *more]


def _test_ensemble(w: World, out: Path, *more: str) -> list[str]:
    return ["test-ensemble", "--checkpoint", str(w.checkpoint), "--test_set_file", str(out / "none.parquet"),
            "--save_dir", str(out / "o"), "--no_progress", *more]


def _distill(w: World, out: Path, *more: str) -> list[str]:
    """One teacher, no students, trained as briefly as `train` above."""
    return ["distill", "--members", "1", "--rounds", "0", "--annotations_dir", str(out / "ann"),
            *_train(w, out)[1:], *more]


def _existing_pictures(out: Path) -> Path:
    (out / "vis").mkdir()
    (out / "vis" / "task_affinity.png").write_bytes(b"an earlier picture")
    return out / "vis"


# (id, entry, argv(world, tmp_path), expected words in the error line)
CASES = [
    # --- checkpoints -------------------------------------------------------------------
    ("ckpt-missing", "image", lambda w, t: _predict_image(w, t / "o", model=t / "nope.pth"), "nope.pth: checkpoint not found"),
    ("ckpt-empty", "image", lambda w, t: _predict_image(w, t / "o", model=w.file("empty.pth")), "empty (0 bytes)"),
    ("ckpt-garbage", "image", lambda w, t: _predict_image(w, t / "o", model=w.file("garbage.pth")), "not a torch.save file"),
    ("ckpt-truncated", "image", lambda w, t: _predict_image(w, t / "o", model=w.file("truncated.pth")), "truncated or corrupt"),
    ("ckpt-folder", "image", lambda w, t: _predict_image(w, t / "o", model=w.file("folder.pth")), "is a folder, not a checkpoint"),
    ("ckpt-malicious", "emenet", lambda w, t: _predict_video(w, t / "o", model=w.file("malicious.pth")),
     "refused to unpickle the Python object posix.system"),
    ("ckpt-foreign-object", "emenet", lambda w, t: _validate(w, t, model=w.file("foreign_object.pth")),
     "refused to unpickle the Python object argparse.Namespace"),
    ("ckpt-no-state-dict", "image", lambda w, t: _predict_image(w, t / "o", model=w.file("no_state_dict.pth")),
     "no 'state_dict' entry"),
    ("ckpt-no-decoder", "image", lambda w, t: _predict_image(w, t / "o", model=w.file("no_decoder.pth")),
     "no_decoder.pth: state dict lacks tmodels.1.decoder.weight"),
    ("ckpt-wrong-shape", "image", lambda w, t: _predict_image(w, t / "o", model=w.file("wrong_shape.pth")),
     "shapes do not match"),
    ("ckpt-demo-empty", "demo", lambda w, t: ["--checkpoint", str(w.file("empty.pth")), "--source", str(w.video),
                                              "--headless", "--save_file", str(t / "o.avi")], "empty (0 bytes)"),
    ("resume-optimizer-empty", "emenet", lambda w, t: _resume_with_optimizer_file(w, t, b""),
     "opt_epoch_1_OPT.pth: optimizer state file is empty"),
    ("resume-optimizer-garbage", "emenet", lambda w, t: _resume_with_optimizer_file(w, t, b"PK\x03\x04 cut short"),
     "opt_epoch_1_OPT.pth: not a readable optimizer state: truncated or corrupt"),
    # --- images ------------------------------------------------------------------------
    ("image-missing", "image", lambda w, t: _predict_image(w, t / "o", image=t / "nope.jpg"), "nope.jpg: image not found"),
    ("image-folder", "image", lambda w, t: _predict_image(w, t / "o", image=w.file("folder.jpg")), "is a folder, not an image"),
    ("image-empty", "image", lambda w, t: _predict_image(w, t / "o", image=w.file("empty.jpg")), "empty file (0 bytes)"),
    ("image-garbage", "image", lambda w, t: _predict_image(w, t / "o", image=w.file("garbage.jpg")), "cannot read image"),
    ("image-truncated-jpeg", "image", lambda w, t: _predict_image(w, t / "o", image=w.file("truncated.jpg")), "truncated JPEG"),
    ("image-truncated-png", "image", lambda w, t: _predict_image(w, t / "o", image=w.file("truncated.png")), "truncated PNG"),
    ("image-no-face", "image", lambda w, t: _predict_image(w, t / "o", image=w.file("wall.png")), "no face found"),
    # --- videos ------------------------------------------------------------------------
    ("video-missing", "emenet", lambda w, t: _predict_video(w, t / "o", video=t / "nope.mp4"), "nope.mp4: video not found"),
    ("video-empty", "emenet", lambda w, t: _predict_video(w, t / "o", video=w.file("empty.mp4")), "empty.mp4"),
    ("video-garbage", "emenet", lambda w, t: _predict_video(w, t / "o", video=w.file("garbage.mp4")), "cannot be decoded"),
    ("video-truncated", "emenet", lambda w, t: _predict_video(w, t / "o", video=w.file("truncated.mp4")), "truncated.mp4"),
    ("video-folder-without-videos", "emenet", lambda w, t: _predict_video(w, t / "o", video=w.file("no_videos")),
     "no video files"),
    ("video-glob-matches-nothing", "emenet", lambda w, t: _predict_video(w, t / "o", video=f"{t}/*.mkv"),
     "matches no video file"),
    ("demo-source-missing", "demo", lambda w, t: ["--checkpoint", str(w.checkpoint), "--source", str(t / "nope.mp4"),
                                                  "--headless", "--save_file", str(t / "o.avi")], "nope.mp4"),
    # --- datasets ----------------------------------------------------------------------
    ("data-missing", "emenet", lambda w, t: _validate(w, t, root=t / "nowhere"), "root directory not found"),
    ("data-no-annotations", "emenet", lambda w, t: _validate(w, t, root=_copy_data(w, t, "annotations")), "no annotation files found"),
    ("data-no-crops", "emenet", lambda w, t: _train(w, t, root=_copy_data(w, t, "cropped_aligned")), "no cropped_aligned/"),
    ("data-malformed-annotation", "emenet", lambda w, t: _validate(w, t, root=_broken_annotation(w, t)), "line"),
    ("data-truncated-crop-in-loader-worker", "emenet",
     lambda w, t: _validate(w, t, root=_broken_crop(w, t, "Validation_Set")) + ["--num_workers", "1"], "truncated JPEG"),
    ("data-truncated-crop-in-training", "emenet", lambda w, t: _train(w, t, root=_broken_crop(w, t, "Train_Set")),
     "truncated JPEG"),
    ("synth-out-under-a-file", "emenet", lambda w, t: ["synth", "--out", str(w.file("a_file") / "x"), "--num_videos", "1"],
     "a_file"),
    # --- output locations --------------------------------------------------------------
    ("validate-checkpoint-and-name", "emenet", lambda w, t: _validate(w, t) + ["--name", "run", "--load_epoch", "1"],
     "give --checkpoint PATH or --name with --load_epoch, not both"),
    ("validate-out-exists", "emenet", lambda w, t: _validate(w, t) + ["--out", str(w.file("a_file"))],
     "already exists; pass --overwrite"),
    ("validate-out-is-folder", "emenet", lambda w, t: _validate(w, t) + ["--out", str(t)], "is a folder"),
    ("demo-save-file-unsupported-format", "demo", lambda w, t: ["--checkpoint", str(w.checkpoint), "--source", str(w.video),
                                                    "--headless", "--save_file", str(w.file("a_file"))],
     "unsupported recording format"),
    ("image-output-dir-is-file", "image", lambda w, t: _predict_image(w, w.file("a_file")), "is a file, not a folder"),
    ("video-output-dir-is-file", "emenet", lambda w, t: _predict_video(w, w.file("a_file")), "is a file, not a folder"),
    ("train-checkpoints-dir-is-file", "emenet", lambda w, t: _train(w, t, ckpts=w.file("a_file")), "is a file, not a folder"),
    # refused before the work, not after it (the world's one validation video would fail the work itself)
    ("validate-ensemble-out-is-file", "emenet", lambda w, t: _ensemble(w, t, "--out", str(w.file("a_file"))),
     "a_file: is a file, not a folder"),
    ("test-set-out-exists", "emenet", lambda w, t: ["test-set", "--data_dir", str(w.data), "--out", str(w.file("a_file")),
                                                    "--no_progress"], "already exists; pass --overwrite"),
    ("model-stats-json-exists", "emenet", lambda w, t: ["model-stats", "--json", str(w.file("a_file"))],
     "already exists; pass --overwrite"),
    ("test-ensemble-ground-truth-missing", "emenet", lambda w, t: _test_ensemble(w, t, "--ground_truth_dir", str(t / "gt")),
     "gt: ground truth folder not found"),
    # option values checked before the work, not met as a traceback inside it
    ("test-ensemble-chunk-size-0", "emenet", lambda w, t: _test_ensemble(w, t, "--chunk_size", "0"),
     "--chunk_size must be at least 1, got 0"),
    ("validate-ensemble-max-videos-negative", "emenet", lambda w, t: _ensemble(w, t, "--max_videos", "-1", "--out",
                                                                               str(t / "o")),
     "--max_videos must be at least 1"),  # a slice [:-1] had dropped the last video
    ("conformal-chunk-0", "emenet", lambda w, t: _ensemble(w, t, "--chunk", "0", "--out", str(t / "o" / "c.json"),
                                                           command="conformal"), "--chunk must be >= 1, got 0"),
    ("distill-annotations-dir-is-file", "emenet", lambda w, t: _distill(w, t, "--annotations_dir", str(w.file("a_file"))),
     "a_file: is a file, not a folder"),
    ("distill-shards-0", "emenet", lambda w, t: _distill(w, t, "--shards", "0"), "--shards must be at least 1, got 0"),
    ("index-vis-exists", "emenet", lambda w, t: ["index", "--data_root", str(w.data), "--cache_dir", str(t / "cache"),
                                                 "--vis", str(_existing_pictures(t))], "already exists; pass --overwrite"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(world, tmp_path, capsys, case):
    name, entry, make_argv, expected = case
    argv = make_argv(world, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in world.root.rglob("*") if p.is_file()}
    assert ENTRY[entry](argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expected in line, line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing half-made
    assert not leftovers(world.root) and not leftovers(tmp_path)
    assert not (world.root / "PWNED").exists()  # nothing in a file ran
    assert {p: p.stat().st_mtime_ns for p in before if p.exists()} == before  # nothing replaced


@pytest.mark.parametrize("what", ["image", "checkpoint"])
def test_unreadable_file_says_permission_denied(world, tmp_path, capsys, monkeypatch, what):
    import shutil
    target = tmp_path / ("photo.jpg" if what == "image" else "model.pth")
    shutil.copy(world.crop if what == "image" else world.checkpoint, target)
    make_unreadable(monkeypatch, target)
    argv = _predict_image(world, tmp_path / "o", **{"image" if what == "image" else "model": target})
    assert _image(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(target) in line and "permission denied" in line, line


def test_demo_refuses_to_replace_a_recording(world, tmp_path, capsys):
    existing = tmp_path / "old.avi"
    existing.write_bytes(b"an earlier recording")
    argv = ["--checkpoint", str(world.checkpoint), "--source", str(world.video), "--headless",
            "--save_file", str(existing), "--max_frames", "2"]
    assert _demo(argv) == 2
    assert "old.avi already exists; pass --overwrite" in one_error_line(capsys.readouterr().err)
    assert existing.read_bytes() == b"an earlier recording"
    assert _demo(argv + ["--overwrite"]) == 0
    assert existing.stat().st_size > 1000 and not leftovers(tmp_path)


# --- failing disks: read-only, permission denied, full; simulated -------------------------

DISK = [
    ("read-only", EROFS, "open", "read-only file system"),
    ("permission", EACCES, "open", "permission denied"),
    ("full", ENOSPC, "flush", "no space left on the device"),
]
WRITERS = {
    "image": lambda w, out: ("image", _predict_image(w, out)),
    "video": lambda w, out: ("emenet", _predict_video(w, out)),
    "batch": lambda w, out: ("emenet", _predict_video(w, out, video=w.root / "batch")),
    "validate": lambda w, out: ("emenet", _validate(w, out.parent) + ["--out", str(out / "val.json")]),
    "train": lambda w, out: ("emenet", _train(w, out.parent, ckpts=out)),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("disk", DISK, ids=[d[0] for d in DISK])
def test_failing_disk_gives_one_line_and_no_partial_files(world, tmp_path, capsys, monkeypatch, disk, writer):
    _, code, at, expected = disk
    out = tmp_path / "out"
    if at == "flush":
        out.mkdir()
    fail_writes_under(monkeypatch, out, code, at)
    entry, argv = WRITERS[writer](world, out)
    assert ENTRY[entry](argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expected in line and str(out) in line, line  # names the file or folder it could not write
    assert not leftovers(tmp_path)
    written = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else []
    assert all(p.name in ("config.yaml",) for p in written), written  # no result file, whole or partial


# --- the error path itself ------------------------------------------------------------------

def test_debug_flag_and_environment_show_the_traceback(world, tmp_path, capsys, monkeypatch):
    argv = _predict_image(world, tmp_path / "o", model=world.file("empty.pth"))
    assert _image(argv + ["--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")
    monkeypatch.setenv("EMENET_DEBUG", "1")
    assert _emenet(["validate", "--checkpoint", str(world.file("empty.pth")), "--data_root", str(world.data)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback():
    from emenet.cli.runner import run_command

    def buggy(args):
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        run_command(buggy, argparse.Namespace())


def test_synth_with_one_video(tmp_path):
    from emenet.data.synth import generate_synthetic_dataset  # `emenet synth --num_videos 1`, shorter
    summary = generate_synthetic_dataset(tmp_path / "s", num_videos=1, min_frames=30, max_frames=30,
                                         num_test_videos=0, progress=False, num_workers=1)
    assert (summary.out_dir / "synth_manifest.json").is_file()
    assert len(list((summary.out_dir / "videos").rglob("*.mp4"))) == 1


# --- real file systems: a tiny tmpfs, full and read-only (root on Linux only) ------------------

@pytest.fixture()
def tmpfs(tmp_path):
    """Mount points of a 48 KiB tmpfs and a read-only one; skipped where mounting is not allowed."""
    mounts = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if run.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {run.stderr.decode().strip()}")
        mounts.append(point)
        return point

    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], capture_output=True)


def test_real_full_and_read_only_file_systems(world, tmpfs, capsys):
    full, read_only = tmpfs("full", "size=48k"), tmpfs("ro", "ro,size=48k")
    assert _emenet(_predict_video(world, full / "o")) == 2
    assert "no space left on the device" in one_error_line(capsys.readouterr().err)
    assert not leftovers(full) and not [p for p in full.rglob("*") if p.is_file()]
    assert _image(_predict_image(world, read_only / "o")) == 2
    assert "read-only file system" in one_error_line(capsys.readouterr().err)


# --- the pieces: loader-worker errors, temporaries of dead and live processes ---------------------

class _Failing:
    def __init__(self, exc: Exception):
        self.exc = exc

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        raise self.exc


@pytest.mark.parametrize("exc, expected", [
    (None, "a.jpg: truncated JPEG (the file ends before the image data does)"),
    (PermissionError(EACCES, "Permission denied", "/data/b.jpg"), "/data/b.jpg: permission denied"),
    (OSError(ENOSPC, "No space left on device"), "no space left on the device; free some space or write elsewhere"),
])
def test_errors_in_dataloader_workers_read_as_in_the_main_process(exc, expected):
    from torch.utils.data import DataLoader

    from emenet.errors import EMENetInputError
    from emenet.failures import failure_message
    exc = exc or EMENetInputError("a.jpg: truncated JPEG (the file ends before the image data does)")
    with pytest.raises(Exception) as caught:
        next(iter(DataLoader(_Failing(exc), num_workers=1)))
    assert "DataLoader worker" in str(caught.value)  # torch's wrapper, with the worker's traceback
    assert failure_message(caught.value) == expected


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    import sys

    from emenet.io_utils import atomic_path, remove_stale_temporaries_in
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # exited: its pid names no process (reuse within this test is negligible)
    out = tmp_path / "metrics.csv"
    stale = [tmp_path / f".metrics.csv.emenet-{dead_pid}-0a1b.tmp", tmp_path / f".run.avi.emenet-{dead_pid}-ff.tmp.avi",
             tmp_path / ".metrics.csv.k2j4abcd.tmp"]  # the last: an earlier version's name, without a pid
    live = tmp_path / f".metrics.csv.emenet-{os.getppid()}-0c.tmp"  # our parent is alive: its write goes on
    others = [tmp_path / ".hidden.tmp", tmp_path / "metrics.csv.tmp"]
    for p in stale + [live] + others:
        p.write_text("partial")
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f".metrics.csv.emenet-{os.getpid()}-")
        tmp.write_text("a,b\n")
    assert out.read_text() == "a,b\n"
    assert not stale[0].exists() and not stale[2].exists() and stale[1].exists()  # the same name only
    assert remove_stale_temporaries_in(tmp_path) == [stale[1]]
    assert live.exists() and all(p.exists() for p in others)
