"""What approving a model package deploys. On "SageMaker Model Package State Change" for this stack's group
with `ModelApprovalStatus: Approved`:

1. the package becomes the group's default model (`default_model`: the SSM parameter `transform` reads);
2. every endpoint that follows the group (tagged `posebatch:follows-model-package-group=<group>`: the
   stack's async endpoint, and those `pose-batch deploy` made from the default model) is updated to the
   package: a model built from it (`ModelPackageName`, the endpoint's own environment and role), an
   endpoint configuration copied from the current one with that model, and `UpdateEndpoint`. SageMaker
   updates blue/green: the old instances serve until the new ones pass their health checks, so no request
   is dropped.

Idempotent, since SageMaker may send the event more than once and EventBridge may reorder: the model and
configuration are named after the group, the endpoint and the version, so a repeated event finds the
endpoint already on (or moving to) them and does nothing; an event older than the current default is
ignored, and so is one whose package is no longer approved. An endpoint still updating to something else
is waited for within the time left; past that the handler fails and the event is retried.

On AWS: EventBridge rule -> `events/model_approval.py` (Lambda). Locally: the same rule -> SQS -> this
handler (moto cannot target a Lambda), run by the stack's poller. Standard library and boto3 only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from batch.registry import default_model
from batch.registry.packages import APPROVED, ModelPackage, describe_package

log = logging.getLogger(__name__)

Clients = Callable[[str], Any]
DETAIL_TYPE = "SageMaker Model Package State Change"
FOLLOW_TAG = "posebatch:follows-model-package-group"
BUSY_STATES = ("Creating", "Updating", "SystemUpdating", "RollingBack")
# Endpoint configuration fields an update carries over from the current configuration.
_COPIED_CONFIG_FIELDS = ("AsyncInferenceConfig", "DataCaptureConfig", "KmsKeyId", "ExplainerConfig")


class RolloutIncomplete(RuntimeError):
    """Some endpoints could not be moved to the package (yet): the event is retried."""


def event_pattern(group: str) -> dict[str, Any]:
    """The EventBridge rule's pattern: approvals in this group only."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [DETAIL_TYPE],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": [APPROVED]},
    }


def follow_tags(group: str) -> list[dict[str, str]]:
    """The tags that make an endpoint follow the group's approvals."""
    return [{"Key": FOLLOW_TAG, "Value": group}]


def derived_name(group: str, endpoint: str, version: int) -> str:
    """The model and endpoint configuration an endpoint gets for a version: deterministic (a repeated
    event finds them), at most 63 characters, and starting with the group (the Lambda's IAM scope)."""
    digest = hashlib.sha256(endpoint.encode()).hexdigest()[:10]
    return f"{group[:40]}-{digest}-v{version}"


