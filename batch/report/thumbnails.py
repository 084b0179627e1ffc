"""Small JPEG thumbnails as `data:` URIs, made only for the sampled records, fetched concurrently.

Any image Pillow cannot read (a corrupt upload, a decompression bomb, a missing object) simply gets no
thumbnail: the report says so instead of failing.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageOps

from batch.report.sources import InputReader

THUMBNAIL_PX = 240
MAX_PIXELS = 100_000_000  # refuse from the header; the serving container refuses above 80 MP anyway


def thumbnail(data: bytes | None, size: int = THUMBNAIL_PX) -> str | None:
    """A `data:image/jpeg;base64,...` URI of the image fitted into size x size, or None."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    return None
                image.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8 scale, far faster
                small = ImageOps.exif_transpose(image).convert("RGB")  # the annotated JPEGs are upright
                small.thumbnail((size, size))
                buffer = io.BytesIO()
                small.save(buffer, "JPEG", quality=80)
    except Exception:  # Pillow raises many types for bad files; none of them may stop the report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(rels: Iterable[str], read: InputReader | None, *, workers: int = 8) -> dict[str, str | None]:
    """rel -> thumbnail for each rel, reading with `read` (None: no images can be read)."""
    rels = list(rels)
    if read is None:
        return dict.fromkeys(rels)
    reader = read

    def one(rel: str) -> str | None:
        try:
            data = reader(rel)
        except (OSError, KeyError, ValueError):  # a missing or unreadable input: no thumbnail
            return None
        return thumbnail(data)

    with ThreadPoolExecutor(workers, thread_name_prefix="thumbnails") as pool:
        return dict(zip(rels, pool.map(one, rels), strict=True))
