"""The finaliser against the real moto server, with `.out` files as the job leaves them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from batch.local.moto_server import MotoServer
from batch.transform.finalize import finalize
from batch.transform.plan import JobPlan, Shard

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


def test_images_mode_splits_results_and_records_every_kind_of_failure(s3: Any) -> None:
    plan = JobPlan(
        "img", "images", "s3://bucket/in/", "s3://bucket/o1/", keys=["ok.jpg", "bad.jpg", "junk.jpg", "lost.jpg"]
    )
    put_out(
        s3,
        plan,
        "ok.jpg",
        json.dumps({**RESULT, "annotated_jpeg_base64": base64.b64encode(b"\xff\xd8J").decode()}).encode(),
    )
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
    }
    assert read(s3, "o1/keypoints/lost.jpg.json")["error"]["message"].endswith("lost.jpg failed)")
    assert (summary["images"], summary["done"], summary["failed"]) == (4, 1, 3)
    assert summary["timings"]["images_per_second"] == 1.0


def test_finalising_twice_is_a_no_op(s3: Any) -> None:
    plan = JobPlan("twice", "images", "s3://bucket/in/", "s3://bucket/o2/", keys=["ok.jpg"])
    put_out(s3, plan, "ok.jpg", json.dumps(RESULT).encode())
    first = finalize(s3, plan, JOB)
    assert finalize(s3, plan, JOB) == first == read(s3, "o2/_SUMMARY.json")
    assert finalize(s3, plan, JOB, force=True)["finalized_at"] >= first["finalized_at"]


def test_manifest_mode_reads_lines_and_records_missing_ones(s3: Any) -> None:
    plan = JobPlan(
        "man",
        "manifest",
        "s3://bucket/in/",
        "s3://bucket/o3/",
        keys=["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
        shards=[Shard("shard-0.jsonl", ["a.jpg", "b.jpg", "c.jpg"]), Shard("shard-1.jsonl", ["d.jpg"])],
    )
    lines = [
        {"image": "s3://bucket/in/a.jpg", "status": "ok", "result": RESULT},
        {"image": "s3://bucket/in/b.jpg", "status": "error", "error": {"code": "s3_error", "message": "gone"}},
    ]
    put_out(s3, plan, "shard-0.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode())
    summary = finalize(s3, plan, JOB)
    codes = {f["key"]: f["error"]["code"] for f in summary["failures"]}
    assert codes == {"in/b.jpg": "s3_error", "in/c.jpg": "missing_result", "in/d.jpg": "no_transform_output"}
    assert read(s3, "o3/keypoints/b.jpg.json") == {"error": {"code": "s3_error", "message": "gone"}}
