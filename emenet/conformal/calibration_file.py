"""The saved conformal calibration of an ensemble: a small JSON beside its checkpoints.

It names the member files by SHA-256 (a calibration is only valid for the exact weights it was
fitted with), and records the set method, the abstain rule, which videos it was fitted on and
which it was measured on, and per target coverage the thresholds and what was measured.

    conformal_<key>.json   key: the first 12 hex digits of the SHA-256 of the sorted member hashes

    >>> cal = load_calibration("checkpoints/conformal_3f2a9c0d1b7e.json")  # doctest: +SKIP
    >>> cal.level(0.9)["thresholds"]["EXPR"]  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emenet.conformal.regions import AbstainRule, SetMethod
from emenet.errors import EMENetInputError
from emenet.io_utils import write_json

FORMAT = "emenet-conformal-1"


def ensemble_key(hashes: Sequence[str]) -> str:
    """A short name for a set of member files, independent of their order."""
    return hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()[:12]


def default_calibration_path(checkpoints_dir: str | os.PathLike, hashes: Sequence[str]) -> Path:
    return Path(checkpoints_dir) / f"conformal_{ensemble_key(hashes)}.json"


def coverage_key(coverage: float) -> str:
    return f"{float(coverage):g}"


@dataclass
class ConformalCalibration:
    """See the module docstring; `levels` maps coverage_key(c) -> {"thresholds", "measured"}."""

    members: list[dict[str, Any]]  # name, epoch, file (name only), sha256
    method: SetMethod
    abstain: AbstainRule
    split: dict[str, Any]  # data_root, split, seed, fraction, calibration_videos, evaluation_videos
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def hashes(self) -> list[str]:
        return [m["sha256"] for m in self.members]

    @property
    def coverages(self) -> list[float]:
        return sorted(float(k) for k in self.levels)

    def level(self, coverage: float | None = None) -> dict[str, Any]:
        """The thresholds and measurements of `coverage` (None: the only one, or 0.9 if present)."""
        if coverage is None:
            if len(self.levels) == 1:
                return next(iter(self.levels.values()))
            coverage = 0.9
        key = coverage_key(coverage)
        if key not in self.levels:
            raise EMENetInputError(f"no conformal calibration for coverage {coverage:g}; this file has "
                                   f"{', '.join(coverage_key(c) for c in self.coverages)} (fit it with "
                                   f"`emenet conformal ... --coverage {coverage:g}`)")
        return self.levels[key]

    def check_members(self, hashes: Sequence[str], source: str) -> None:
        """Refuse a calibration fitted for other weights than the predictor's."""
        if sorted(hashes) != sorted(self.hashes):
            files = ", ".join(m["file"] for m in self.members)
            raise EMENetInputError(f"{source}: calibrated for other checkpoints ({files}, by SHA-256) than the ones "
                                   f"given; fit it for these with `emenet conformal`")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "members": self.members,
                "method": {"expr_method": self.method.expr_method, "raps_lambda": self.method.raps_lambda,
                           "raps_k": self.method.raps_k},
                "abstain": self.abstain.to_dict(), "split": self.split, "levels": self.levels}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "conformal calibration") -> "ConformalCalibration":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise EMENetInputError(f"{source}: not an EMENet conformal calibration (expected format {FORMAT})")
        try:
            return cls([dict(m) for m in d["members"]], SetMethod(**d["method"]), AbstainRule(**d["abstain"]),
                       dict(d["split"]), {str(k): v for k, v in d["levels"].items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise EMENetInputError(f"{source}: malformed conformal calibration ({exc})") from None

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        return write_json(path, self.to_dict(), overwrite)


def load_calibration(path: str | os.PathLike) -> ConformalCalibration:
    """Read a calibration file; a missing or malformed one raises EMENetInputError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EMENetInputError(f"{path}: conformal calibration file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EMENetInputError(f"{path}: cannot read the conformal calibration ({exc})") from None
    return ConformalCalibration.from_dict(data, str(path))


def find_calibration(checkpoints: Sequence[str | os.PathLike], hashes: Sequence[str]) -> Path:
    """The saved calibration of these member files: conformal_<key>.json in the checkpoints'
    folders or the folders above them (where `emenet conformal` writes it by default)."""
    name = f"conformal_{ensemble_key(hashes)}.json"
    places = []
    for c in checkpoints:
        for folder in (Path(c).parent, Path(c).parent.parent):
            if folder not in places:
                places.append(folder)
    for folder in places:
        if (folder / name).is_file():
            return folder / name
    raise EMENetInputError(f"no conformal calibration {name} for these checkpoints in {', '.join(map(str, places))}; "
                           f"fit one with `emenet conformal` or pass --conformal FILE")
