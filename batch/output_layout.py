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

One rule for any output extension (`annotated_key(rel, ext)`; by default the input's type picks `.jpg` or
`.mp4`). It keeps names readable, and so two inputs can still ask for one name: `a.png` and `a.png.jpg`
both map to `annotated/a.png.jpg` (`clip.mov` and `clip.mov.mp4` to `annotated/clip.mov.mp4`). The input
whose own name it is keeps it; the other is not posed and gets an `annotated_name_taken` error record
saying why (`annotated_name_owners` finds them in a listing, every flow that lists calls it;
`annotated_name_owner` / `annotated_name_partner` name the one other input to look for when a flow sees
one key at a time, as the S3 trigger does).

Standard library only: the Lambda handlers import it.
"""

from __future__ import annotations

from collections.abc import Collection

from batch.content_types import video_type_for

KEYPOINTS_FOLDER = "keypoints"
ANNOTATED_FOLDER = "annotated"
RESULT_SUFFIX = ".json"
ANNOTATED_SUFFIX = ".jpg"
VIDEO_RESULT_SUFFIX = ".jsonl"
VIDEO_ANNOTATED_SUFFIX = ".mp4"
# Extensions an input may already wear and keep as its annotated output's name (any case): a `.jpeg`
# input's annotated JPEG keeps its name.
_SAME_TYPE = {ANNOTATED_SUFFIX: (".jpg", ".jpeg")}
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes


def is_video(rel: str) -> bool:
    """Whether an input is a video, by its extension: its outputs are JSON Lines and an MP4."""
    return video_type_for(rel) is not None


def keypoints_key(rel: str) -> str:
    """The result's key relative to the output root (a video's: JSON Lines)."""
    return f"{KEYPOINTS_FOLDER}/{rel}{VIDEO_RESULT_SUFFIX if is_video(rel) else RESULT_SUFFIX}"


def annotated_key(rel: str, ext: str | None = None) -> str:
    """The annotated output's key relative to the output root (the one rule every flow follows):
    `annotated/<rel>` when `rel` already ends with `ext` (any case; `.jpeg` counts as `.jpg`), else
    `annotated/<rel><ext>`; `ext` by default by the input's type: `.mp4` for a video, `.jpg` otherwise."""
    ext = ext or (VIDEO_ANNOTATED_SUFFIX if is_video(rel) else ANNOTATED_SUFFIX)
    if rel.lower().endswith(_SAME_TYPE.get(ext, (ext,))):
        return f"{ANNOTATED_FOLDER}/{rel}"
    return f"{ANNOTATED_FOLDER}/{rel}{ext}"


def annotated_name_owner(rel: str) -> str | None:
    """The input that would keep `rel`'s annotated name, if it existed: `a.png` -> `a.png.jpg`, `clip.mov`
    -> `clip.mov.mp4` (whose own name it is); None when the name is `rel`'s own (`x.jpg`)."""
    name = annotated_key(rel)[len(ANNOTATED_FOLDER) + 1 :]
    return None if name == rel or annotated_key(name) != annotated_key(rel) else name


def annotated_name_partner(rel: str) -> str | None:
    """The input whose annotated name would be `rel`'s own, if it existed: `a.png.jpg` -> `a.png`,
    `clip.mov.mp4` -> `clip.mov`; None when none can map there. (`x.jpg` -> `x`, which the caller drops as
    no input of any flow: it checks the type.)"""
    for ext in (ANNOTATED_SUFFIX, VIDEO_ANNOTATED_SUFFIX):
        partner = rel[: -len(ext)]
        if rel.endswith(ext) and partner and annotated_key(partner) == f"{ANNOTATED_FOLDER}/{rel}":
            return partner
    return None


def annotated_name_owners(rels: Collection[str]) -> dict[str, str]:
    """The inputs among `rels` whose annotated name is another input's own: {rel: the input that keeps
    it}. Only such a pair can collide (two inputs never derive one name, two own names always differ),
    so one set lookup per input finds them all."""
    members = rels if isinstance(rels, set | frozenset | dict) else set(rels)
    taken: dict[str, str] = {}
    for rel in rels:
        owner = annotated_name_owner(rel)
        if owner is not None and owner in members:
            taken[rel] = owner
    return taken


def annotated_name_taken_message(rel: str, owner: str) -> str:
    """The error record's message for an input whose annotated name another input keeps."""
    return (
        f"not posed: its annotated output would be {annotated_key(rel)}, the name of the input {owner}'s own "
        f"annotated output, which keeps it; rename one of the two (annotated names: {ANNOTATED_FOLDER}/<rel> "
        f"for inputs already named like the output, else {ANNOTATED_FOLDER}/<rel>.jpg, a video's <rel>.mp4)"
    )


def as_prefix(prefix: str) -> str:
    """'' stays '' (the whole bucket); anything else ends with exactly one '/'."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def key_fits(key: str) -> bool:
    """Whether S3 accepts `key` (at most 1,024 UTF-8 bytes)."""
    return len(key.encode("utf-8")) <= MAX_KEY_BYTES
