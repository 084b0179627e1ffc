"""Realistic inputs for the tests, made at run time from the COCO images in ../shared (never committed).
The photo generator itself is shared with the benchmarks (`benchmarks/photos.py`)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.photos import phone_jpeg, upscaled
from tests.conftest import COCO_DIR

__all__ = ["coco_paths", "phone_jpeg", "upscaled"]


def coco_paths(count: int | None = None) -> list[Path]:
    paths = sorted((COCO_DIR / "images").glob("*.jpg"))
    return paths if count is None else paths[:count]
