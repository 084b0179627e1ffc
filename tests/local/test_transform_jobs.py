"""The Batch Transform stand-in over plain boto3, driving the real container with the real model:
SageMaker's semantics for `.out` naming, execution parameters, MultiRecord, retries after a crash,
failed files, stop, and the control plane's answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch.local.sagemaker.transform_job_service import service
from tests.local.observed_container import OBSERVED_SERVE
from tests.transform.jobs import TransformStack, objects, wait_until_job_ends

pytestmark = pytest.mark.slow

MODEL = "pose-stand-in-test"


@pytest.fixture(scope="module")
def stand_in(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, sample_images: dict[str, bytes]
) -> Iterator[TransformStack]:
    # Every container runs behind the observing wrapper; each job's Environment says what it does.
    started = TransformStack.start(
        tmp_path_factory.mktemp("stack"), model_path, bucket="posebatch-stand-in", serve_command=OBSERVED_SERVE
    )
    sagemaker, s3 = started.stack.client("sagemaker"), started.stack.client("s3")
    sagemaker.create_model(
        ModelName=MODEL,
        PrimaryContainer={"Image": "posebatch:test", "ModelDataUrl": started.model_data},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/test",
    )
    for i in range(6):
        name = "bus.jpg" if i % 2 else "zidane.jpg"
        s3.put_object(Bucket=started.bucket, Key=f"images/{i}-{name}", Body=sample_images[name])
    yield started
    started.stack.stop()


def job_request(stand_in: TransformStack, name: str, source: str, **overrides: Any) -> dict[str, Any]:
    bucket = stand_in.bucket
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": MODEL,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{source}"}},
            "ContentType": "application/x-image",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{bucket}/out/{name}/", "Accept": "application/json"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
    return request


def put_manifest(stand_in: TransformStack, key: str, indices: list[int]) -> list[str]:
    lines = [f"s3://{stand_in.bucket}/images/{i}-{'bus.jpg' if i % 2 else 'zidane.jpg'}" for i in indices]
    body = "".join(line + "\n" for line in lines).encode()
    stand_in.stack.client("s3").put_object(Bucket=stand_in.bucket, Key=key, Body=body)
    return lines


def kill_once_after(responses: int, marker: Path) -> dict[str, str]:
    """A job Environment under which the container SIGKILLs itself right after its `responses`th
    answer, once (the marker file then exists)."""
    return {"OBSERVED_KILL_AFTER": str(responses), "OBSERVED_KILL_MARKER": str(marker)}


def test_out_files_keep_the_relative_path_and_the_container_fills_in_parameters(
    stand_in: TransformStack, sample_images: dict[str, bytes], tmp_path: Path
) -> None:
    s3, sagemaker = stand_in.stack.client("s3"), stand_in.stack.client("sagemaker")
    keys = ["names/a/b c/ü ñ.jpg", "names/top.jpg"]
    for key in keys:
        s3.put_object(Bucket=stand_in.bucket, Key=key, Body=sample_images["bus.jpg"])
    record = tmp_path / "execution-parameters.jsonl"  # what the container answered the stand-in
    sagemaker.create_transform_job(
        **job_request(stand_in, "naming", "names/", Environment={"OBSERVED_RECORD": str(record)})
    )
    described = wait_until_job_ends(sagemaker, "naming")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    outputs = objects(s3, stand_in.bucket, "out/naming/")
    assert sorted(outputs) == ["a/b c/ü ñ.jpg.out", "top.jpg.out"]
    assert json.loads(outputs["top.jpg.out"])["persons"]
    params = service(stand_in.stack).job("naming").params
    answers = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    assert params is not None and answers
    # Nothing in the request: the container's answer wins over SageMaker's defaults.
    assert params.max_concurrent == answers[0]["MaxConcurrentTransforms"]
    assert params.max_payload_mb == answers[0]["MaxPayloadInMB"]
    assert params.batch_strategy == "MultiRecord"


def test_multi_record_packs_lines_per_file_and_never_mixes_files(stand_in: TransformStack) -> None:
    sagemaker, s3 = stand_in.stack.client("sagemaker"), stand_in.stack.client("s3")
    first = put_manifest(stand_in, "multi/one.jsonl", [0, 1, 2])
    second = put_manifest(stand_in, "multi/two.jsonl", [3, 4])
    request = job_request(
        stand_in,
        "multi",
        "multi/",
        BatchStrategy="MULTI_RECORD",
        MaxPayloadInMB=1,
        Environment={"POSE_ALLOWED_BUCKETS": stand_in.bucket},
        TransformInput={"SplitType": "Line", "ContentType": "application/jsonlines"},
        TransformOutput={"AssembleWith": "Line", "Accept": "application/jsonlines"},
    )
    sagemaker.create_transform_job(**request)
    described = wait_until_job_ends(sagemaker, "multi")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert service(stand_in.stack).job("multi").responses == 2  # one request per file
    outputs = objects(s3, stand_in.bucket, "out/multi/")
    for name, lines in (("one.jsonl.out", first), ("two.jsonl.out", second)):
        answers = [json.loads(line) for line in outputs[name].decode().splitlines()]
        assert [a["image"] for a in answers] == lines
        assert all(a["status"] == "ok" for a in answers)


def test_a_killed_container_is_restarted_and_requests_retried(stand_in: TransformStack, tmp_path: Path) -> None:
    sagemaker, s3 = stand_in.stack.client("sagemaker"), stand_in.stack.client("s3")
    lines = put_manifest(stand_in, "crash/all.jsonl", [0, 1, 2, 3, 4, 5])
    killed = tmp_path / "killed"
    request = job_request(
        stand_in,
        "crash",
        "crash/",
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=2,
        ModelClientConfig={"InvocationsMaxRetries": 3, "InvocationsTimeoutInSeconds": 60},
        Environment={"POSE_ALLOWED_BUCKETS": stand_in.bucket, **kill_once_after(2, killed)},
        TransformInput={"SplitType": "Line", "ContentType": "application/jsonlines"},
        TransformOutput={"AssembleWith": "Line", "Accept": "application/jsonlines"},
    )
    sagemaker.create_transform_job(**request)
    described = wait_until_job_ends(sagemaker, "crash")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    job = service(stand_in.stack).job("crash")
    assert killed.exists() and job.instances[0].restarts == 1 and job.retries >= 1
    assert job.params is not None and job.params.max_concurrent == 2  # the request beats the container
    answers = [json.loads(line) for line in objects(s3, stand_in.bucket, "out/crash/")["all.jsonl.out"].splitlines()]
    assert [a["image"] for a in answers] == lines  # nothing lost, nothing twice, in order
    assert all(a["status"] == "ok" for a in answers)


def test_without_retries_the_failed_file_gets_no_out_and_the_job_fails(
    stand_in: TransformStack, tmp_path: Path
) -> None:
    sagemaker, s3 = stand_in.stack.client("sagemaker"), stand_in.stack.client("s3")
    killed = tmp_path / "killed"
    request = job_request(
        stand_in,
        "no-retry",
        "images/",
        MaxConcurrentTransforms=1,
        ModelClientConfig={"InvocationsMaxRetries": 0},
        Environment=kill_once_after(1, killed),
    )
    sagemaker.create_transform_job(**request)
    job = wait_until_job_ends(sagemaker, "no-retry")
    assert job["TransformJobStatus"] == "Failed" and killed.exists()
    outputs = objects(s3, stand_in.bucket, "out/no-retry/")
    # Files go in key order; the second one's only request hit the dead container.
    assert sorted(outputs) == [
        "0-zidane.jpg.out",
        "2-zidane.jpg.out",
        "3-bus.jpg.out",
        "4-zidane.jpg.out",
        "5-bus.jpg.out",
    ]
    assert "1-bus.jpg" in job["FailureReason"] and "1 of 6 input files failed" in job["FailureReason"]


def test_stop_ends_the_job_stopped(stand_in: TransformStack) -> None:
    sagemaker = stand_in.stack.client("sagemaker")
    sagemaker.create_transform_job(**job_request(stand_in, "to-stop", "images/"))
    with pytest.raises(ClientError, match="ResourceInUse"):
        sagemaker.create_transform_job(**job_request(stand_in, "to-stop", "images/"))
    sagemaker.stop_transform_job(TransformJobName="to-stop")
    assert wait_until_job_ends(sagemaker, "to-stop")["TransformJobStatus"] == "Stopped"
    listed = sagemaker.list_transform_jobs(NameContains="to-st", StatusEquals="Stopped")["TransformJobSummaries"]
    assert [s["TransformJobName"] for s in listed] == ["to-stop"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"TransformJobName": "bad_name"}, "must match"),
        ({"ModelName": "no-such-model"}, "Could not find model"),
        ({"MaxConcurrentTransforms": 20, "MaxPayloadInMB": 6}, "must not exceed 100"),
        ({"BatchStrategy": "Sometimes"}, "unknown batch strategy"),
        ({"ModelClientConfig": {"InvocationsMaxRetries": 9}}, "InvocationsMaxRetries must be 0-3"),
        ({"TransformInput": {"SplitType": "RecordIO"}}, "SplitType"),
        ({"TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 99}}, "InstanceCount"),
    ],
)
def test_invalid_requests_are_refused(stand_in: TransformStack, overrides: dict[str, Any], message: str) -> None:
    request = job_request(stand_in, "invalid", "images/", **overrides)
    with pytest.raises(ClientError, match=message):
        stand_in.stack.client("sagemaker").create_transform_job(**request)


def test_describing_an_unknown_job_is_a_validation_error(stand_in: TransformStack) -> None:
    with pytest.raises(ClientError, match="Could not find requested job"):
        stand_in.stack.client("sagemaker").describe_transform_job(TransformJobName="never-created")
