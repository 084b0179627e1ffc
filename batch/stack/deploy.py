"""`stack deploy` and `stack delete` as flows: artifacts bucket -> uploads -> change set -> outputs.
Clients come from `batch.aws` (so AWS_ENDPOINT_URL points the whole flow at moto in tests)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch import aws
from batch.stack import artifacts, cloudformation, image
from batch.stack.lambda_zip import build_lambda_zip, project_root

TEMPLATE = project_root() / "infra" / "template.yaml"
DEFAULT_STACK = "posebatch"
Say = Callable[[str], None]


class StackInputError(ValueError):
    """A deploy that cannot start as asked (the stack name, not a checkout); nothing was created, and
    the message says what to change. A deploy that ran and failed is a `cloudformation.StackError`."""


@dataclass(frozen=True)
class StackOptions:
    stack_name: str = DEFAULT_STACK
    model: str = ""  # .pt checkpoint, model.tar.gz or s3:// URI
    image_uri: str | None = None  # default: <account>.dkr.ecr.<region>.amazonaws.com/posebatch:latest
    instance_type: str = "ml.g5.xlarge"
    max_instances: int = 2
    reserved_concurrency: int = 5
    trigger_max_concurrency: int = 4
    finalize_concurrency: int = 100  # the template's FinalizeConcurrency
    input_prefix: str = "input/"
    batch_input_prefix: str = "batch-input/"
    output_prefix: str = "output/"
    notify_email: str | None = None
    artifacts_bucket: str | None = None


def account_id() -> str:
    return str(aws.client("sts").get_caller_identity()["Account"])


def default_image_uri(account: str, region: str, repository: str = image.DEFAULT_REPOSITORY) -> str:
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:latest"


def deploy(options: StackOptions, say: Say) -> cloudformation.DeployResult:
    if options.stack_name != options.stack_name.lower():
        # SageMaker spells endpoint ARNs in lower case; the template scopes IAM to them.
        raise StackInputError(f"use a lower-case stack name, not {options.stack_name!r}")
    if not TEMPLATE.is_file():
        raise StackInputError(
            f"{TEMPLATE} not found: run `pose-batch stack` from a PoseBatch checkout (pip install -e .)"
        )
    region, account = aws.region(), account_id()
    s3, cfn = aws.client("s3"), aws.client("cloudformation")
    bucket = options.artifacts_bucket or artifacts.artifacts_bucket_name(options.stack_name, account, region)
    if artifacts.ensure_bucket(s3, bucket, region):
        say(f"created artifacts bucket s3://{bucket}")
    with tempfile.TemporaryDirectory() as tmp:
        zip_path, _ = build_lambda_zip(project_root(), Path(tmp))
        code = artifacts.upload_content_addressed(s3, bucket, zip_path, "lambda", ".zip")
    say(f"Lambda code: {code}")
    model = artifacts.model_artifact(s3, bucket, options.model)
    say(f"model: {model}")
    image_uri = options.image_uri or default_image_uri(account, region)
    parameters = {
        "ImageUri": image_uri,
        "ImageRepositoryName": image.repository_of(image_uri),
        "ModelDataUrl": str(model),
        "ModelBucketName": model.bucket,
        "ModelKey": model.key,
        "CodeBucket": code.bucket,
        "CodeKey": code.key,
        "InstanceType": options.instance_type,
        "MaxInstances": str(options.max_instances),
        "ReservedConcurrency": str(options.reserved_concurrency),
        "TriggerMaxConcurrency": str(options.trigger_max_concurrency),
        "FinalizeConcurrency": str(options.finalize_concurrency),
        "InputPrefix": options.input_prefix,
        "BatchInputPrefix": options.batch_input_prefix,
        "OutputPrefix": options.output_prefix,
    }
    body = TEMPLATE.read_text(encoding="utf-8")
    template_url = None
    if len(body.encode()) > cloudformation.MAX_TEMPLATE_BODY_BYTES:  # CloudFormation then reads it from S3
        uploaded = artifacts.upload_content_addressed(s3, bucket, TEMPLATE, "template", ".yaml")
        template_url = f"https://{uploaded.bucket}.s3.{region}.amazonaws.com/{uploaded.key}"
    say(f"deploying stack {options.stack_name} in {region} ...")
    result = cloudformation.deploy_stack(
        cfn,
        options.stack_name,
        body,
        parameters,
        on_event=lambda event: say(cloudformation.format_event(event)),
        template_url=template_url,
    )
    if options.notify_email:
        for key in ("TransformCompletionTopicArn", "AlarmTopicArn"):
            if subscribe_email(aws.client("sns"), result.outputs[key], options.notify_email):
                say(f"subscribed {options.notify_email} to {result.outputs[key]}: confirm from the e-mail AWS sends")
    return result


def subscribe_email(sns: Any, topic_arn: str, address: str) -> bool:
    """Subscribe once; False when that address is already subscribed (or pending confirmation)."""
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        if any(s["Protocol"] == "email" and s["Endpoint"] == address for s in page["Subscriptions"]):
            return False
    sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=address)
    return True


def next_steps(outputs: dict[str, str]) -> list[str]:
    """What the user needs next, as lines to print."""
    bucket = outputs.get("DataBucketName", "?")
    return [
        f"data bucket:        s3://{bucket}",
        f"async input:        {outputs.get('InputUri')}  (each image dropped here is inferred at once)",
        f"batch input:        {outputs.get('BatchInputUri')}  (for `pose-batch transform`)",
        f"outputs:            {outputs.get('OutputUri')}  (keypoints/, annotated/, _SUMMARY.json)",
        f"async endpoint:     {outputs.get('AsyncEndpointName')}",
        f"topics:             completion {outputs.get('TransformCompletionTopicArn')}",
        f"                    async success {outputs.get('AsyncSuccessTopicArn')}",
        f"                    async error {outputs.get('AsyncErrorTopicArn')}",
        f"                    alarms {outputs.get('AlarmTopicArn')}",
        "run a Batch Transform job over images copied under the batch input (one command):",
        f"  pose-batch transform {outputs.get('BatchInputUri')} --output {outputs.get('OutputUri')} --wait"
        f" --image-uri {outputs.get('ImageUri')} --model-data {outputs.get('ModelDataUrl')}"
        f" --role-arn {outputs.get('SageMakerExecutionRoleArn')}",
        "or set them once for every `pose-batch transform`:",
        f"  export POSEBATCH_IMAGE_URI={outputs.get('ImageUri')}",
        f"  export POSEBATCH_MODEL_DATA={outputs.get('ModelDataUrl')}",
        f"  export POSEBATCH_ROLE_ARN={outputs.get('SageMakerExecutionRoleArn')}",
    ]


def delete(stack_name: str, say: Say) -> bool:
    """Delete the stack; returns False when there was none. Says what stays behind and why."""
    cfn = aws.client("cloudformation")
    bucket: str | None = None
    if cloudformation.stack_status(cfn, stack_name) is not None:
        bucket = cloudformation.stack_outputs(cfn, stack_name).get("DataBucketName")
    deleted = cloudformation.delete_stack(
        cfn, stack_name, on_event=lambda event: say(cloudformation.format_event(event))
    )
    if not deleted:
        say(f"no stack named {stack_name}")
        return False
    say(f"deleted stack {stack_name}")
    if bucket:
        say(
            f"kept: the data bucket s3://{bucket} (DeletionPolicy Retain: it holds your images and results, "
            f"and CloudFormation cannot delete a non-empty bucket). Empty and remove it yourself when done: "
            f"aws s3 rb s3://{bucket} --force"
        )
    region = aws.region()
    say(
        f"kept: the artifacts bucket ({artifacts.artifacts_bucket_name(stack_name, account_id(), region)}: "
        f"Lambda zips, model.tar.gz) and the ECR repository, which `stack deploy` and `image push` created "
        f"outside the stack so that a redeploy reuses them."
    )
    return True
