"""Realistic inputs made at run time from the COCO images in ../shared (never committed): 12 MP phone
photos of about 4 MB (bicubic upscale plus sensor-like noise), some stored sideways with an EXIF
orientation, and a PNG screenshot-sized file over 10 MB."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

COCO_IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco-val-mini" / "images"
# COCO images where a large person is clearly visible (checked against person_keypoints.json).
WITH_PEOPLE = ("000000368212.jpg", "000000343803.jpg", "000000109313.jpg")
ORIENTATION = 0x0112
ROTATED_90_CW = 6  # EXIF: the stored pixels must be turned 90 degrees clockwise for display


@dataclass(frozen=True)
class Photo:
    body: bytes
    display_size: tuple[int, int]  # (width, height) after EXIF orientation
    has_people: bool = True


def _upscaled(name: str, long_side: int, noise: float, seed: int) -> Image.Image:
    source = Image.open(COCO_IMAGES / name).convert("RGB")
    scale = long_side / max(source.size)
    image = source.resize((round(source.width * scale), round(source.height * scale)), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.int16)
    grain = np.random.default_rng(seed).normal(0, noise, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8), "RGB")


def phone_jpeg(name: str, *, rotated: bool = False, seed: int = 0) -> Photo:
    """About 12 MP and 4 MB. `rotated`: stored sideways with EXIF orientation 6, as phones do."""
    image = _upscaled(name, 4032, noise=9.0, seed=seed)
    display = image.size
    exif = Image.Exif()
    if rotated:
        image = image.transpose(Image.Transpose.ROTATE_90)  # stored counter-clockwise; EXIF 6 turns it back
        exif[ORIENTATION] = ROTATED_90_CW
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif)
    return Photo(buffer.getvalue(), display)


def large_png(name: str, *, seed: int = 0) -> Photo:
    """Over 10 MB (noise defeats PNG's compression), under the 25 MB images mode carries."""
    image = _upscaled(name, 3000, noise=4.0, seed=seed)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return Photo(buffer.getvalue(), image.size)
