"""The finaliser against the real moto server, with `.out` files as the job leaves them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from batch import transport_envelope
from batch.local.moto_server import MotoServer
from batch.transform.finalize import finalize, finalize_pages, split_lines
from batch.transform.plan import PAGE_SIZE, JobPlan, Refusal, Shard

JOB = {"TransformJobStatus": "Completed", "TransformStartTime": 1000.0, "TransformEndTime": 1004.0}
RESULT = {"model": "m", "image": {"width": 2, "height": 2}, "persons": []}


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with MotoServer() as moto:
        client = moto.client("s3")
        client.create_bucket(Bucket="bucket")
        yield client


def read(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket="bucket", Key=key)["Body"].read())


def put_out(s3: Any, plan: JobPlan, rel: str, body: bytes) -> None:
    uri = plan.transform_output_uri.child(rel + ".out")
    s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body)


def envelope(jpeg: bytes | None) -> bytes:
    return transport_envelope.encode(json.dumps(RESULT).encode(), jpeg)


def saved(s3: Any, plan: JobPlan) -> JobPlan:
    plan.save(s3)
    return plan


def test_images_mode_splits_results_and_records_every_kind_of_failure(s3: Any) -> None:
    plan = JobPlan(
        "img", "images", "s3://bucket/in/", "s3://bucket/o1/", keys=["ok.jpg", "bad.jpg", "junk.jpg", "lost.jpg"]
    )
    plan.refused = [Refusal("huge.png", "payload_too_large", "use manifest mode")]
    saved(s3, plan)
    put_out(s3, plan, "ok.jpg", envelope(b"\xff\xd8J"))
    put_out(s3, plan, "bad.jpg", b'{"error": {"code": "invalid_image", "message": "not an image"}}')
    put_out(s3, plan, "junk.jpg", b"<html>")
    summary = finalize(s3, plan, {**JOB, "TransformJobStatus": "Failed", "FailureReason": "lost.jpg failed"})
    assert read(s3, "o1/keypoints/ok.jpg.json") == RESULT
    assert s3.get_object(Bucket="bucket", Key="o1/annotated/ok.jpg")["Body"].read() == b"\xff\xd8J"
    codes = {f["key"]: f["error"]["code"] for f in summary["failures"]}
    assert codes == {
        "in/bad.jpg": "invalid_image",
        "in/junk.jpg": "invalid_transform_output",
        "in/lost.jpg": "no_transform_output",
        "in/huge.png": "payload_too_large",
    }
    assert read(s3, "o1/keypoints/lost.jpg.json")["error"]["message"].endswith("lost.jpg failed)")
    assert read(s3, "o1/keypoints/huge.png.json")["error"]["message"] == "use manifest mode"
    assert (summary["images"], summary["done"], summary["failed"]) == (5, 1, 4)
    assert summary["timings"]["images_per_second"] == 1.25


def test_a_large_annotated_image_is_streamed_in_parts(s3: Any) -> None:
    """12 MB of JPEG: more than one 5 MiB part, moved without holding the `.out` body whole."""
    plan = saved(s3, JobPlan("big", "images", "s3://bucket/in/", "s3://bucket/o4/", keys=["big.jpg", "plain.jpg"]))
    jpeg = b"\xff\xd8" + os.urandom(12 * 1024 * 1024)
    put_out(s3, plan, "big.jpg", envelope(jpeg))
    put_out(s3, plan, "plain.jpg", json.dumps(RESULT).encode())  # POSE_EMBED_ANNOTATED unset: a bare record
    summary = finalize(s3, plan, JOB)
    assert summary["failed"] == 0
    assert s3.get_object(Bucket="bucket", Key="o4/annotated/big.jpg")["Body"].read() == jpeg
    assert read(s3, "o4/keypoints/big.jpg.json") == read(s3, "o4/keypoints/plain.jpg.json") == RESULT


def test_an_over_long_key_is_a_summary_entry_and_the_others_still_finish(s3: Any) -> None:
    long_rel = "x" * 1010 + ".jpg"  # a legal input key; its mirrored keypoints key is not
    plan = saved(s3, JobPlan("long", "images", "s3://bucket/in/", "s3://bucket/o5/", keys=[long_rel, "ok.jpg"]))
    put_out(s3, plan, "ok.jpg", envelope(b"\xff\xd8"))
    summary = finalize(s3, plan, JOB)
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["key"] == "in/" + long_rel
    assert summary["failures"][0]["error"]["code"] == "key_too_long"
    assert read(s3, "o5/keypoints/ok.jpg.json") == RESULT


def test_finalising_twice_is_a_no_op(s3: Any) -> None:
    plan = saved(s3, JobPlan("twice", "images", "s3://bucket/in/", "s3://bucket/o2/", keys=["ok.jpg"]))
    put_out(s3, plan, "ok.jpg", envelope(None))
    first = finalize(s3, plan, JOB)
    assert finalize(s3, plan, JOB) == first == read(s3, "o2/_SUMMARY.json")
    assert finalize(s3, plan, JOB, force=True)["finalized_at"] >= first["finalized_at"]


def test_pages_are_done_until_the_deadline_then_continued(s3: Any) -> None:
    keys = [f"{i:04d}.jpg" for i in range(2 * PAGE_SIZE + 1)]
    plan = saved(s3, JobPlan("paged", "images", "s3://bucket/in/", "s3://bucket/o6/", keys=keys))
    assert plan.page_count == 3
    loaded = JobPlan.load(s3, plan.plan_uri)
    assert (loaded.page_count, loaded.image_count, loaded.keys) == (3, len(keys), [])
    # A deadline already past: each call still does one page, and says where to go on.
    assert finalize_pages(s3, loaded, JOB, deadline=0.0) == 1
    assert finalize_pages(s3, loaded, JOB, start=1, deadline=0.0) == 2
    assert finalize_pages(s3, loaded, JOB, start=2, deadline=0.0) is None
    summary = finalize(s3, loaded, JOB)  # folds the pages' outcomes (the pages are not redone)
    assert (summary["images"], summary["failed"]) == (len(keys), len(keys))


def test_manifest_mode_reads_lines_and_records_missing_ones(s3: Any) -> None:
    odd = "b\u2028with\u2029separators\x85.jpg"  # legal in S3 keys; str.splitlines() would cut the line
    plan = JobPlan(
        "man",
        "manifest",
        "s3://bucket/in/",
        "s3://bucket/o3/",
        keys=["a.jpg", odd, "c.jpg", "d.jpg"],
        shards=[Shard("shard-0.jsonl", ["a.jpg", odd, "c.jpg"]), Shard("shard-1.jsonl", ["d.jpg"])],
    )
    saved(s3, plan)
    lines = [
        {"image": "s3://bucket/in/a.jpg", "status": "ok", "result": RESULT},
        {"image": f"s3://bucket/in/{odd}", "status": "error", "error": {"code": "s3_error", "message": "gone"}},
    ]
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    put_out(s3, plan, "shard-0.jsonl", body)
    summary = finalize(s3, plan, JOB)
    codes = {f["key"]: f["error"]["code"] for f in summary["failures"]}
    assert codes == {f"in/{odd}": "s3_error", "in/c.jpg": "missing_result", "in/d.jpg": "no_transform_output"}
    assert read(s3, f"o3/keypoints/{odd}.json") == {"error": {"code": "s3_error", "message": "gone"}}


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"a\nb\n"], [b"a", b"b"]),
        ([b"a", b"\n", b"b"], [b"a", b"b"]),
        (["x\u2028y\u2029z\x85\n".encode()], ["x\u2028y\u2029z\x85".encode()]),
        ([b"a\r\n"], [b"a\r"]),
    ],
)
def test_lines_split_on_newline_only(chunks: list[bytes], lines: list[bytes]) -> None:
    assert list(split_lines(iter(chunks))) == lines


def test_the_annotated_stream_reads_whole_parts() -> None:
    """S3 uploads of unknown length read the threshold once to decide, then part by part: a short read
    would make them hold the whole JPEG (or cut parts below S3's 5 MiB minimum)."""
    jpeg = os.urandom(11 * 1024 * 1024)
    body = envelope(jpeg)
    opened = transport_envelope.open_body(iter(body[i : i + 65536] for i in range(0, len(body), 65536)))
    assert opened.jpeg is not None
    part = 5 * 1024 * 1024
    assert [len(opened.jpeg.read(part)) for _ in range(3)] == [part, part, len(jpeg) - 2 * part]
