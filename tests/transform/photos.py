"""Realistic inputs made at run time from the COCO images in ../shared (never committed): 12 MP phone
photos of about 4 MB (bicubic upscale plus sensor-like noise), some stored sideways with an EXIF
orientation, and a PNG screenshot-sized file over 10 MB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from benchmarks import photos  # the one generator, shared with the benchmarks

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


def _display_size(name: str, long_side: int) -> tuple[int, int]:
    with Image.open(COCO_IMAGES / name) as source:
        scale = long_side / max(source.size)
        return round(source.width * scale), round(source.height * scale)


def phone_jpeg(name: str, *, rotated: bool = False, seed: int = 0) -> Photo:
    """About 12 MP and 4 MB. `rotated`: stored sideways with EXIF orientation 6, as phones do."""
    body = photos.phone_jpeg(COCO_IMAGES / name, ROTATED_90_CW if rotated else 1, seed=seed)
    return Photo(body, _display_size(name, photos.LONG_SIDE))


def large_png(name: str, *, seed: int = 0) -> Photo:
    """Over 10 MB, under the 25 MB images mode carries."""
    return Photo(photos.large_png(COCO_IMAGES / name, 3000, seed), _display_size(name, 3000))
