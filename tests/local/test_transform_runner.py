"""The stand-in's rules as plain functions: precedence, packing, assembly, spreading, naming, events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batch.local.sagemaker.transform_job_record import TransformJob, container_environment, resolve_parameters
from batch.local.sagemaker.transform_job_service import _relative
from batch.local.sagemaker.transform_runner import FileFailed, InputFile, assemble, pack_records, spread_over_instances

CONTAINER = {"MaxConcurrentTransforms": 32, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


@pytest.mark.parametrize(
    ("request_fields", "answer", "expected"),
    [
        ({}, None, (1, 6, "SingleRecord")),  # SageMaker's defaults
        ({}, CONTAINER, (32, 6, "MultiRecord")),  # the container's answer
        ({"MaxConcurrentTransforms": 4, "MaxPayloadInMB": 2}, CONTAINER, (4, 2, "MultiRecord")),
        ({"BatchStrategy": "SingleRecord"}, CONTAINER, (32, 6, "SingleRecord")),  # the request wins
        ({"BatchStrategy": "single_record"}, {"BatchStrategy": "MultiRecord"}, (1, 6, "SingleRecord")),
        ({"MaxPayloadInMB": 0}, CONTAINER, (32, 0, "MultiRecord")),  # 0 is a value, not "unset"
    ],
)
def test_execution_parameter_precedence(
    request_fields: dict[str, Any], answer: dict[str, Any] | None, expected: tuple[int, int, str]
) -> None:
    params = resolve_parameters(request_fields, answer)
    assert (params.max_concurrent, params.max_payload_mb, params.batch_strategy) == expected


def test_client_config_defaults_and_values() -> None:
    assert (resolve_parameters({}, None).timeout_s, resolve_parameters({}, None).max_retries) == (600, 3)
    config = {"ModelClientConfig": {"InvocationsTimeoutInSeconds": 5, "InvocationsMaxRetries": 0}}
    assert (resolve_parameters(config, None).timeout_s, resolve_parameters(config, None).max_retries) == (5, 0)


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({}, {"SAGEMAKER_BATCH": "true"}),
        (
            {"MaxPayloadInMB": 1, "BatchStrategy": "MultiRecord", "MaxConcurrentTransforms": 8},
            {
                "SAGEMAKER_BATCH": "true",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
                "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
                "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "8",
            },
        ),
    ],
)
def test_sagemaker_variables_only_where_the_request_sets_them(
    request_fields: dict[str, Any], expected: dict[str, str]
) -> None:
    model = {"PrimaryContainer": {"Environment": {"POSE_CONF": "0.3", "A": "model"}}}
    env = container_environment(model, {**request_fields, "Environment": {"A": "job"}})
    assert env == {"POSE_CONF": "0.3", "A": "job", **expected}


@pytest.mark.parametrize(
    ("sizes", "limit", "expected"),
    [
        ([3, 3, 3], None, [9]),
        ([3, 3, 3], 6, [6, 3]),
        ([3, 3, 3], 5, [3, 3, 3]),
        ([5, 1, 4], 5, [5, 5]),
    ],
)
def test_multi_record_packs_whole_records_within_the_limit(
    sizes: list[int], limit: int | None, expected: list[int]
) -> None:
    records = [bytes([65 + i]) * (size - 1) + b"\n" for i, size in enumerate(sizes)]
    batches = pack_records(records, limit)
    assert [len(b) for b in batches] == expected
    assert b"".join(batches) == b"".join(records)


def test_a_record_over_the_limit_fails_its_file() -> None:
    with pytest.raises(FileFailed, match="exceeds the payload limit"):
        pack_records([b"x" * 10 + b"\n"], 5)


@pytest.mark.parametrize(
    ("parts", "assemble_with", "expected"),
    [
        ([b"{}", b"{}"], "Line", b"{}\n{}\n"),
        ([b"a\nb\n", b"c\n"], "Line", b"a\nb\nc\n"),  # MultiRecord answers are already lines
        ([b"{}", b"{}"], "None", b"{}{}"),
    ],
)
def test_assembly(parts: list[bytes], assemble_with: str, expected: bytes) -> None:
    assert assemble(parts, assemble_with) == expected


def test_files_are_spread_over_instances_by_key() -> None:
    files = [InputFile(key=f"in/{name}", rel=name, size=1) for name in "edcba"]
    groups = spread_over_instances(files, 2)
    assert [[f.rel for f in g] for g in groups] == [["a", "c", "e"], ["b", "d"]]


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("in/a/b.jpg", "in/", "a/b.jpg"),
        ("in/a/b.jpg", "in", "a/b.jpg"),
        ("in/a/b.jpg", "", "in/a/b.jpg"),
        ("in/ab/c.jpg", "in/a", "ab/c.jpg"),
    ],
)
def test_relative_path_below_the_input_prefix(key: str, prefix: str, expected: str) -> None:
    assert _relative(key, prefix) == expected


def test_state_change_event_is_shaped_like_aws() -> None:
    job = TransformJob(request={"TransformJobName": "j", "ModelName": "m"}, arn="arn:aws:sagemaker:x")
    job.record(["a"], [("b", "HTTP 400")])
    job.finish()
    entry = job.state_change_event()
    assert (entry["Source"], entry["DetailType"]) == ("aws.sagemaker", "SageMaker Transform Job State Change")
    detail = json.loads(entry["Detail"])
    assert detail["TransformJobStatus"] == "Failed" and detail["TransformJobName"] == "j"
    assert detail["FailureReason"] == "ClientError: 1 of 2 input files failed: b: HTTP 400"
    assert isinstance(detail["TransformEndTime"], int)
