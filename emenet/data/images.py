"""Reading face crops from disk as uint8 RGB arrays."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emenet.errors import EMENetInputError


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """One image as (H, W, 3) uint8 RGB, resized to (size, size) when given."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise EMENetInputError(f"{path}: cannot read image (missing, empty or not an image)")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is not None and img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img


def read_crops(paths: Sequence[str | Path], size: int) -> np.ndarray:
    """Crops as (N, 3, size, size) uint8 RGB, channels first (the model's layout)."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = read_rgb(p, size).transpose(2, 0, 1)
    return out