def handle_records(
    event: dict[str, Any], *, group: str, clients: Clients, wait_s: float = 600.0, poll_s: float = 15.0
) -> dict[str, Any]:
    """One EventBridge event, or SQS records holding them; a failing record is in `batchItemFailures`
    (the SQS shape). The EventBridge shape raises instead, so that Lambda retries the event."""
    if "Records" not in event:
        handle_event(event, group=group, clients=clients, wait_s=wait_s, poll_s=poll_s)
        return {"batchItemFailures": []}
    failures = []
    for record in event["Records"]:
        try:
            handle_event(json.loads(record["body"]), group=group, clients=clients, wait_s=wait_s, poll_s=poll_s)
        except Exception:
            log.exception("approval rollout failed for message %s", record.get("messageId"))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def handle_event(
    event: dict[str, Any], *, group: str, clients: Clients, wait_s: float = 600.0, poll_s: float = 15.0
) -> dict[str, Any] | None:
    """Make the approved package the default and move the following endpoints to it; returns what was
    done, None for an event that is not for us or is stale."""
    detail = event.get("detail") or {}
    if (
        event.get("detail-type") != DETAIL_TYPE
        or detail.get("ModelPackageGroupName") != group
        or detail.get("ModelApprovalStatus") != APPROVED
    ):
        log.info("ignoring %s for %s", event.get("detail-type"), detail.get("ModelPackageGroupName"))
        return None
    sagemaker, ssm = clients("sagemaker"), clients("ssm")
    package = describe_package(sagemaker, str(detail["ModelPackageArn"]))
    if package.status != APPROVED:
        log.info("%s is %s now: its approval event is stale", package.name, package.status)
        return None
    when = str(event.get("time") or datetime.now(timezone.utc).isoformat())
    current = default_model.read(ssm, group)
    if current is not None and current.model_package != package.arn and current.newer_than(when):
        log.info("%s was approved after %s: this event is stale", current.model_package, package.name)
        return None
    if current is None or current.model_package != package.arn:
        default_model.write(
            ssm,
            group,
            default_model.DefaultModel(package.arn, package.version, package.model_data_url, package.image, when),
        )
        log.info("default model of %s: %s", group, package.name)
    deadline = time.monotonic() + wait_s
    done: dict[str, str] = {}
    failed: list[str] = []
    for endpoint in followers(sagemaker, group):
        try:
            done[endpoint] = roll(sagemaker, endpoint, package, deadline=deadline, poll_s=poll_s)
        except Exception as exc:
            log.exception("endpoint %s: not moved to %s", endpoint, package.name)
            failed.append(f"{endpoint}: {exc}")
    if failed:
        raise RolloutIncomplete(f"{package.name}: {'; '.join(failed)}")
    log.info("%s: %s", package.name, done)
    return {"model_package": package.arn, "version": package.version, "endpoints": done}


def followers(sagemaker: Any, group: str) -> list[str]:
    """Endpoints tagged to follow the group's approvals."""
    found = []
    for page in sagemaker.get_paginator("list_endpoints").paginate():
        for endpoint in page.get("Endpoints", []):
            if endpoint.get("EndpointStatus") in ("Deleting", "Failed"):
                continue
            tags = sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"]).get("Tags", [])
            if any(t.get("Key") == FOLLOW_TAG and t.get("Value") == group for t in tags):
                found.append(str(endpoint["EndpointName"]))
    return found


def roll(sagemaker: Any, endpoint: str, package: ModelPackage, *, deadline: float, poll_s: float) -> str:
    """Move one endpoint to the package; returns what was done (`updating`, `already`, `in progress`)."""
    target = derived_name(package.group, endpoint, package.version)
    while True:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        pending = (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if pending == target:
            return "in progress"
        if described["EndpointConfigName"] == target:
            return "already"
        status = described["EndpointStatus"]
        if status not in BUSY_STATES:
            break
        if time.monotonic() + poll_s > deadline:
            raise RolloutIncomplete(f"endpoint {endpoint} is still {status}")
        time.sleep(poll_s)
    if status != "InService":
        raise RolloutIncomplete(f"endpoint {endpoint} is {status}: it cannot be updated")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    variants = []
    for variant in config["ProductionVariants"]:
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
        container = model.get("PrimaryContainer") or model["Containers"][0]
        model_name = target if len(config["ProductionVariants"]) == 1 else f"{target}-{variant['VariantName']}"[:63]
        _create_if_missing(
            sagemaker.create_model,
            ModelName=model_name,
            PrimaryContainer={"ModelPackageName": package.arn, "Environment": container.get("Environment") or {}},
            ExecutionRoleArn=model["ExecutionRoleArn"],
        )
        variants.append({**variant, "ModelName": model_name})
    copied = {key: config[key] for key in _COPIED_CONFIG_FIELDS if config.get(key)}
    _create_if_missing(
        sagemaker.create_endpoint_config, EndpointConfigName=target, ProductionVariants=variants, **copied
    )
    serverless = any(v.get("ServerlessConfig") for v in variants)
    # Keep the instance count autoscaling set (a scaled-in async endpoint stays scaled in).
    retain = {} if serverless else {"RetainAllVariantProperties": True}
    sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=target, **retain)
    log.info("endpoint %s: updating to %s (%s)", endpoint, target, package.name)
    return "updating"


def _create_if_missing(create: Callable[..., Any], **request: Any) -> None:
    try:
        create(**request)
    except ClientError as exc:
        # A repeated event: the model or configuration is already there (same name, same content).
        if "already exist" not in str(exc):
            raise
