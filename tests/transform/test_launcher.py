"""The CreateTransformJob request the launcher builds, per mode."""

from __future__ import annotations

import pytest

from batch.transform.launcher import (
    LaunchOptions,
    default_job_name,
    default_model_name,
    images_sizing,
    key_refusals,
    transform_request,
)
from batch.transform.plan import PLAN_ENV, JobPlan, Mode


@pytest.mark.parametrize(
    ("mode", "content_type", "split", "strategy", "assemble", "env_key"),
    [
        ("images", "application/x-image", "None", "SingleRecord", "None", "POSE_EMBED_ANNOTATED"),
        ("manifest", "application/jsonlines", "Line", "MultiRecord", "Line", "POSE_ALLOWED_BUCKETS"),
    ],
)
def test_request_per_mode(
    mode: Mode, content_type: str, split: str, strategy: str, assemble: str, env_key: str
) -> None:
    options = LaunchOptions(
        input="s3://in-b/in/",
        output="s3://out-b/out/",
        model_data="s3://m/model.tar.gz",
        mode=mode,
        instance_count=3,
        max_concurrent=5,
        timeout_s=30,
        max_retries=1,
        environment={"POSE_CONF": "0.4"},
    )
    plan = JobPlan("job-1", options.mode, options.input, options.output, keys=["a.jpg"])
    request = transform_request(options, plan, "model-1")
    assert request["TransformInput"]["ContentType"] == content_type
    assert request["TransformInput"]["SplitType"] == split
    assert request["BatchStrategy"] == strategy
    assert request["TransformOutput"]["AssembleWith"] == assemble
    assert request["TransformOutput"]["S3OutputPath"] == "s3://out-b/out/_transform/job-1/out/"
    assert request["MaxConcurrentTransforms"] == 5
    assert request["MaxConcurrentTransforms"] * request["MaxPayloadInMB"] <= 100
    assert request["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 1}
    assert request["TransformResources"]["InstanceCount"] == 3
    env = request["Environment"]
    assert env["POSE_CONF"] == "0.4" and env[PLAN_ENV] == "s3://out-b/out/_transform/job-1/plan.json" and env_key in env
    if mode == "manifest":
        assert env["POSE_ALLOWED_BUCKETS"] == "in-b,out-b"


def test_names() -> None:
    options = LaunchOptions(input="s3://bkt/in/", output="s3://bkt/out/", model_data="s3://bkt/model.tar.gz")
    assert default_model_name(options) == default_model_name(options)
    assert default_model_name(options) != default_model_name(
        LaunchOptions("s3://bkt/in/", "s3://bkt/o/", "s3://bkt/x.tar.gz")
    )
    assert len(default_job_name("manifest")) <= 63


MB = 1024 * 1024


@pytest.mark.parametrize(
    ("sizes", "concurrent", "payload", "expected", "refused"),
    [
        # COCO-sized images: the mode's defaults.
        ({"a.jpg": 150_000}, None, None, (16, 6), []),
        # Phone photos and a 12.7 MB PNG: the payload follows the largest, concurrency fits under 100.
        ({"a.jpg": 4 * MB, "b.png": int(12.7 * MB)}, None, None, (7, 13), []),
        # Past 25 MB the concurrency would fall below 4: kept out of the job, the rest goes on.
        ({"a.jpg": 4 * MB, "c.tif": 30 * MB}, None, None, (16, 6), ["c.tif"]),
        ({"a.jpg": 4 * MB, "b.png": 20 * MB, "c.tif": 30 * MB}, None, None, (5, 20), ["c.tif"]),
        # What the user set is kept; the other limit follows from it.
        ({"a.jpg": 4 * MB, "b.png": 2 * MB}, None, 3, (16, 3), ["a.jpg"]),
        ({"a.jpg": 4 * MB, "b.png": 40 * MB}, 2, None, (2, 40), []),
    ],
)
def test_images_mode_sizes_the_payload_from_the_objects(
    sizes: dict[str, int], concurrent: int | None, payload: int | None, expected: tuple[int, int], refused: list[str]
) -> None:
    sizing, refusals = images_sizing(
        sizes, default_concurrent=16, default_payload_mb=6, max_concurrent=concurrent, max_payload_mb=payload
    )
    assert (sizing.max_concurrent, sizing.max_payload_mb) == expected
    assert sizing.max_concurrent * sizing.max_payload_mb <= 100
    assert [r.rel for r in refusals] == refused
    assert all(r.code == "payload_too_large" and "--mode manifest" in r.message for r in refusals)


def test_inputs_with_over_long_output_keys_are_refused_in_either_mode() -> None:
    fits, too_long = "a/" + "x" * 900 + ".jpg", "a/" + "x" * 1015 + ".jpg"
    for mode in ("images", "manifest"):
        plan = JobPlan("job-1", mode, "s3://bkt/in/", "s3://bkt/out/")  # type: ignore[arg-type]
        assert [r.rel for r in key_refusals(plan, [fits, too_long, "ok.jpg"])] == [too_long]
        assert key_refusals(plan, [too_long])[0].code == "key_too_long"
