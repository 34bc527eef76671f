"""Which trained members form a round's ensemble.

The original's final ensembles were chosen by validation: it trained at least 10 runs and kept
5, each at its own best epoch. `keep_best` does that selection: the K members with the highest
validation total score (each at its best epoch); `None` keeps every member (EMENet's default).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

M = TypeVar("M")


def keep_best(members: Sequence[M], scores: Sequence[float], keep: int | None) -> list[M]:
    """The `keep` members with the highest scores, in their original order; ties keep the earlier member.

    >>> keep_best(["a", "b", "c", "d"], [0.5, 0.9, 0.7, 0.9], 2)
    ['b', 'd']
    """
    if len(members) != len(scores):
        raise ValueError(f"{len(members)} members but {len(scores)} scores")
    if keep is None or keep >= len(members):
        return list(members)
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    ranked = sorted(range(len(members)), key=lambda i: (-scores[i], i))[:keep]
    return [members[i] for i in sorted(ranked)]
