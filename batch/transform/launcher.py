"""Launching a pose batch transform job: what the job carries, the model (created or reused), the job
plan and manifests, and the CreateTransformJob request. Plain boto3, so the same code drives AWS and
the local stand-in (the SDK's resources need AWS-only calls such as the default bucket and the
caller's identity).

What the launcher decides from the listing before the job starts (`build_plan`):

- Either mode: an input whose mirrored output keys (or, in images mode, the job's `.out` key) would
  pass S3's 1,024-byte key limit can never be written: refused with `key_too_long` (`key_refusals`).
- Manifest mode: a shard is never larger than the lines the container takes in one request
  (`POSE_MAX_MANIFEST_LINES`, 1,000; shards hold at most 256 images by default).
- Either mode: an input whose annotated name is another input's own (`a.png` -> `annotated/a.png.jpg`
  beside `a.png.jpg`) would overwrite, or be overwritten by, the other's annotated image: refused with
  `annotated_name_taken` (`annotated_name_refusals`; `batch.output_layout`).
- Images mode sends each object whole as one request, and SageMaker fails the *whole job* when one
  object is larger than `MaxPayloadInMB`; it also requires `MaxConcurrentTransforms x MaxPayloadInMB
  <= 100`. So the payload limit is sized from the largest object (at least the mode's 6 MB), and the
  concurrency lowered to fit (`images_sizing`). Concurrency is what lets the container batch images on
  the GPU, so it never goes below `MIN_IMAGES_CONCURRENT`: objects above 100 / 4 = 25 MB are kept out
  of the job (refused with an error record that says to use manifest mode, where the container reads
  the image from S3 itself and no request carries it).

- `--mode auto` (the default) picks the mode from the same listing (`batch.transform.mode_choice`).
- Images mode carries images only: a video (by its extension) is refused with `video_not_accepted`, saying
  to run it in manifest mode (`video_refusals`). Manifest mode gives each video a shard of its own, so one
  request holds one video, and tells the container its time limit (`POSE_VIDEO_TIME_LIMIT_S`, under the
  invocation timeout), so that a video too long for the timeout says so in its record instead of failing.

Refused inputs stay in the plan (`plan.refused`): the finaliser gives each its error record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from batch import aws
from batch.errors import AnnotatedNameTaken, KeyTooLong, PayloadTooLarge, VideoNotAccepted
from batch.output_layout import (
    MAX_KEY_BYTES,
    annotated_key,
    annotated_name_owners,
    annotated_name_taken_message,
    is_video,
    key_fits,
    keypoints_key,
)
from batch.s3_listing import list_objects
from batch.s3_uri import S3Uri
from batch.serving_model import ServingModel
from batch.transform.mode_choice import ModeChoice, ModeRequest, choose_mode
from batch.transform.plan import (
    DEFAULT_MAX_IMAGES_PER_SHARD,
    DEFAULT_SHARDS_PER_INSTANCE,
    PLAN_ENV,
    JobPlan,
    Refusal,
    build_shards,
    write_shards,
)

log = logging.getLogger(__name__)

LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/posebatch-local"
LOCAL_IMAGE_URI = "posebatch:local"


@dataclass(frozen=True)
class ModeDefaults:
    """The transform job's shape per mode."""

    content_type: str
    accept: str
    split_type: str
    batch_strategy: str
    assemble_with: str
    max_concurrent: int
    max_payload_mb: int


# Images: one image per request, many requests in flight so the container can batch them on the GPU
# (AWS's own JPEG example uses concurrency 64 with 1 MB). Manifest: a few requests, each a whole
# shard of S3 references that the container fetches and batches itself.
MODE_DEFAULTS: dict[str, ModeDefaults] = {
    "images": ModeDefaults("application/x-image", "application/json", "None", "SingleRecord", "None", 16, 6),
    "manifest": ModeDefaults("application/jsonlines", "application/jsonlines", "Line", "MultiRecord", "Line", 4, 1),
}


class LaunchError(Exception):
    """A launch that cannot go ahead; the message says why, for a person."""


