"""The mirrored output layout, shared by Batch Transform (plan, manifests, finaliser) and asynchronous
inference (trigger, client): one input key `<rel>` under an input prefix gives

    <output root>/keypoints/<rel>.json   result or error record
    <output root>/annotated/<rel>        annotated JPEG, when <rel> names a JPEG (.jpg, .jpeg)
    <output root>/annotated/<rel>.jpg    annotated JPEG of any other input (x.png -> x.png.jpg), so that
                                         JPEG bytes never carry another format's extension and x.png
                                         never collides with x.jpg

Standard library only: the Lambda handlers import it.
"""

from __future__ import annotations

KEYPOINTS_FOLDER = "keypoints"
ANNOTATED_FOLDER = "annotated"
RESULT_SUFFIX = ".json"
ANNOTATED_SUFFIX = ".jpg"
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes


def keypoints_key(rel: str) -> str:
    """The result's key relative to the output root."""
    return f"{KEYPOINTS_FOLDER}/{rel}{RESULT_SUFFIX}"


def annotated_key(rel: str) -> str:
    """The annotated JPEG's key relative to the output root (the one rule every flow follows)."""
    if rel.lower().endswith(_JPEG_EXTENSIONS):
        return f"{ANNOTATED_FOLDER}/{rel}"
    return f"{ANNOTATED_FOLDER}/{rel}{ANNOTATED_SUFFIX}"


def as_prefix(prefix: str) -> str:
    """'' stays '' (the whole bucket); anything else ends with exactly one '/'."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def key_fits(key: str) -> bool:
    """Whether S3 accepts `key` (at most 1,024 UTF-8 bytes)."""
    return len(key.encode("utf-8")) <= MAX_KEY_BYTES
