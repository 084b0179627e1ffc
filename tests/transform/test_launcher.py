"""The CreateTransformJob request the launcher builds, per mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from batch.local.moto_server import MotoServer
from batch.transform.launcher import (
    LaunchError,
    LaunchOptions,
    build_plan,
    container_manifest_lines,
    default_job_name,
    default_model_name,
    images_ceiling_mb,
    images_sizing,
    key_refusals,
    transform_request,
)
from batch.transform.mode_choice import AUTO_MANIFEST_FROM, ModeRequest, choose_mode
from batch.transform.plan import DEFAULT_MAX_IMAGES_PER_SHARD, PLAN_ENV, JobPlan, Mode


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


def many(count: int, size: int = 150_000) -> dict[str, int]:
    return {f"img/{i:05d}.jpg": size for i in range(count)}


@pytest.mark.parametrize(
    ("requested", "sizes", "ceiling", "mode", "says"),
    [
        ("auto", many(AUTO_MANIFEST_FROM - 1), 25, "images", "fewer than 64"),
        ("auto", many(AUTO_MANIFEST_FROM), 25, "manifest", "at least 64"),
        # One object images mode cannot carry: manifest mode, however small the job.
        ("auto", {"a.jpg": 4 * MB, "scan.tif": 26 * MB}, 25, "manifest", "1 of the 2 objects are over 25 MB"),
        ("auto", {"a.jpg": 4 * MB}, 3, "manifest", "over 3 MB"),  # --max-payload-mb 3
        # What the user asked for is kept.
        ("images", many(10_000), 25, "images", "--mode images"),
        ("manifest", many(2), 25, "manifest", "--mode manifest"),
    ],
)
def test_auto_mode_picks_manifest_from_the_crossover_or_for_objects_images_mode_cannot_carry(
    requested: ModeRequest, sizes: dict[str, int], ceiling: int, mode: Mode, says: str
) -> None:
    choice = choose_mode(requested, sizes, images_ceiling_mb=ceiling)
    assert choice.mode == mode and says in choice.reason
    assert choice.automatic == (requested == "auto")
    assert choice.describe().startswith(f"{mode} mode (")


def test_the_images_ceiling_follows_the_users_limits() -> None:
    base = LaunchOptions("s3://bkt/in/", "s3://bkt/out/", "s3://bkt/m.tar.gz")
    assert images_ceiling_mb(base) == 25
    assert images_ceiling_mb(LaunchOptions("s3://b1/in/", "s3://b1/o/", "s3://b1/m", max_payload_mb=3)) == 3
    assert images_ceiling_mb(LaunchOptions("s3://b1/in/", "s3://b1/o/", "s3://b1/m", max_concurrent=10)) == 10


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with MotoServer() as moto:
        client = moto.client("s3")
        client.create_bucket(Bucket="bkt")
        yield client


@pytest.mark.parametrize(("count", "mode"), [(3, "images"), (AUTO_MANIFEST_FROM, "manifest")])
def test_the_default_mode_is_chosen_from_the_listing(s3: Any, count: int, mode: Mode) -> None:
    prefix = f"auto-{count}/"
    for i in range(count):
        s3.put_object(Bucket="bkt", Key=f"{prefix}{i:03d}.jpg", Body=b"x")
    options = LaunchOptions(f"s3://bkt/{prefix}", f"s3://bkt/out-{count}/", "s3://bkt/m.tar.gz")
    assert options.mode == "auto"
    plan, _, choice = build_plan(s3, options)
    assert plan.mode == choice.mode == mode and choice.automatic
    assert plan.job_name.startswith(f"posebatch-{mode}-")
    request = transform_request(options, plan, "model-1")
    assert request["TransformInput"]["SplitType"] == ("Line" if mode == "manifest" else "None")


def test_manifest_shards_fit_in_the_containers_request_cap() -> None:
    """The container refuses a request of more than POSE_MAX_MANIFEST_LINES lines (a 413); a request never
    holds more lines than its shard, so the launcher keeps shards at most that long."""
    assert container_manifest_lines({}) == 1000 >= DEFAULT_MAX_IMAGES_PER_SHARD
    assert container_manifest_lines({"POSE_MAX_MANIFEST_LINES": "5000"}) == 5000
    with pytest.raises(LaunchError, match="not valid"):
        container_manifest_lines({"POSE_MAX_MANIFEST_LINES": "0"})
