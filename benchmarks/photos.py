"""Phone-size test photos, made at run time from the COCO images (never committed): 4032x3024 (12 MP)
bicubic upscales with +-12 uniform noise, saved as quality-92 JPEGs of about 4 MB; every fourth one is
stored rotated with EXIF orientation 6, as phones do. Cached in an ignored folder, so later runs reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

LONG_SIDE, SHORT_SIDE = 4032, 3024
NOISE = 12
QUALITY = 92
EXIF_ORIENTATION = 0x0112


def phone_photos(sources: Sequence[Path], cache_dir: Path) -> list[Path]:
    """One photo per source image (created once, then read from `cache_dir`)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for n, source in enumerate(sources):
        rotated = n % 4 == 3
        target = cache_dir / f"{source.stem}-12mp-n{NOISE}-q{QUALITY}{'-exif6' if rotated else ''}.jpg"
        if not target.is_file():
            _make(source, target, rotated, seed=n)
        made.append(target)
    return made


def _make(source: Path, target: Path, rotated: bool, seed: int) -> None:
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    size = (LONG_SIDE, SHORT_SIDE) if image.width >= image.height else (SHORT_SIDE, LONG_SIDE)
    pixels = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    pixels += np.random.default_rng(seed).integers(-NOISE, NOISE + 1, pixels.shape, dtype=np.int16)
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    if rotated:  # stored turned 90 degrees counter-clockwise; orientation 6 tells viewers to turn it back
        photo = photo.transpose(Image.Transpose.ROTATE_90)
        exif[EXIF_ORIENTATION] = 6
    partial = target.with_suffix(".part")
    photo.save(partial, "JPEG", quality=QUALITY, exif=exif)
    partial.replace(target)  # atomic: an interrupted run never leaves half a photo in the cache
