"""What the launcher decides from the listing before a job starts: which inputs the job can carry,
and the request size and concurrency that carry them.

- Images mode sends each object whole as one request, and SageMaker fails the *whole job* when one
  object is larger than `MaxPayloadInMB`; it also requires `MaxConcurrentTransforms x MaxPayloadInMB
  <= 100`. So the payload limit is sized from the largest object (at least the mode's 6 MB), and the
  concurrency lowered to fit. Concurrency is what lets the container batch images on the GPU, so it
  never goes below `MIN_IMAGES_CONCURRENT`: objects above 100 / 4 = 25 MB are kept out of the job
  (refused with an error record that says to use manifest mode, where the container reads the image
  from S3 itself and no request carries it).
- Either mode: an input whose mirrored output keys (or, in images mode, the job's `.out` key) would
  pass S3's 1,024-byte key limit can never be written: refused with `key_too_long`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from batch.errors import KeyTooLong, PayloadTooLarge
from batch.output_layout import MAX_KEY_BYTES, annotated_key, key_fits, keypoints_key
from batch.transform.plan import JobPlan, Refusal

MIB = 1024 * 1024
PAYLOAD_X_CONCURRENCY = 100  # SageMaker: MaxConcurrentTransforms x MaxPayloadInMB <= 100
MIN_IMAGES_CONCURRENT = 4
MAX_IMAGES_PAYLOAD_MB = PAYLOAD_X_CONCURRENCY // MIN_IMAGES_CONCURRENT  # 25


@dataclass(frozen=True)
class Sizing:
    max_concurrent: int
    max_payload_mb: int


def images_sizing(
    sizes: dict[str, int],
    *,
    default_concurrent: int,
    default_payload_mb: int,
    max_concurrent: int | None = None,
    max_payload_mb: int | None = None,
) -> tuple[Sizing, list[Refusal]]:
    """The images-mode request limits for objects of `sizes` (rel -> bytes), and the objects refused.
    An explicit `max_payload_mb` or `max_concurrent` is kept; the other is derived from it."""
    if max_payload_mb is not None:
        payload = max_payload_mb
    else:
        ceiling = PAYLOAD_X_CONCURRENCY // max_concurrent if max_concurrent else MAX_IMAGES_PAYLOAD_MB
        carried = [size for size in sizes.values() if size <= ceiling * MIB]
        payload = min(ceiling, max([default_payload_mb, *(math.ceil(size / MIB) for size in carried)]))
    concurrent = max_concurrent or max(1, min(default_concurrent, PAYLOAD_X_CONCURRENCY // max(payload, 1)))
    limit = payload * MIB
    refused = [
        Refusal(
            rel,
            PayloadTooLarge.code,
            f"{size / MIB:.1f} MB is more than images mode carries in one request ({payload} MB, with "
            f"{concurrent} requests in flight): run this prefix with --mode manifest, where the container "
            "reads each image from S3 itself",
        )
        for rel, size in sorted(sizes.items())
        if size > limit
    ]
    return Sizing(concurrent, payload), refused


def key_refusals(plan: JobPlan, rels: list[str]) -> list[Refusal]:
    """Inputs whose output keys S3 would refuse (over 1,024 bytes)."""
    output = plan.output_uri
    refused = []
    for rel in rels:
        keys = [output.child(keypoints_key(rel)).key, output.child(annotated_key(rel)).key]
        if plan.mode == "images":
            keys.append(plan.transform_output_uri.child(rel + ".out").key)
        longest = max(keys, key=lambda k: len(k.encode()))
        if not key_fits(longest):
            refused.append(
                Refusal(
                    rel,
                    KeyTooLong.code,
                    f"its output key would be {len(longest.encode())} bytes, past S3's limit of {MAX_KEY_BYTES}: "
                    "shorten the input key or use a shorter output prefix",
                )
            )
    return refused
