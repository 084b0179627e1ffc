"""The CreateTransformJob request the launcher builds, per mode."""

from __future__ import annotations

import pytest

from batch.transform.launcher import LaunchOptions, default_job_name, default_model_name, transform_request
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
