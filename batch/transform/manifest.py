"""Cutting an input prefix into JSON Lines manifests for the high-throughput mode.

Batch Transform spreads input *files* over instances, and never mixes the records of two files in one
request; so the number and size of the shards decide both how many instances get work and how many
images one request can carry. Each instance gets several shards so that one slow shard does not idle
the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batch.manifest_line import ManifestLine
from batch.transform.plan import JobPlan, Shard, annotated_uri, keypoints_uri

DEFAULT_SHARDS_PER_INSTANCE = 4
DEFAULT_MAX_IMAGES_PER_SHARD = 256


def shard_count(
    n_images: int,
    instance_count: int,
    *,
    shards_per_instance: int = DEFAULT_SHARDS_PER_INSTANCE,
    max_images_per_shard: int = DEFAULT_MAX_IMAGES_PER_SHARD,
) -> int:
    if n_images <= 0:
        return 0
    wanted = max(instance_count * shards_per_instance, math.ceil(n_images / max_images_per_shard))
    return min(n_images, wanted)


def split_evenly(keys: list[str], parts: int) -> Iterator[list[str]]:
    """Contiguous runs of sorted keys (neighbours in a folder stay together), sizes differing by <= 1."""
    size, extra = divmod(len(keys), parts)
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        yield keys[start:end]
        start = end


def manifest_line(plan: JobPlan, rel: str) -> str:
    """The image and where its outputs go (the container reads it with `ManifestLine.parse`)."""
    output = plan.output_uri
    return ManifestLine(plan.image_uri(rel), keypoints_uri(output, rel), annotated_uri(output, rel)).to_json()


def build_shards(
    plan: JobPlan,
    instance_count: int,
    *,
    shards_per_instance: int = DEFAULT_SHARDS_PER_INSTANCE,
    max_images_per_shard: int = DEFAULT_MAX_IMAGES_PER_SHARD,
) -> list[Shard]:
    count = shard_count(
        len(plan.keys),
        instance_count,
        shards_per_instance=shards_per_instance,
        max_images_per_shard=max_images_per_shard,
    )
    width = max(5, len(str(count)))
    return [
        Shard(rel=f"shard-{i:0{width}d}.jsonl", images=part) for i, part in enumerate(split_evenly(plan.keys, count))
    ]


def write_shards(s3: Any, plan: JobPlan) -> None:
    def put(shard: Shard) -> None:
        uri = plan.manifests_uri.child(shard.rel)
        body = "".join(manifest_line(plan, rel) + "\n" for rel in shard.images).encode()
        s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType="application/jsonlines")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, plan.shards))
