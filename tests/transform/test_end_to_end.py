"""The main flow on the embedded stack with the real model on the CPU: images under a prefix (nested
folders, spaces, unicode, corrupt files) -> `pose-batch transform` in both modes -> outputs at the
mirrored keys, error records, the summary, the SNS notification; results equal the direct server's."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from batch.commands.transform import execute
from batch.output_layout import annotated_key
from batch.transform.launcher import LaunchError, LaunchOptions
from tests.builders import encode, gradient
from tests.conftest import ServerFactory
from tests.transform.jobs import TransformStack, objects

pytestmark = pytest.mark.slow

INPUT = "e2e/input/"
CORRUPT = ("corrupt/not an image.jpg", "corrupt/empty.jpg")


def build_inputs(sample_images: dict[str, bytes]) -> dict[str, bytes]:
    zidane_png = encode(Image.open(io.BytesIO(sample_images["zidane.jpg"])), "PNG")
    return {
        "nested/deeper/bus.jpg": sample_images["bus.jpg"],
        "nested/zidane.jpg": sample_images["zidane.jpg"],
        "with space/bus copy.jpg": sample_images["bus.jpg"],
        "ünïcødé/zidané 2.png": zidane_png,
        "top level.jpg": encode(gradient(320, 240), "JPEG"),
        # S3 keys are exact strings: `input//top level.jpg` is another object, with its own outputs.
        "/top level.jpg": sample_images["zidane.jpg"],
        # Line separators are legal in S3 keys: the manifest line holding it must stay one line.
        "line\u2028sep\x85/bus.jpg": sample_images["bus.jpg"],
        CORRUPT[0]: b"this is not an image",
        CORRUPT[1]: b"",
    }


@dataclass
class Run:
    mode: str
    code: int
    summary: dict[str, Any]
    outputs: dict[str, bytes]
    inputs: dict[str, bytes]


@pytest.fixture(scope="module")
def inputs(transform_stack: TransformStack, sample_images: dict[str, bytes]) -> dict[str, bytes]:
    s3 = transform_stack.stack.client("s3")
    files = build_inputs(sample_images)
    for rel, body in files.items():
        s3.put_object(Bucket=transform_stack.bucket, Key=INPUT + rel, Body=body)
    return files


@pytest.fixture(scope="module", params=["images", "manifest"])
def run(request: pytest.FixtureRequest, transform_stack: TransformStack, inputs: dict[str, bytes]) -> Run:
    mode = request.param
    bucket = transform_stack.bucket
    options = LaunchOptions(
        input=f"s3://{bucket}/{INPUT}",
        output=f"s3://{bucket}/e2e/output-{mode}/",
        model_data=transform_stack.model_data,
        mode=mode,
        instance_type="ml.m5.xlarge",
        # manifest mode: two instances, each given several shards
        instance_count=2 if mode == "manifest" else 1,
    )
    code, summary = execute(
        options, wait=True, poll_s=0.5, summary_wait_s=90, show_progress=False, clients=transform_stack.stack.client
    )
    assert summary is not None
    outputs = objects(transform_stack.stack.client("s3"), bucket, f"e2e/output-{mode}/")
    return Run(mode, code, summary, outputs, inputs)


def good(run: Run) -> list[str]:
    return [rel for rel in run.inputs if rel not in CORRUPT]


def test_job_completes_and_exits_zero(run: Run) -> None:
    assert run.code == 0
    assert run.summary["status"] == "Completed"


def test_every_input_has_its_outputs_at_the_mirrored_keys(run: Run) -> None:
    keypoints = {k for k in run.outputs if k.startswith("keypoints/")}
    annotated = {k for k in run.outputs if k.startswith("annotated/")}
    assert keypoints == {f"keypoints/{rel}.json" for rel in run.inputs}
    assert annotated == {annotated_key(rel) for rel in good(run)}  # x.png -> annotated/x.png.jpg
    for rel in good(run):
        record = json.loads(run.outputs[f"keypoints/{rel}.json"])
        assert "persons" in record and "annotated_jpeg_base64" not in record
        assert run.outputs[annotated_key(rel)][:2] == b"\xff\xd8"  # a JPEG
    assert json.loads(run.outputs["keypoints/nested/deeper/bus.jpg.json"])["persons"]
    assert json.loads(run.outputs["keypoints/top level.jpg.json"])["persons"] == []
    assert json.loads(run.outputs["keypoints//top level.jpg.json"])["persons"]  # zidane, not the gradient


def test_every_record_names_its_source_image(run: Run) -> None:
    assert run.summary["input"].endswith("/" + INPUT)
    for rel in good(run):
        record = json.loads(run.outputs[f"keypoints/{rel}.json"])
        assert record["source"] == run.summary["input"] + rel, rel
        assert record["schema_version"] == 2


def persons_written(run: Run) -> tuple[int, int]:
    """(persons, images with at least one) over the records the job actually wrote."""
    counts = [len(json.loads(run.outputs[f"keypoints/{rel}.json"]).get("persons", [])) for rel in run.inputs]
    return sum(counts), sum(1 for n in counts if n)


def test_corrupt_files_get_error_records(run: Run) -> None:
    for rel in CORRUPT:
        record = json.loads(run.outputs[f"keypoints/{rel}.json"])
        assert set(record) == {"error"}
        assert record["error"]["code"] and record["error"]["message"]


def test_summary_counts_every_image_once(run: Run) -> None:
    summary = json.loads(run.outputs["_SUMMARY.json"])
    assert summary == run.summary
    assert (summary["images"], summary["done"], summary["failed"]) == (9, 7, 2)
    assert sorted(f["key"] for f in summary["failures"]) == sorted(INPUT + rel for rel in CORRUPT)
    assert summary["timings"]["transform_seconds"] > 0 and summary["timings"]["images_per_second"] > 0
    persons, with_persons = persons_written(run)
    assert persons > with_persons > 0  # bus and zidane hold several persons; the gradient none
    assert (summary["persons"], summary["images_with_persons"]) == (persons, with_persons)


def test_one_sns_notification_with_the_status(run: Run, transform_stack: TransformStack) -> None:
    envelopes = transform_stack.notifications.wait_for(run.summary["job_name"])
    assert len(envelopes) == 1
    assert envelopes[0]["Subject"].endswith(": Completed")
    message = envelopes[0]["Message"]
    assert "9 in total, 7 done, 2 failed" in message
    persons, with_persons = persons_written(run)
    assert f"Persons: {persons} found, in {with_persons} image(s)." in message
    assert f"s3://{transform_stack.bucket}/e2e/output-{run.mode}/" in message


def test_results_equal_the_direct_servers(run: Run, server_factory: ServerFactory) -> None:
    url = server_factory()
    for rel in good(run):
        direct = httpx.post(
            f"{url}/invocations", content=run.inputs[rel], headers={"Content-Type": "image/*"}, timeout=60
        ).json()
        batch = json.loads(run.outputs[f"keypoints/{rel}.json"])
        assert batch["image"] == direct["image"]
        assert len(batch["persons"]) == len(direct["persons"]), rel
        for ours, theirs in zip(batch["persons"], direct["persons"], strict=True):
            assert ours["score"] == pytest.approx(theirs["score"], abs=1e-3)
            assert ours["box"] == pytest.approx(theirs["box"], abs=0.05)
            assert [v for kp in ours["keypoints"] for v in kp] == pytest.approx(
                [v for kp in theirs["keypoints"] for v in kp], abs=0.05
            )


def test_what_the_job_cannot_carry_is_refused_before_it_starts_and_the_job_completes(
    transform_stack: TransformStack, sample_images: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A file over the payload limit (images mode), a key whose mirrored key passes S3's 1,024 bytes, an
    input whose annotated name is another input's own (`a.png` -> `annotated/a.png.jpg`, `a.png.jpg`'s):
    each is flagged at launch, gets its error record or summary entry, and the others finish."""
    s3, bucket = transform_stack.stack.client("s3"), transform_stack.bucket
    long_rel = "deep/" + "x" * 1000 + ".jpg"
    s3.put_object(Bucket=bucket, Key="big/ok.jpg", Body=sample_images["zidane.jpg"])
    s3.put_object(Bucket=bucket, Key="big/huge.bin", Body=os.urandom(1024 * 1024 + 1))
    s3.put_object(Bucket=bucket, Key=f"big/{long_rel}", Body=sample_images["bus.jpg"])
    s3.put_object(Bucket=bucket, Key="big/a.png", Body=encode(gradient(320, 240), "PNG"))
    s3.put_object(Bucket=bucket, Key="big/a.png.jpg", Body=sample_images["bus.jpg"])
    options = LaunchOptions(
        input=f"s3://{bucket}/big/",
        output=f"s3://{bucket}/big-out/",
        model_data=transform_stack.model_data,
        mode="images",  # auto would pick manifest mode, which carries the large file
        max_payload_mb=1,
    )
    code, summary = execute(
        options, wait=True, poll_s=0.5, summary_wait_s=90, show_progress=False, clients=transform_stack.stack.client
    )
    warning = capsys.readouterr().err
    assert "3 input(s) kept out of the job" in warning and "huge.bin" in warning and "key_too_long" in warning
    assert code == 0 and summary is not None and summary["status"] == "Completed"
    assert (summary["done"], summary["failed"]) == (2, 3)
    codes = {f["key"]: f["error"]["code"] for f in summary["failures"]}
    assert codes == {
        "big/huge.bin": "payload_too_large",
        f"big/{long_rel}": "key_too_long",
        "big/a.png": "annotated_name_taken",
    }
    taken = json.loads(s3.get_object(Bucket=bucket, Key="big-out/keypoints/a.png.json")["Body"].read())["error"]
    assert "annotated/a.png.jpg" in taken["message"] and "a.png.jpg's own" in taken["message"]
    kept = s3.get_object(Bucket=bucket, Key="big-out/annotated/a.png.jpg")["Body"].read()
    assert Image.open(io.BytesIO(kept)).size == (750, 1000)  # a.png.jpg's (the bus), not a.png's (320 x 240)
    record = json.loads(s3.get_object(Bucket=bucket, Key="big-out/keypoints/huge.bin.json")["Body"].read())
    assert record["error"]["code"] == "payload_too_large" and "--mode manifest" in record["error"]["message"]
    assert json.loads(s3.get_object(Bucket=bucket, Key="big-out/keypoints/ok.jpg.json")["Body"].read())["persons"]
    envelopes = transform_stack.notifications.wait_for(summary["job_name"])
    assert [e["Subject"].rsplit(": ", 1)[1] for e in envelopes] == ["Completed"]
    assert "key_too_long" in envelopes[0]["Message"]


@pytest.mark.parametrize(
    ("source", "output", "message"),
    [
        ("empty/", "empty-out/", "no objects"),
        ("e2e/", "e2e/input/out/", "must not contain each other"),
    ],
)
def test_launch_refuses_what_cannot_work(
    transform_stack: TransformStack, source: str, output: str, message: str
) -> None:
    bucket = transform_stack.bucket
    options = LaunchOptions(
        input=f"s3://{bucket}/{source}", output=f"s3://{bucket}/{output}", model_data=transform_stack.model_data
    )
    with pytest.raises(LaunchError, match=message):
        execute(options, wait=False, clients=transform_stack.stack.client)
