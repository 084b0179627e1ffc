"""Launching a pose batch transform job: the model (created or reused), the job plan and manifests,
and the CreateTransformJob request. Plain boto3, so the same code drives AWS and the local stand-in
(the SDK's resources need AWS-only calls such as the default bucket and the caller's identity).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from batch import aws
from batch.s3_listing import list_objects
from batch.s3_uri import S3Uri
from batch.transform import manifest
from batch.transform.plan import PLAN_ENV, JobPlan, Mode
from batch.transform.sizing import PAYLOAD_X_CONCURRENCY, Sizing, images_sizing, key_refusals

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
    mode: Mode = "images"
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
    shards_per_instance: int = manifest.DEFAULT_SHARDS_PER_INSTANCE
    max_images_per_shard: int = manifest.DEFAULT_MAX_IMAGES_PER_SHARD


def default_job_name(mode: str) -> str:
    return f"posebatch-{mode}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def default_model_name(options: LaunchOptions) -> str:
    """Same image, artifact and environment -> same model, so re-launches reuse it."""
    key = json.dumps([options.image_uri, options.model_data, sorted(options.environment.items())])
    return f"posebatch-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def ensure_model(sagemaker: Any, name: str, options: LaunchOptions) -> bool:
    """Create the model unless it exists; True when created."""
    try:
        sagemaker.describe_model(ModelName=name)
        return False
    except ClientError as exc:
        if "could not find" not in str(exc).lower():
            raise
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": options.image_uri,
            "ModelDataUrl": options.model_data,
            "Environment": dict(options.environment),
        },
        ExecutionRoleArn=options.role_arn,
    )
    return True


def build_plan(s3: Any, options: LaunchOptions, job_name: str) -> tuple[JobPlan, Sizing]:
    """List the inputs, keep out what cannot work (`sizing`), and size the requests."""
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
    plan = JobPlan(
        job_name=job_name,
        mode=options.mode,
        input=f"s3://{source.bucket}/{source.prefix}",
        output=f"s3://{output.bucket}/{output.prefix}",
    )
    defaults = MODE_DEFAULTS[options.mode]
    refused = key_refusals(plan, sorted(sizes))
    for refusal in refused:
        del sizes[refusal.rel]
    if options.mode == "images":
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
    if options.mode == "manifest":
        plan.shards = manifest.build_shards(
            plan,
            options.instance_count,
            shards_per_instance=options.shards_per_instance,
            max_images_per_shard=options.max_images_per_shard,
        )
    return plan, sizing


def transform_request(
    options: LaunchOptions, plan: JobPlan, model_name: str, sizing: Sizing | None = None
) -> dict[str, Any]:
    defaults = MODE_DEFAULTS[options.mode]
    sizing = sizing or Sizing(
        options.max_concurrent or defaults.max_concurrent,
        defaults.max_payload_mb if options.max_payload_mb is None else options.max_payload_mb,
    )
    # Refusals in images mode: the job is given a ManifestFile of the images it can carry, not the prefix.
    data_type = "ManifestFile" if plan.mode == "images" and plan.refused else "S3Prefix"
    environment = {**options.environment, PLAN_ENV: str(plan.plan_uri)}
    if options.mode == "images":
        # The container is not told the input key: the annotated JPEG travels inside the .out
        # record and the finaliser moves it to its mirrored key.
        environment["POSE_EMBED_ANNOTATED"] = "true"
    else:
        buckets = dict.fromkeys((plan.input_uri.bucket, plan.output_uri.bucket))
        environment["POSE_ALLOWED_BUCKETS"] = ",".join(buckets)
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


def launch(options: LaunchOptions, *, s3: Any = None, sagemaker: Any = None) -> JobPlan:
    """Write the plan (and manifests), ensure the model, create the job; returns the plan. Inputs the
    job cannot carry are in `plan.refused`: the finaliser gives them their error records."""
    s3 = s3 or aws.client("s3")
    sagemaker = sagemaker or aws.client("sagemaker")
    job_name = options.job_name or default_job_name(options.mode)
    plan, sizing = build_plan(s3, options, job_name)
    request = transform_request(options, plan, options.model_name or default_model_name(options), sizing)
    if plan.mode == "manifest":
        manifest.write_shards(s3, plan)
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
        job_name,
        len(plan.keys),
        len(plan.refused),
        sizing.max_concurrent,
        sizing.max_payload_mb,
    )
    return plan
