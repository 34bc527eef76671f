"""Shared fixtures. `shared_dir` is the one way tests reach ../shared (override: EMENET_SHARED)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("EMENET_SHARED", REPO_ROOT.parent / "shared"))
    if not (path / "reference" / "README.md").is_file():
        if os.environ.get("EMENET_REQUIRE_SHARED"):
            pytest.fail(f"shared reference files not found at {path} (EMENET_REQUIRE_SHARED is set)")
        pytest.skip(f"shared reference files not found at {path}; set EMENET_SHARED to run these tests")
    return path


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def require_extra():
    """`require_extra("nemo.collections.asr", "nemo")` imports an optional extra's module, or skips
    naming the extra; with EMENET_REQUIRE_EXTRAS set (CI installs every extra) it fails instead."""
    import importlib

    def _require(module: str, extra: str):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            if os.environ.get("EMENET_REQUIRE_EXTRAS"):
                pytest.fail(f"the {extra} extra is required (EMENET_REQUIRE_EXTRAS is set) but {module} "
                            f"does not import: {exc}")
            pytest.skip(f"the {extra} extra is not installed (pip install .[{extra}]): {exc}")
    return _require


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread: the suite shares two cores, where more threads only wait on each other."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def failure_world(tmp_path_factory):
    """A tiny dataset, checkpoint and video and a set of broken files (tests/failure_helpers.py),
    shared by the bad-input and fault tests; tests must not write into it."""
    from failure_helpers import build_world
    return build_world(tmp_path_factory.mktemp("failure_world"))


_CACHE_HOME = pytest.StashKey[tuple]()  # (the user's XDG_CACHE_HOME or None, the session's folder)


def pytest_configure(config) -> None:
    """Caches EMENet keeps between runs (exported ONNX graphs, dataset indexes) go to a folder of
    this test session, never to the user's ~/.cache. Set before collection, so that test modules
    that copy os.environ for their subprocesses at import time copy it too."""
    folder = tempfile.mkdtemp(prefix="emenet-tests-cache-")
    config.stash[_CACHE_HOME] = (os.environ.get("XDG_CACHE_HOME"), folder)
    os.environ["XDG_CACHE_HOME"] = folder


def pytest_unconfigure(config) -> None:
    saved, folder = config.stash[_CACHE_HOME]
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved
    shutil.rmtree(folder, ignore_errors=True)
