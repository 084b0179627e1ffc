"""Phone-size test photos, made at run time from the COCO images (never committed): the one generator
for the benchmarks, the tests and the measuring scripts.

A photo is the COCO image bicubic-upscaled to 4032 px on its longer side (12 MP at 4:3) with +-12 uniform
noise, saved as a quality-92 JPEG of about 4 MB. `orientation` stores it turned the way a phone does,
with the EXIF orientation that tells a viewer to turn it back, so it always *displays* as the upscale.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

LONG_SIDE = 4032
NOISE = 12
QUALITY = 92
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that stores a display-upright image (the inverse of what a viewer does).
_STORE = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def upscaled(source: Path, longer_side: int = LONG_SIDE, seed: int = 0) -> np.ndarray:
    """The image upscaled (bicubic) to `longer_side`, with sensor-like noise: RGB uint8, display-upright."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    ratio = longer_side / max(image.size)
    size = (round(image.width * ratio), round(image.height * ratio))
    pixels = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    pixels += np.random.default_rng(seed).integers(-NOISE, NOISE + 1, pixels.shape, dtype=np.int16)
    photo: np.ndarray = np.clip(pixels, 0, 255).astype(np.uint8)
    return photo


def phone_jpeg(
    source: Path, orientation: int = 1, longer_side: int = LONG_SIDE, quality: int = QUALITY, seed: int = 0
) -> bytes:
    """A phone-style JPEG that displays as `upscaled(source)`, stored with the given EXIF orientation."""
    image = Image.fromarray(upscaled(source, longer_side, seed))
    transpose = _STORE[orientation]
    if transpose is not None:
        image = image.transpose(transpose)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def phone_photos(sources: Sequence[Path], cache_dir: Path) -> list[Path]:
    """One photo per source image, every fourth stored with orientation 6, created once in `cache_dir`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for n, source in enumerate(sources):
        orientation = 6 if n % 4 == 3 else 1
        target = cache_dir / f"{source.stem}-12mp-n{NOISE}-q{QUALITY}{'-exif6' if orientation == 6 else ''}.jpg"
        if not target.is_file():
            partial = target.with_suffix(".part")
            partial.write_bytes(phone_jpeg(source, orientation, seed=n))
            partial.replace(target)  # atomic: an interrupted run never leaves half a photo in the cache
        made.append(target)
    return made


def large_png(source: Path, longer_side: int = 3000, seed: int = 0) -> bytes:
    """A screenshot-sized PNG over 10 MB (the noise defeats PNG's compression)."""
    buffer = io.BytesIO()
    Image.fromarray(upscaled(source, longer_side, seed)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
