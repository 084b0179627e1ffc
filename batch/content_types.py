"""Content types the container accepts and produces: lookup tables, and 415/406 for anything else."""

from __future__ import annotations

import posixpath

from batch.errors import NotAcceptable, UnsupportedMediaType

JSON = "application/json"
JPEG = "image/jpeg"
JSON_LINES = "application/jsonlines"

# Image bodies: decoded by sniffing the bytes, so any of these may carry any supported format.
IMAGE_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "image/gif",
    "image/heic",
    "image/heif",
    "image/avif",
    "image/mpo",
    "application/x-image",
)
# Manifest bodies: one S3 reference per line (Batch Transform SplitType=Line).
JSON_LINES_TYPES = (JSON_LINES, "application/x-jsonlines", "application/json-lines", "application/jsonl")
ACCEPT_TYPES = (JSON, JPEG)

# The image formats the container decodes, by file extension: what the S3 trigger submits, the async
# client lists and `pose-batch predict` picks up from folders; anything else is skipped.
IMAGE_EXTENSIONS = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "gif": "image/gif",  # animated: the first frame
    "heic": "image/heic",  # iPhone photos
    "heif": "image/heif",
    "avif": "image/avif",
    "mpo": "image/mpo",  # multi-picture JPEG (cameras): the first picture
}


def image_type_for(name: str) -> str | None:
    """The image content type for a file name or S3 key, by extension; None if it is not an image."""
    extension = posixpath.splitext(name)[1].lower().lstrip(".")
    return IMAGE_EXTENSIONS.get(extension)


def _base(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_image(content_type: str) -> bool:
    base = _base(content_type)
    return base in IMAGE_TYPES or base.startswith("image/")


def is_json_lines(content_type: str) -> bool:
    return _base(content_type) in JSON_LINES_TYPES


def check_request_type(content_type: str | None) -> str:
    """The base content type if supported; 415 naming the supported ones otherwise."""
    if content_type and (is_image(content_type) or is_json_lines(content_type)):
        return _base(content_type)
    supported = ", ".join((*IMAGE_TYPES, "image/*", *JSON_LINES_TYPES))
    raise UnsupportedMediaType(f"unsupported Content-Type {content_type!r}; supported: {supported}")


def negotiate_accept(accept: str | None) -> str:
    """JSON unless the caller asks for the annotated JPEG; 406 for anything we cannot produce."""
    if not accept:
        return JSON
    for part in accept.split(","):
        base = _base(part)
        if base in ("*/*", "application/*", JSON, JSON_LINES):
            return JSON
        if base in (JPEG, "image/*"):
            return JPEG
    raise NotAcceptable(f"cannot produce Accept {accept!r}; available: {', '.join(ACCEPT_TYPES)}")
