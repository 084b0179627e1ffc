"""Content types the container accepts and produces: lookup tables, and 415/406 for anything else."""

from __future__ import annotations

import posixpath

from batch.errors import NotAcceptable, UnsupportedMediaType

JSON = "application/json"
JPEG = "image/jpeg"
JSON_LINES = "application/jsonlines"
# The result and its annotated JPEG in one answer (`batch.transport_envelope`): what `pose-batch invoke
# --annotated` asks a real-time endpoint for, so one request gives both.
ENVELOPE = "application/x-posebatch-envelope+json"

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
ACCEPT_TYPES = (JSON, JPEG, ENVELOPE)
# Video bodies (asynchronous inference, `predict`, manifest lines): decoded by sniffing too, through PyAV.
VIDEO_TYPES = (
    "video/mp4",
    "video/quicktime",
    "video/x-matroska",
    "video/webm",
    "video/x-msvideo",
    "video/avi",
)
MP4 = "video/mp4"

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


# The video containers the container decodes (with the codecs FFmpeg decodes: H.264, H.265, VP9, AV1...).
VIDEO_EXTENSIONS = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
}


def video_type_for(name: str) -> str | None:
    """The video content type for a file name or S3 key, by extension; None if it is not a video."""
    extension = posixpath.splitext(name)[1].lower().lstrip(".")
    return VIDEO_EXTENSIONS.get(extension)


def input_type_for(name: str) -> str | None:
    """The content type of an input (image or video) by extension; None for anything else."""
    return image_type_for(name) or video_type_for(name)


# ISO-BMFF brands of still images (HEIC, AVIF...): an `ftyp` box alone does not make a video.
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"avif", b"avis"}
SNIFF_BYTES = 16  # enough of a body's start to tell a video container from an image


def looks_like_video(head: bytes) -> bool:
    """Whether a body's first bytes are a video container: MP4/MOV (`ftyp` of a non-image brand),
    Matroska/WebM (EBML) or AVI (RIFF AVI)."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):  # QuickTime files without ftyp
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return True
    return head.startswith(b"RIFF") and head[8:12] == b"AVI "


def image_type_for(name: str) -> str | None:
    """The image content type for a file name or S3 key, by extension; None if it is not an image."""
    extension = posixpath.splitext(name)[1].lower().lstrip(".")
    return IMAGE_EXTENSIONS.get(extension)


def _base(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_image(content_type: str) -> bool:
    base = _base(content_type)
    return base in IMAGE_TYPES or base.startswith("image/")


def is_video(content_type: str) -> bool:
    base = _base(content_type)
    return base in VIDEO_TYPES or base.startswith("video/")


def is_json_lines(content_type: str) -> bool:
    return _base(content_type) in JSON_LINES_TYPES


def check_request_type(content_type: str | None) -> str:
    """The base content type if supported; 415 naming the supported ones otherwise."""
    if content_type and (is_image(content_type) or is_video(content_type) or is_json_lines(content_type)):
        return _base(content_type)
    supported = ", ".join((*IMAGE_TYPES, "image/*", *VIDEO_TYPES, "video/*", *JSON_LINES_TYPES))
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
        if base == ENVELOPE:
            return ENVELOPE
    raise NotAcceptable(f"cannot produce Accept {accept!r}; available: {', '.join(ACCEPT_TYPES)}")
