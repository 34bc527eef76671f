"""Conformal sets and intervals of one frame as text: for the terminal and for pictures."""
from __future__ import annotations

from typing import Any

import numpy as np

from emenet.tasks import AU_NAMES, VA_NAMES


def conformal_lines(row: Any, coverage: float) -> list[str]:
    """Short lines: the expression set, decided and undecided AUs, the VA intervals, abstentions.

    `row`: one row (a mapping) of emenet.conformal.apply's columns.
    """
    lines = [f"conformal sets at {100 * coverage:g}% coverage:"]
    if "EXPR_set" in row:
        names = str(row["EXPR_set"]).replace("|", ", ")
        lines.append(f"  expression in {{{names}}}" + ("  (abstain)" if row.get("abstain_EXPR") else ""))
    au_cols = [n for n in AU_NAMES if f"{n}_set" in row]
    if au_cols:
        active = [n for n in au_cols if row[f"{n}_set"] == "1"]
        undecided = [n for n in au_cols if row[f"{n}_set"] in ("0|1", "")]
        lines.append(f"  AUs active: {', '.join(active) or 'none'}; undecided: {', '.join(undecided) or 'none'}"
                     + ("  (abstain)" if row.get("abstain_AU") else ""))
    for name in VA_NAMES:
        if f"{name}_lo" in row and np.isfinite(row[f"{name}_lo"]):
            lines.append(f"  {name} in [{row[f'{name}_lo']:+.2f}, {row[f'{name}_hi']:+.2f}]"
                         + ("  (abstain)" if row.get("abstain_VA") and name == VA_NAMES[-1] else ""))
    return lines


def format_conformal_frame(row: Any, settings: Any) -> str:
    """The lines above for a frame, with the calibration file named."""
    return "\n".join(conformal_lines(row, settings.coverage) + [f"  (calibration: {settings.source})"])
