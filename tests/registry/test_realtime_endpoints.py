"""Real-time and serverless endpoints on the local stack, deployed with `pose-batch deploy --realtime` and
called as on AWS: plain boto3 `sagemaker-runtime.invoke_endpoint`, and `pose-batch invoke`. SageMaker's
limits hold: 6 MB (serverless 4 MB) -> 413 before any container sees the body; a container's error comes
back as a ModelError carrying its error record; serverless config bounds; a serverless endpoint starts its
container on the first request (the cold start is recorded)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from batch.local.sagemaker.endpoint_service import endpoints_of
from batch.schema import PoseResult
from tests.registry.conftest import ASSETS, RegistryStack

MB = 1024 * 1024


def test_plain_boto3_invoke_endpoint(registry_stack: RegistryStack, realtime_endpoint: dict[str, Any]) -> None:
    assert realtime_endpoint["endpoint_name"] == "posebatch-realtime" and realtime_endpoint["kind"] == "realtime"
    assert realtime_endpoint["status"] == "InService" and realtime_endpoint["follows_approvals"] == "posebatch"
    runtime = registry_stack.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint(
        EndpointName="posebatch-realtime", Body=(ASSETS / "bus.jpg").read_bytes(), ContentType="image/jpeg"
    )
    assert answer["ContentType"] == "application/json" and answer["InvokedProductionVariant"] == "AllTraffic"
    result = PoseResult.model_validate_json(answer["Body"].read())
    assert len(result.persons) >= 3 and len(result.persons[0].keypoints) == 17
    jpeg = runtime.invoke_endpoint(
        EndpointName="posebatch-realtime",
        Body=(ASSETS / "zidane.jpg").read_bytes(),
        ContentType="image/jpeg",
        Accept="image/jpeg",
        CustomAttributes="conf=0.5",
    )
    assert jpeg["ContentType"] == "image/jpeg" and jpeg["Body"].read()[:2] == b"\xff\xd8"


def test_over_6_mb_is_413_and_a_bad_image_a_model_error(registry_stack: RegistryStack, realtime_endpoint: Any) -> None:
    runtime = registry_stack.client("sagemaker-runtime")
    with pytest.raises(ClientError) as too_large:
        runtime.invoke_endpoint(EndpointName="posebatch-realtime", Body=b"\0" * (6 * MB + 1), ContentType="image/jpeg")
    assert too_large.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "exceeded 6291456 bytes" in str(too_large.value)
    # Exactly 6 MB is carried to the container, which refuses what is not an image.
    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName="posebatch-realtime", Body=b"\0" * (6 * MB), ContentType="image/jpeg")
    error = refused.value.response
    assert error["Error"]["Code"] == "ModelError" and error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert json.loads(error["OriginalMessage"])["error"]["code"] == "invalid_image"
    with pytest.raises(ClientError, match="not found"):
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"x", ContentType="image/jpeg")


def test_invoke_prints_one_line_per_file_and_writes_annotated(
    registry_stack: RegistryStack, realtime_endpoint: Any, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    (photos / "a").mkdir(parents=True)
    (photos / "a" / "bus.jpg").write_bytes((ASSETS / "bus.jpg").read_bytes())
    buffer = io.BytesIO()
    Image.open(ASSETS / "zidane.jpg").save(buffer, "PNG")
    (photos / "zidane.png").write_bytes(buffer.getvalue())
    (photos / "broken.jpg").write_bytes(b"not a picture")
    annotated = tmp_path / "annotated"

    ran = registry_stack.cli("invoke", "posebatch-realtime", str(photos), "--local", "--annotated", str(annotated))
    assert ran.code == 1, ran.err  # one file failed
    lines = [json.loads(line) for line in ran.out.splitlines()]
    by_source = {line.get("source"): line for line in lines}
    assert len(lines) == 3
    assert by_source[str(photos / "a" / "bus.jpg")]["persons"]
    assert PoseResult.model_validate(by_source[str(photos / "zidane.png")]).persons
    (error,) = [line for line in lines if "error" in line]
    assert error["error"]["code"] == "invalid_image" and "broken.jpg" in ran.err
    assert sorted(p.relative_to(annotated).as_posix() for p in annotated.rglob("*.jpg")) == [
        "a/bus.jpg",
        "zidane.png.jpg",
    ]
    assert (annotated / "a" / "bus.jpg").read_bytes()[:2] == b"\xff\xd8"

    missing = registry_stack.cli("invoke", "no-such-endpoint", str(photos / "a" / "bus.jpg"), "--local")
    assert missing.code == 2 and "no endpoint no-such-endpoint" in missing.err


def test_invoke_gives_a_fifo_and_an_oversized_file_an_error_line_without_sending_them(
    registry_stack: RegistryStack, realtime_endpoint: Any, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # nobody ever writes: reading it would block for ever
    huge = tmp_path / "huge.jpg"
    huge.write_bytes((ASSETS / "bus.jpg").read_bytes() + b"\0" * (6 * MB))
    good = tmp_path / "bus.jpg"
    good.write_bytes((ASSETS / "bus.jpg").read_bytes())

    ran = registry_stack.cli("invoke", "posebatch-realtime", str(fifo), str(huge), str(good), "--local")
    assert ran.code == 1, ran.err
    fifo_line, huge_line, good_line = (json.loads(line) for line in ran.out.splitlines())
    assert fifo_line["error"]["code"] == "unreadable_file" and "FIFO" in fifo_line["error"]["message"]
    assert huge_line["error"]["code"] == "payload_too_large"
    assert good_line["source"] == str(good) and good_line["persons"]


def test_serverless_starts_cold_and_keeps_its_limits(registry_stack: RegistryStack) -> None:
    bad = registry_stack.cli("deploy", "--realtime", "--serverless", "--local", "--memory-mb", "1000")
    assert bad.code == 2 and "serverless memory must be one of 1024" in bad.err
    sagemaker = registry_stack.client("sagemaker")
    sagemaker.create_model(
        ModelName="bounds",
        PrimaryContainer={"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/r",
    )
    for config, message in (({"MemorySizeInMB": 2048, "MaxConcurrency": 201}, "MaxConcurrency 201"),
                            ({"MemorySizeInMB": 7168, "MaxConcurrency": 1}, "MemorySizeInMB 7168")):  # fmt: skip
        with pytest.raises(ClientError, match=message):
            sagemaker.create_endpoint_config(
                EndpointConfigName="bounds",
                ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "bounds", "ServerlessConfig": config}],
            )

    ran = registry_stack.cli(
        "deploy",
        "--realtime",
        "--serverless",
        "--local",
        "--model",
        str(registry_stack.weights),
        "--max-concurrency",
        "2",
    )
    assert ran.code == 0, ran.err
    deployed = ran.json()
    assert deployed["kind"] == "serverless" and deployed["follows_approvals"] is None  # a named model is pinned
    fleet = endpoints_of(registry_stack.stack).fleet("posebatch-serverless")
    assert fleet.instance_counts() == (0, 0) and fleet.cold_starts == []  # no container until the first request
    described = sagemaker.describe_endpoint(EndpointName="posebatch-serverless")
    assert described["ProductionVariants"][0]["CurrentServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 2,
    }

    runtime = registry_stack.client("sagemaker-runtime")
    for _ in range(2):
        answer = runtime.invoke_endpoint(
            EndpointName="posebatch-serverless", Body=(ASSETS / "bus.jpg").read_bytes(), ContentType="image/jpeg"
        )
        assert PoseResult.model_validate_json(answer["Body"].read()).persons
    (cold,) = fleet.cold_starts  # the second request found the container warm
    assert cold.seconds > cold.ping_seconds > 0
    with pytest.raises(ClientError) as too_large:
        runtime.invoke_endpoint(
            EndpointName="posebatch-serverless", Body=b"\0" * (4 * MB + 1), ContentType="image/jpeg"
        )
    assert too_large.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    sagemaker.delete_endpoint(EndpointName="posebatch-serverless")
