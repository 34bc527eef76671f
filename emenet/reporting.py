"""Small helpers for tables people read: markdown from a DataFrame."""
from __future__ import annotations

import math

import pandas as pd


def _cell(value: object, digits: int) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub markdown table of `df` (numbers right-aligned, floats to `digits` places)."""
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    align = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, align, *body])
