"""The finaliser against the real moto server, with `.out` files as the job leaves them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch import transport_envelope
from batch.local.moto_server import MotoServer
from batch.s3_uri import S3Uri
from batch.transform.finalize import finalize, finalize_pages, split_lines
from batch.transform.outcomes import page_outcome_uri, reduce_group, write_summary
from batch.transform.plan import PAGE_SIZE, JobPlan, Refusal, Shard
from batch.transform.progress import format_report
from batch.transform.s3_objects import read_object

JOB = {"TransformJobStatus": "Completed", "TransformStartTime": 1000.0, "TransformEndTime": 1004.0}
RESULT = {"model": "m", "image": {"width": 2, "height": 2}, "persons": []}
PERSON = {"score": 0.9, "box": [0, 0, 1, 1], "keypoints": [[0.5, 0.5, 0.9]]}


def with_persons(n: int) -> dict[str, Any]:
    return {**RESULT, "persons": [PERSON] * n}


def named(record: dict[str, Any], uri: str) -> dict[str, Any]:
    return {**record, "source": uri}


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


def envelope(jpeg: bytes | None, record: dict[str, Any] = RESULT) -> bytes:
    return transport_envelope.encode(json.dumps(record).encode(), jpeg)


def saved(s3: Any, plan: JobPlan) -> JobPlan:
    plan.save(s3)
    return plan


def test_images_mode_splits_results_and_records_every_kind_of_failure(s3: Any) -> None:
    plan = JobPlan(
        "img", "images", "s3://bucket/in/", "s3://bucket/o1/", keys=["ok.jpg", "bad.jpg", "junk.jpg", "lost.jpg"]
    )
    plan.refused = [Refusal("huge.png", "payload_too_large", "use manifest mode")]
    saved(s3, plan)
    put_out(s3, plan, "ok.jpg", envelope(b"\xff\xd8J", with_persons(2)))
    put_out(s3, plan, "bad.jpg", b'{"error": {"code": "invalid_image", "message": "not an image"}}')
    put_out(s3, plan, "junk.jpg", b"<html>")
    summary = finalize(s3, plan, {**JOB, "TransformJobStatus": "Failed", "FailureReason": "lost.jpg failed"})
    assert read(s3, "o1/keypoints/ok.jpg.json") == named(with_persons(2), "s3://bucket/in/ok.jpg")
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
    assert (summary["persons"], summary["images_with_persons"]) == (2, 1)
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
    for rel in ("big.jpg", "plain.jpg"):
        assert read(s3, f"o4/keypoints/{rel}.json") == named(RESULT, f"s3://bucket/in/{rel}")


def test_an_over_long_key_is_a_summary_entry_and_the_others_still_finish(s3: Any) -> None:
    long_rel = "x" * 1010 + ".jpg"  # a legal input key; its mirrored keypoints key is not
    plan = saved(s3, JobPlan("long", "images", "s3://bucket/in/", "s3://bucket/o5/", keys=[long_rel, "ok.jpg"]))
    put_out(s3, plan, "ok.jpg", envelope(b"\xff\xd8"))
    summary = finalize(s3, plan, JOB)
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["key"] == "in/" + long_rel
    assert summary["failures"][0]["error"]["code"] == "key_too_long"
    assert read(s3, "o5/keypoints/ok.jpg.json") == named(RESULT, "s3://bucket/in/ok.jpg")


def test_finalising_twice_is_a_no_op(s3: Any) -> None:
    plan = saved(s3, JobPlan("twice", "images", "s3://bucket/in/", "s3://bucket/o2/", keys=["ok.jpg"]))
    put_out(s3, plan, "ok.jpg", envelope(None))
    first = finalize(s3, plan, JOB)
    assert finalize(s3, plan, JOB) == first == read(s3, "o2/_SUMMARY.json")
    assert finalize(s3, plan, JOB, force=True)["finalized_at"] >= first["finalized_at"]


def test_pages_are_done_until_the_deadline_then_continued(s3: Any) -> None:
    keys = [f"{i:04d}.jpg" for i in range(2 * PAGE_SIZE + 1)]
    plan = saved(s3, JobPlan("paged", "images", "s3://bucket/in/", "s3://bucket/o6/", keys=keys))
    for n, rel in enumerate((keys[0], keys[PAGE_SIZE], keys[-1]), start=1):  # one image posed on each page
        put_out(s3, plan, rel, envelope(None, with_persons(n)))
    assert plan.page_count == 3
    loaded = JobPlan.load(s3, plan.plan_uri)
    assert (loaded.page_count, loaded.image_count, loaded.keys) == (3, len(keys), [])
    # A deadline already past: each call still does one page, and says where to go on.
    assert finalize_pages(s3, loaded, JOB, deadline=0.0) == 1
    assert finalize_pages(s3, loaded, JOB, start=1, deadline=0.0) == 2
    assert finalize_pages(s3, loaded, JOB, start=2, deadline=0.0) is None
    summary = finalize(s3, loaded, JOB)  # folds the pages' outcomes (the pages are not redone)
    assert (summary["images"], summary["failed"]) == (len(keys), len(keys) - 3)
    assert (summary["persons"], summary["images_with_persons"]) == (1 + 2 + 3, 3)  # summed over the pages


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
        {"image": "s3://bucket/in/a.jpg", "status": "ok", "result": with_persons(3)},
        {"image": f"s3://bucket/in/{odd}", "status": "error", "error": {"code": "s3_error", "message": "gone"}},
    ]
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    put_out(s3, plan, "shard-0.jsonl", body)
    summary = finalize(s3, plan, JOB)
    codes = {f["key"]: f["error"]["code"] for f in summary["failures"]}
    assert codes == {f"in/{odd}": "s3_error", "in/c.jpg": "missing_result", "in/d.jpg": "no_transform_output"}
    assert read(s3, f"o3/keypoints/{odd}.json") == {"error": {"code": "s3_error", "message": "gone"}}
    assert (summary["persons"], summary["images_with_persons"]) == (3, 1)


@pytest.mark.parametrize("mode", ["images", "manifest"])
def test_keys_differing_by_a_slash_are_finalised_apart(s3: Any, mode: str) -> None:
    """`in/x.jpg` and `in//x.jpg` are two inputs: each gets its own `.out`, record and source."""
    rels = ["x.jpg", "/x.jpg"]
    plan = JobPlan(f"slash-{mode}", mode, "s3://bucket/in/", f"s3://bucket/o8-{mode}/", keys=rels)
    if mode == "manifest":
        plan.shards = [Shard("shard-0.jsonl", rels)]
        lines = [
            {"image": "s3://bucket/in/x.jpg", "status": "ok", "result": with_persons(1)},
            {"image": "s3://bucket/in//x.jpg", "status": "error", "error": {"code": "invalid_image", "message": "no"}},
        ]
        saved(s3, plan)
        put_out(s3, plan, "shard-0.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode())
    else:
        saved(s3, plan)
        put_out(s3, plan, "x.jpg", envelope(None, with_persons(1)))
        put_out(s3, plan, "/x.jpg", b'{"error": {"code": "invalid_image", "message": "no"}}')
    summary = finalize(s3, plan, JOB)
    assert [f["key"] for f in summary["failures"]] == ["in//x.jpg"]
    assert read(s3, f"o8-{mode}/keypoints//x.jpg.json")["error"]["code"] == "invalid_image"
    if mode == "images":
        assert read(s3, f"o8-{mode}/keypoints/x.jpg.json") == named(with_persons(1), "s3://bucket/in/x.jpg")


def test_a_page_finalised_before_persons_were_counted_gives_no_total(s3: Any) -> None:
    plan = saved(s3, JobPlan("old", "images", "s3://bucket/in/", "s3://bucket/o7/", keys=["ok.jpg"]))
    put_out(s3, plan, "ok.jpg", envelope(None, with_persons(1)))
    assert finalize(s3, plan, JOB)["persons"] == 1
    page = page_outcome_uri(plan, "Completed", 0)
    outcome = read(s3, page.key)
    del outcome["persons"], outcome["images_with_persons"]
    s3.put_object(Bucket=page.bucket, Key=page.key, Body=json.dumps(outcome).encode())
    reduce_group(s3, plan, "Completed", 0)
    summary = write_summary(s3, plan, JOB)
    assert (summary["persons"], summary["images_with_persons"]) == (None, None)  # not a total missing pages


class ReadsRefused:
    """The real moto client as S3 answers a role whose listing is narrowed to a prefix: every GET of a
    missing key is a 403 (S3 may not say 404), while listing still works."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def get_object(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    def list_objects_v2(self, **kwargs: Any) -> Any:
        return self.s3.list_objects_v2(**kwargs)


def test_a_refused_read_of_a_key_that_is_not_listed_is_a_missing_object(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="o9/there.json", Body=b"{}")
    refused = ReadsRefused(s3)
    assert read_object(refused, S3Uri("bucket", "o9/missing.json")) is None
    assert read_object(refused, S3Uri("bucket", "o9/there.js")) is None  # a prefix of a key is not the key
    with pytest.raises(ClientError):  # the object is there: the refusal is real
        read_object(refused, S3Uri("bucket", "o9/there.json"))


@pytest.mark.parametrize(
    ("counts", "line"),
    [
        ({"persons": 7, "images_with_persons": 2}, "persons:  7 found, in 2 image(s)"),
        ({}, None),  # a summary written before persons were counted: no line rather than a false 0
        ({"persons": None, "images_with_persons": None}, None),
    ],
)
def test_the_report_shows_the_person_total(counts: dict[str, int], line: str | None) -> None:
    summary = {"images": 3, "done": 2, "failed": 1, "output": "s3://bucket/o/", "failures": [], **counts}
    report = format_report({"TransformJobName": "j", "TransformJobStatus": "Completed"}, summary).split("\n")
    assert [x for x in report if x.startswith("persons:")] == ([line] if line else [])


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
