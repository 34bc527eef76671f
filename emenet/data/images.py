"""Reading face crops from disk as uint8 RGB arrays."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emenet.errors import EMENetInputError


JPEG_START, JPEG_SCAN, JPEG_END = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"


def truncation(data: bytes) -> str | None:
    """Why an encoded JPEG or PNG is incomplete, or None.

    OpenCV decodes a truncated JPEG with only a warning, filling the missing part with grey; a
    complete JPEG has an end-of-image marker after its last start-of-scan marker (neither can
    occur inside the compressed data), a complete PNG ends with its IEND chunk.
    """
    if data.startswith(JPEG_START) and (data.rfind(JPEG_SCAN) < 0 or data.rfind(JPEG_END) < data.rfind(JPEG_SCAN)):
        return "truncated JPEG (the file ends before the image data does)"
    if data.startswith(PNG_START) and PNG_END not in data[-16:]:
        return "truncated PNG (no IEND chunk at its end)"
    return None


def decode_image(data: bytes, source: str | os.PathLike) -> np.ndarray:
    """Encoded bytes to (H, W, 3) uint8 BGR, as cv2.imread would (EXIF orientation applied);
    one-line EMENetInputError for empty, truncated or undecodable data."""
    if not data:
        raise EMENetInputError(f"{source}: empty file (0 bytes), not an image")
    reason = truncation(data)
    if reason:
        raise EMENetInputError(f"{source}: {reason}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise EMENetInputError(f"{source}: cannot read image (not a format OpenCV decodes: corrupt, or not an image)")
    return img


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of an image file; one line for a folder, a missing file or a permission problem."""
    path = Path(path)
    if path.is_dir():
        raise EMENetInputError(f"{path}: is a folder, not an image file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EMENetInputError(f"{path}: image not found") from None
    except PermissionError:
        raise EMENetInputError(f"{path}: permission denied (cannot read the image)") from None
    except OSError as exc:
        raise EMENetInputError(f"{path}: cannot read the image ({(exc.strerror or str(exc)).lower()})") from None


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """One image as (H, W, 3) uint8 RGB, resized to (size, size) when given."""
    img = decode_image(read_image_file(path), path)
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
