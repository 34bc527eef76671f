"""emenet.cli: every script of Training/, Train_Multimodal/ and Demo/ is an `emenet` subcommand with its
tree's defaults, `emenet --help` lists every subcommand, and the shared flags are declared once."""
from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from emenet.cli import COMMANDS, Script, build_parser

REPO = Path(__file__).resolve().parents[1]
TREES = ("Training", "Train_Multimodal", "Demo")
SCRIPTS = sorted(p for tree in TREES for p in (REPO / tree).glob("*.py"))
SHARED_FLAGS = ("--names", "--load_epochs", "--checkpoints_dir", "--overwrite", "--use_cuda", "--cuda", "--backend",
                "--data_root", "--annotations_dir", "--crops_dir")
# every entry point the issue names, as the subcommand that runs it
EXPECTED = {"image", "predict", "test-set", "test-ensemble", "validate-ensemble", "ood", "conformal", "demo",
            "model-stats", "train", "train-student", "distill", "annotate", "synth", "index", "bench",
            "extract-audio", "quickstart", "models", "validate"}


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts() -> dict[str, object]:
    return {f"{p.parent.name}/{p.name}": _load(p) for p in SCRIPTS}


def test_every_script_is_a_subcommand_whose_help_runs(scripts, capsys):
    assert len(scripts) == 18
    for name, module in scripts.items():
        assert isinstance(module.script, Script) and module.script.command in COMMANDS, name
        assert module.main == module.script.main and module.script.prog == name
        with pytest.raises(SystemExit) as done:
            module.main(["--help"])
        assert done.value.code == 0, name
        assert f"usage: {name}" in capsys.readouterr().out, name


def test_the_shell_scripts_run_emenet_distill():
    for tree in ("Training", "Train_Multimodal"):
        text = (REPO / tree / "run_student_rounds.sh").read_text()
        assert re.search(r'exec "\$emenet_bin" distill( --modality audiovisual)? "\$@"', text), tree


def test_emenet_help_lists_every_subcommand():
    assert set(COMMANDS) == EXPECTED
    text = build_parser().format_help().split("positional arguments:")[1]
    listed = set(re.findall(r"^    ([a-z-]+)\s", text, re.M))
    assert listed == EXPECTED


def test_each_tree_keeps_its_defaults_and_the_originals_spellings(scripts):
    def parse(name: str, *argv: str):
        return scripts[name].build_parser().parse_args(list(argv))

    members = ["--data_root", "d", "--names", "t0", "--load_epochs", "1", "--out", "o"]
    assert parse("Training/validate_ensemble.py", *members).window_size is None
    va = parse("Train_Multimodal/validate_ensemble.py", *members)
    assert (va.window_size, va.sr) == (0.63, 16000)
    assert parse("Train_Multimodal/validate_ensemble.py", *members, "--sr", "8000").sr == 8000
    assert not parse("Training/test_ensemble.py").audio and parse("Train_Multimodal/test_ensemble.py").audio
    assert parse("Train_Multimodal/train_teacher.py").script_defaults == {"modality": "audiovisual"}
    assert parse("Training/train_student.py", "--auxillary").auxiliary == ["FA"]
    assert parse("Training/train_teacher.py", "--use_cuda").cuda
    assert parse("Training/inference_one_image.py").image == REPO / "example_image" / "astronaut_112.jpg"
    demo = parse("Demo/Demo_Visual_Model.py", "--use_cuda")
    assert demo.cuda and not parse("Demo/Demo_Visual_Model.py").cuda


def test_use_cuda_selects_the_gpu_on_every_command_with_a_device():
    from emenet.cli.options import device_from_args
    argv = {"image": ["--image", "x"], "ood": ["--data_root", "d", "--names", "t", "--load_epochs", "1", "--out", "o"],
            "validate": ["--data_root", "d"], "annotate": ["--data_root", "d", "--names", "t", "--load_epochs", "1",
                                                           "--out", "o"]}
    for command, args in argv.items():
        parsed = build_parser().parse_args([command, *args, "--use_cuda"])
        assert device_from_args(parsed) == "cuda", command
        assert device_from_args(build_parser().parse_args([command, *args, "--device", "cuda:1"])) == "cuda:1"


# same spelling, another meaning: distill's output folder; bench's optional training data
OTHER_MEANING = {("--annotations_dir", "emenet/cli/training.py"), ("--data_root", "emenet/cli/bench.py")}


def test_shared_flags_are_declared_once():
    """Only emenet/cli/options.py declares the shared flags (the training config makes its own from fields)."""
    declared: dict[str, list[str]] = {flag: [] for flag in SHARED_FLAGS}
    for path in sorted((REPO / "emenet").rglob("*.py")):
        text = path.read_text()
        for flag in SHARED_FLAGS:
            where = path.relative_to(REPO).as_posix()
            if re.search(rf'add_argument\(\s*(f?"[^"]*",\s*)*"{flag}"', text) and (flag, where) not in OTHER_MEANING:
                declared[flag].append(where)
    assert all(paths == ["emenet/cli/options.py"] for paths in declared.values()), declared


def test_docstring_examples():
    import doctest

    import emenet.cli.app
    import emenet.cli.options
    for module in (emenet.cli.app, emenet.cli.options):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_every_num_workers_flag_refuses_a_negative_count():
    """torch's loader refused `--num_workers -1` with a traceback deep inside validate, annotate,
    validate-ensemble and conformal; every command's flag is now checked by the parser (the training
    commands' by their TrainConfig, tests/test_config.py)."""
    parser = build_parser()
    training = {"train", "train-student", "distill"}
    commands = [c for c in COMMANDS if c not in training
                and "--num_workers" in parser._subparsers._group_actions[0].choices[c].format_help()]
    assert {"validate", "annotate", "validate-ensemble", "conformal", "test-ensemble", "test-set",
            "extract-audio"} <= set(commands)
    for command in commands:
        sub = parser._subparsers._group_actions[0].choices[command]
        action = next(a for a in sub._actions if "--num_workers" in a.option_strings)
        with pytest.raises(argparse.ArgumentTypeError, match="must not be negative, got -1"):
            action.type("-1")
        assert action.type("0") == 0 and action.type("3") == 3