@dataclass
class LaunchOptions:
    input: str
    output: str
    model_data: str
    mode: ModeRequest = "auto"
    model_package: str | None = None  # a registry package's ARN: the model is built from it (its model data)
    image_uri: str = LOCAL_IMAGE_URI
    role_arn: str = LOCAL_ROLE_ARN
    job_name: str | None = None
    model_name: str | None = None
    instance_type: str = "ml.g4dn.xlarge"
    instance_count: int = 1
    max_concurrent: int | None = None
    max_payload_mb: int | None = None
    timeout_s: int = 600
    max_retries: int = 3
    environment: dict[str, str] = field(default_factory=dict)
    shards_per_instance: int = DEFAULT_SHARDS_PER_INSTANCE
    max_images_per_shard: int = DEFAULT_MAX_IMAGES_PER_SHARD


def default_job_name(mode: str) -> str:
    return f"posebatch-{mode}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def default_model_name(options: LaunchOptions) -> str:
    """Same image, artifact and environment -> same model, so re-launches reuse it."""
    key = json.dumps([options.image_uri, options.model_data, sorted(options.environment.items())])
    if options.model_package:
        key = json.dumps([options.model_package, sorted(options.environment.items())])
    return f"posebatch-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def ensure_model(sagemaker: Any, name: str, options: LaunchOptions) -> bool:
    """Create the model unless it exists; True when created."""
    try:
        sagemaker.describe_model(ModelName=name)
        return False
    except ClientError as exc:
        if "could not find" not in str(exc).lower():
            raise
    served = ServingModel(options.image_uri, options.model_data, options.model_package)
    sagemaker.create_model(
        ModelName=name, PrimaryContainer=served.container(options.environment), ExecutionRoleArn=options.role_arn
    )
    return True


MIB = 1024 * 1024
PAYLOAD_X_CONCURRENCY = 100  # SageMaker: MaxConcurrentTransforms x MaxPayloadInMB <= 100
MIN_IMAGES_CONCURRENT = 4
MAX_IMAGES_PAYLOAD_MB = PAYLOAD_X_CONCURRENCY // MIN_IMAGES_CONCURRENT  # 25


@dataclass(frozen=True)
class Sizing:
    """The job's request limits: `MaxConcurrentTransforms` and `MaxPayloadInMB`."""

    max_concurrent: int
    max_payload_mb: int


