"""The mirrored output layout, shared by Batch Transform (plan, manifests, finaliser) and asynchronous
inference (trigger, client): one input key `<rel>` under an input prefix gives

    <output root>/keypoints/<rel>.json   result or error record
    <output root>/annotated/<rel>        annotated JPEG, when <rel> names a JPEG (.jpg, .jpeg)
    <output root>/annotated/<rel>.jpg    annotated JPEG of any other input (x.png -> x.png.jpg), so that
                                         JPEG bytes never carry another format's extension and x.png
                                         never collides with x.jpg

and a video `<rel>` (by its extension: `content_types.VIDEO_EXTENSIONS`)

    <output root>/keypoints/<rel>.jsonl  a header line, then one line per posed frame (or its error record)
    <output root>/annotated/<rel>        the annotated H.264 MP4, when <rel> names an MP4 (.mp4)
    <output root>/annotated/<rel>.mp4    the annotated MP4 of any other video (clip.mov -> clip.mov.mp4)

Standard library only: the Lambda handlers import it.
"""

from __future__ import annotations

from batch.content_types import video_type_for

KEYPOINTS_FOLDER = "keypoints"
ANNOTATED_FOLDER = "annotated"
RESULT_SUFFIX = ".json"
ANNOTATED_SUFFIX = ".jpg"
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
VIDEO_RESULT_SUFFIX = ".jsonl"
VIDEO_ANNOTATED_SUFFIX = ".mp4"
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes


def is_video(rel: str) -> bool:
    """Whether an input is a video, by its extension: its outputs are JSON Lines and an MP4."""
    return video_type_for(rel) is not None


def keypoints_key(rel: str) -> str:
    """The result's key relative to the output root (a video's: JSON Lines)."""
    return f"{KEYPOINTS_FOLDER}/{rel}{VIDEO_RESULT_SUFFIX if is_video(rel) else RESULT_SUFFIX}"


def annotated_key(rel: str) -> str:
    """The annotated JPEG's (a video's: MP4's) key relative to the output root (the one rule every flow follows)."""
    if is_video(rel):
        mp4 = rel.lower().endswith(VIDEO_ANNOTATED_SUFFIX)
        return f"{ANNOTATED_FOLDER}/{rel}" if mp4 else f"{ANNOTATED_FOLDER}/{rel}{VIDEO_ANNOTATED_SUFFIX}"
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
