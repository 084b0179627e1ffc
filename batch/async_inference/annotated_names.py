"""Annotated-name collisions on the asynchronous path, which sees one key at a time.

`a.png` and `a.png.jpg` both ask for `annotated/a.png.jpg` (`batch.output_layout`). The input whose own
name it is (`a.png.jpg`) keeps it; the other is not posed and gets the `annotated_name_taken` error record.
A listing finds both at once (Batch Transform, `predict`, `submit` of a prefix); the S3 trigger gets one
event per object, in any order, so it asks S3 for the one other input that matters:

- an input whose annotated name is derived (`a.png`, a video `clip.mov`): if its owner (`a.png.jpg`,
  `clip.mov.mp4`) exists, it is refused;
- an input that owns a name (`a.png.jpg`): it is posed, and if the partner (`a.png`) exists, the partner's
  record becomes the error record, since this input's annotated image replaces the partner's.

Both uploaded within one inference of each other (the partner's inference still running when the owner's
event is handled) can still end with the partner's outputs written last; uploading the owner again
settles it. The check is a one-key listing (`s3:ListBucket` on the input prefix, no read of the object),
made only for names that can collide: a plain `x.jpg` costs nothing. Standard library and boto3 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batch.async_inference.layout import AsyncLayout, Placement
from batch.content_types import input_type_for
from batch.output_layout import annotated_name_owner, annotated_name_partner, annotated_name_taken_message


@dataclass(frozen=True)
class NameCheck:
    """What one input's annotated name means for it and for the one other input that could want it."""

    taken_by: str | None = None  # the input (rel) that keeps this one's annotated name: refuse this one
    displaced: Placement | None = None  # the input whose annotated name this one keeps: it gets the record

    def refusal(self, placement: Placement) -> str | None:
        """The error record's message when this input is refused."""
        return None if self.taken_by is None else annotated_name_taken_message(placement.relative_key, self.taken_by)

    def displaced_message(self, placement: Placement) -> str | None:
        """The error record's message for the displaced input."""
        if self.displaced is None:
            return None
        return annotated_name_taken_message(self.displaced.relative_key, placement.relative_key)


def check_annotated_name(s3: Any, layout: AsyncLayout, placement: Placement) -> NameCheck:
    """Ask S3 about the one other input that wants `placement`'s annotated name (none for most keys)."""
    rel, prefix, bucket = placement.relative_key, layout.input_prefix, layout.input_bucket
    owner = annotated_name_owner(rel)
    if owner is not None and object_exists(s3, bucket, prefix + owner):
        return NameCheck(taken_by=owner)
    partner = annotated_name_partner(rel)
    if partner is not None and input_type_for(partner) and object_exists(s3, bucket, prefix + partner):
        return NameCheck(displaced=layout.place(bucket, prefix + partner))
    return NameCheck()


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether `key` exists, by a one-key listing: needs only `s3:ListBucket` on the prefix (a HEAD needs
    `s3:GetObject`, and without ListBucket a missing key reads as 403, not 404)."""
    response = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(item.get("Key") == key for item in response.get("Contents", []))
