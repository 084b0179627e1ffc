"""Listing and sharding an input prefix, against the real moto server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from batch.local.moto_server import MotoServer
from batch.manifest_line import ManifestLine
from batch.s3_listing import list_keys
from batch.s3_uri import S3Uri
from batch.transform.plan import JobPlan, Refusal, build_shards, manifest_line, shard_count, split_evenly


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


def test_keys_differing_by_a_slash_name_their_own_image_and_outputs() -> None:
    """`in/x.jpg` and `in//x.jpg` are two objects: each line names its own image and its own outputs."""
    plan = JobPlan("job", "manifest", "s3://bkt/in/", "s3://bkt/out/", keys=["x.jpg", "/x.jpg", "a//y.jpg"])
    lines = [json.loads(manifest_line(plan, rel)) for rel in plan.keys]
    assert [line["image"] for line in lines] == ["s3://bkt/in/x.jpg", "s3://bkt/in//x.jpg", "s3://bkt/in/a//y.jpg"]
    assert [line["keypoints"] for line in lines] == [
        "s3://bkt/out/keypoints/x.jpg.json",
        "s3://bkt/out/keypoints//x.jpg.json",
        "s3://bkt/out/keypoints/a//y.jpg.json",
    ]
    assert len({line["annotated"] for line in lines}) == 3


def test_plan_round_trips_through_its_pages(s3: Any) -> None:
    plan = JobPlan("job", "manifest", "s3://bucket/in/", "s3://bucket/out/", keys=["a", "b\u2028c"])
    plan.shards = build_shards(plan, 1)
    plan.refused = [Refusal("long", "key_too_long", "too long")]
    plan.save(s3)
    loaded = JobPlan.load(s3, plan.plan_uri)
    assert (loaded.job_name, loaded.mode, loaded.page_count, loaded.image_count) == ("job", "manifest", 3, 3)
    pages = [loaded.page(s3, i) for i in range(loaded.page_count)]
    assert [(p.shard, p.images) for p in pages[:2]] == [(s.rel, s.images) for s in plan.shards]
    assert pages[2].refused == plan.refused
    assert str(plan.transform_output_uri) == "s3://bucket/out/_transform/job/out/"
    assert str(plan.transform_input_uri) == "s3://bucket/out/_transform/job/manifests/"


def test_manifest_lines_keep_line_separators_inside_keys() -> None:
    """The writer leaves U+2028/U+2029/U+0085 raw; split on "\\n" the line comes back whole."""
    odd = "in/a\u2028b\u2029c\x85d.jpg"
    line = ManifestLine(S3Uri.parse(f"s3://bkt/{odd}"), S3Uri.parse(f"s3://bkt/out/{odd}.json"))
    body = line.to_json() + "\n" + line.to_json() + "\n"
    assert len(body.splitlines()) > 2  # what the old splitter did
    assert [ManifestLine.parse(text) for text in body.split("\n") if text.strip()] == [line, line]