def images_sizing(
    sizes: dict[str, int],
    *,
    default_concurrent: int,
    default_payload_mb: int,
    max_concurrent: int | None = None,
    max_payload_mb: int | None = None,
) -> tuple[Sizing, list[Refusal]]:
    """The images-mode request limits for objects of `sizes` (rel -> bytes), and the objects refused.
    An explicit `max_payload_mb` or `max_concurrent` is kept; the other is derived from it."""
    if max_payload_mb is not None:
        payload = max_payload_mb
    else:
        ceiling = PAYLOAD_X_CONCURRENCY // max_concurrent if max_concurrent else MAX_IMAGES_PAYLOAD_MB
        carried = [size for size in sizes.values() if size <= ceiling * MIB]
        payload = min(ceiling, max([default_payload_mb, *(math.ceil(size / MIB) for size in carried)]))
    concurrent = max_concurrent or max(1, min(default_concurrent, PAYLOAD_X_CONCURRENCY // max(payload, 1)))
    limit = payload * MIB
    refused = [
        Refusal(
            rel,
            PayloadTooLarge.code,
            f"{size / MIB:.1f} MB is more than images mode carries in one request ({payload} MB, with "
            f"{concurrent} requests in flight): run this prefix with --mode manifest, where the container "
            "reads each image from S3 itself",
        )
        for rel, size in sorted(sizes.items())
        if size > limit
    ]
    return Sizing(concurrent, payload), refused


def key_refusals(plan: JobPlan, rels: list[str]) -> list[Refusal]:
    """Inputs whose output keys S3 would refuse (over 1,024 bytes)."""
    output = plan.output_uri
    refused = []
    for rel in rels:
        keys = [output.child(keypoints_key(rel)).key, output.child(annotated_key(rel)).key]
        if plan.mode == "images":
            keys.append(plan.transform_output_uri.child(rel + ".out").key)
        longest = max(keys, key=lambda k: len(k.encode()))
        if not key_fits(longest):
            refused.append(
                Refusal(
                    rel,
                    KeyTooLong.code,
                    f"its output key would be {len(longest.encode())} bytes, past S3's limit of {MAX_KEY_BYTES}: "
                    "shorten the input key or use a shorter output prefix",
                )
            )
    return refused


def video_refusals(rels: list[str]) -> list[Refusal]:
    """Images mode: videos cannot travel one per request with their JPEG; manifest mode runs them."""
    message = "a video: images mode takes images only; run this prefix with --mode manifest, which poses videos"
    return [Refusal(rel, VideoNotAccepted.code, message) for rel in rels if is_video(rel)]


# Seconds the container keeps, within a manifest request's timeout, to finish a video's MP4 and upload it.
VIDEO_FINISH_S = 60


def video_time_limit_s(timeout_s: int) -> int:
    """The container's time limit for one video (`POSE_VIDEO_TIME_LIMIT_S`) under a request timeout."""
    return max(timeout_s - VIDEO_FINISH_S, timeout_s // 2, 1)


@dataclass(frozen=True)
class Launched:
    """A job created: its plan, and which mode it runs in and why."""

    plan: JobPlan
    mode: ModeChoice


def images_ceiling_mb(options: LaunchOptions) -> int:
    """The largest object images mode carries with these options (MB)."""
    if options.max_payload_mb is not None:
        return options.max_payload_mb
    return PAYLOAD_X_CONCURRENCY // options.max_concurrent if options.max_concurrent else MAX_IMAGES_PAYLOAD_MB


def annotated_name_refusals(rels: dict[str, int]) -> list[Refusal]:
    """Inputs whose annotated name another input keeps (the other is transformed as usual)."""
    return [
        Refusal(rel, AnnotatedNameTaken.code, annotated_name_taken_message(rel, owner))
        for rel, owner in sorted(annotated_name_owners(rels).items())
    ]


def build_plan(s3: Any, options: LaunchOptions, job_name: str | None = None) -> tuple[JobPlan, Sizing, ModeChoice]:
    """List the inputs, choose the mode, keep out what cannot work (`key_refusals`, `images_sizing`), and
    size the requests. `job_name`: None for the default name, which names the chosen mode."""
    source = S3Uri.parse(options.input, allow_empty_key=True)
    output = S3Uri.parse(options.output, allow_empty_key=True)
    if source.bucket == output.bucket and (
        output.prefix.startswith(source.prefix) or source.prefix.startswith(output.prefix)
    ):
        raise LaunchError(f"the output {output} and the input {source} must not contain each other")
    sizes = {
        str(obj["Key"])[len(source.prefix) :]: int(obj["Size"])
        for obj in list_objects(s3, source.bucket, source.prefix)
        if not str(obj["Key"]).endswith("/")  # folder markers are not inputs
    }
    if not sizes:
        raise LaunchError(f"no objects under {source}: nothing to transform")
    choice = choose_mode(options.mode, sizes, images_ceiling_mb=images_ceiling_mb(options))
    plan = JobPlan(
        job_name=job_name or default_job_name(choice.mode),
        mode=choice.mode,
        input=f"s3://{source.bucket}/{source.prefix}",
        output=f"s3://{output.bucket}/{output.prefix}",
    )
    defaults = MODE_DEFAULTS[plan.mode]
    refused = key_refusals(plan, sorted(sizes))
    if plan.mode == "images":
        refused += video_refusals(sorted(set(sizes) - {r.rel for r in refused}))
    for refusal in refused:
        del sizes[refusal.rel]
    taken = annotated_name_refusals(sizes)
    for refusal in taken:
        del sizes[refusal.rel]
    refused += taken
    if plan.mode == "images":
        sizing, too_large = images_sizing(
            sizes,
            default_concurrent=defaults.max_concurrent,
            default_payload_mb=defaults.max_payload_mb,
            max_concurrent=options.max_concurrent,
            max_payload_mb=options.max_payload_mb,
        )
        refused += too_large
    else:
        payload = defaults.max_payload_mb if options.max_payload_mb is None else options.max_payload_mb
        sizing = Sizing(options.max_concurrent or defaults.max_concurrent, payload)
    if sizing.max_concurrent * sizing.max_payload_mb > PAYLOAD_X_CONCURRENCY:
        raise LaunchError("MaxConcurrentTransforms x MaxPayloadInMB must not exceed 100 (SageMaker's limit)")
    plan.refused = sorted(refused, key=lambda r: r.rel)
    plan.keys = sorted(set(sizes) - {r.rel for r in plan.refused})
    if not plan.keys:
        raise LaunchError(f"none of the {len(plan.refused)} objects under {source} can be transformed: {refused[0]}")
    if plan.mode == "manifest":
        lines_cap = container_manifest_lines(options.environment)
        if options.max_images_per_shard > lines_cap:
            raise LaunchError(
                f"--images-per-shard {options.max_images_per_shard} is more lines than the container takes in "
                f"one request (POSE_MAX_MANIFEST_LINES={lines_cap}): lower it, or raise that with --env"
            )
        plan.shards = build_shards(
            plan,
            options.instance_count,
            shards_per_instance=options.shards_per_instance,
            max_images_per_shard=options.max_images_per_shard,
        )
    return plan, sizing, choice


def container_manifest_lines(environment: dict[str, str]) -> int:
    """The most lines the container takes in one manifest request, under the job's environment (a request
    never holds more lines than its shard: SageMaker never mixes two files' records in one request)."""
    from pydantic import ValidationError

    from batch.settings import Settings

    try:
        return Settings.from_env(environment).max_manifest_lines
    except ValidationError as exc:
        raise LaunchError(f"the container environment (--env) is not valid: {exc.errors()[0]['msg']}") from None


def transform_request(
    options: LaunchOptions, plan: JobPlan, model_name: str, sizing: Sizing | None = None
) -> dict[str, Any]:
    defaults = MODE_DEFAULTS[plan.mode]
    sizing = sizing or Sizing(
        options.max_concurrent or defaults.max_concurrent,
        defaults.max_payload_mb if options.max_payload_mb is None else options.max_payload_mb,
    )
    # Refusals in images mode: the job is given a ManifestFile of the images it can carry, not the prefix.
    data_type = "ManifestFile" if plan.mode == "images" and plan.refused else "S3Prefix"
    environment = {**options.environment, PLAN_ENV: str(plan.plan_uri)}
    if plan.mode == "images":
        # The container is not told the input key: the annotated JPEG travels inside the .out
        # record and the finaliser moves it to its mirrored key.
        environment["POSE_EMBED_ANNOTATED"] = "true"
    else:
        buckets = dict.fromkeys((plan.input_uri.bucket, plan.output_uri.bucket))
        environment["POSE_ALLOWED_BUCKETS"] = ",".join(buckets)
        if any(is_video(key) for key in plan.keys):
            environment.setdefault("POSE_VIDEO_TIME_LIMIT_S", str(video_time_limit_s(options.timeout_s)))
    return {
        "TransformJobName": plan.job_name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": sizing.max_concurrent,
        "MaxPayloadInMB": sizing.max_payload_mb,
        "BatchStrategy": defaults.batch_strategy,
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": options.timeout_s,
            "InvocationsMaxRetries": options.max_retries,
        },
        "Environment": environment,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": str(plan.transform_input_uri)}},
            "ContentType": defaults.content_type,
            "SplitType": defaults.split_type,
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": str(plan.transform_output_uri),
            "Accept": defaults.accept,
            "AssembleWith": defaults.assemble_with,
        },
        "TransformResources": {
            "InstanceType": options.instance_type,
            "InstanceCount": options.instance_count,
        },
    }


def launch(options: LaunchOptions, *, s3: Any = None, sagemaker: Any = None) -> Launched:
    """Write the plan (and manifests), ensure the model, create the job; returns the plan and the mode's
    choice. Inputs the job cannot carry are in `plan.refused`: the finaliser gives them their error records."""
    s3 = s3 or aws.client("s3")
    sagemaker = sagemaker or aws.client("sagemaker")
    plan, sizing, choice = build_plan(s3, options, options.job_name)
    request = transform_request(options, plan, options.model_name or default_model_name(options), sizing)
    if plan.mode == "manifest":
        write_shards(s3, plan)
    elif plan.refused:
        uri = plan.input_manifest_uri
        body = json.dumps([{"prefix": plan.input}, *plan.keys], ensure_ascii=False).encode()
        s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType="application/json")
    plan.save(s3)
    if ensure_model(sagemaker, request["ModelName"], options):
        log.info("created model %s", request["ModelName"])
    sagemaker.create_transform_job(**request)
    log.info(
        "created transform job %s over %d images (%d refused; %d x %d MB requests)",
        plan.job_name,
        len(plan.keys),
        len(plan.refused),
        sizing.max_concurrent,
        sizing.max_payload_mb,
    )
    return Launched(plan, choice)
