"""Phone-photo-like test inputs made at run time from the COCO images in ../shared (never committed):
12 MP JPEGs of about 4 MB (upscaled with noise, optionally EXIF-rotated), and large PNGs."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.conftest import COCO_DIR

# EXIF orientation -> the transpose that stores a display-upright image so that a viewer applying the
# orientation shows it upright (the inverse of what the viewer does).
_STORE = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def coco_paths(count: int | None = None) -> list[Path]:
    paths = sorted((COCO_DIR / "images").glob("*.jpg"))
    return paths if count is None else paths[:count]


def upscaled(path: Path, longer_side: int = 4032, seed: int = 0) -> np.ndarray:
    """The COCO image upscaled (cubic) to `longer_side`, with sensor-like noise: RGB uint8."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    ratio = longer_side / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * ratio), round(rgb.shape[0] * ratio))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(seed).normal(0, 6, big.shape).astype(np.int16)
    photo: np.ndarray = np.clip(big.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return photo


def phone_jpeg(path: Path, orientation: int = 1, longer_side: int = 4032, quality: int = 92) -> bytes:
    """A 12 MP phone-style JPEG (about 4 MB) that displays as the upscaled COCO image."""
    image = Image.fromarray(upscaled(path, longer_side))
    transpose = _STORE[orientation]
    if transpose is not None:
        image = image.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()
