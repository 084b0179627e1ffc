"""Listing and sharding an input prefix, against the real moto server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from batch.local.moto_server import MotoServer
from batch.s3_listing import list_keys
from batch.s3_uri import S3Uri
from batch.transform.manifest import build_shards, manifest_line, shard_count, split_evenly
from batch.transform.plan import JobPlan


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with MotoServer() as moto:
        client = moto.client("s3")
        client.create_bucket(Bucket="bucket")
        yield client


def test_list_keys_is_relative_sorted_and_skips_folder_markers(s3: Any) -> None:
    for key in ("in/b/ü x.jpg", "in/a.jpg", "in/b/", "other/c.jpg", "in-not/d.jpg"):
        s3.put_object(Bucket="bucket", Key=key, Body=b"x")
    assert list_keys(s3, S3Uri.parse("s3://bucket/in")) == ["a.jpg", "b/ü x.jpg"]


@pytest.mark.parametrize(
    ("images", "instances", "expected"),
    [(0, 2, 0), (3, 2, 3), (100, 2, 8), (10_000, 1, 40), (10_000, 8, 40)],
)
def test_shard_count_gives_every_instance_several_shards(images: int, instances: int, expected: int) -> None:
    assert shard_count(images, instances, shards_per_instance=4, max_images_per_shard=256) == expected


def test_split_evenly_keeps_order_and_balance() -> None:
    parts = list(split_evenly([str(i) for i in range(10)], 4))
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    assert [k for p in parts for k in p] == [str(i) for i in range(10)]


def test_shards_cover_every_key_once_with_the_container_line_format() -> None:
    plan = JobPlan(
        "job", "manifest", "s3://in-bucket/in/", "s3://out-bucket/out/", keys=[f"k{i}.jpg" for i in range(9)]
    )
    shards = build_shards(plan, 2)
    assert len(shards) == 8 and [k for s in shards for k in s.images] == plan.keys
    assert json.loads(manifest_line(plan, "a b/é.jpg")) == {
        "image": "s3://in-bucket/in/a b/é.jpg",
        "keypoints": "s3://out-bucket/out/keypoints/a b/é.jpg.json",
        "annotated": "s3://out-bucket/out/annotated/a b/é.jpg",
    }


def test_plan_round_trips() -> None:
    plan = JobPlan("job", "manifest", "s3://bkt/in/", "s3://bkt/out/", keys=["a"])
    plan.shards = build_shards(plan, 1)
    assert JobPlan.from_json(plan.to_json()) == plan
    assert str(plan.transform_output_uri) == "s3://bkt/out/_transform/job/out/"
    assert str(plan.transform_input_uri) == "s3://bkt/out/_transform/job/manifests/"
