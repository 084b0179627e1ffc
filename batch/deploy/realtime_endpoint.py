"""Deploying a real-time endpoint (instance-backed or serverless) with plain boto3: model, endpoint config,
endpoint; the same calls against AWS and the local stand-in.

The model and the configuration are named after what they hold (the endpoint's name and a hash of the
model, the instances and the environment), so deploying again with the same inputs changes nothing, and
deploying another model updates the endpoint in place: SageMaker's blue/green update, no request dropped.
An endpoint deployed from the group's default model carries the tag that makes approvals roll it
(`batch.registry.approval.FOLLOW_TAG`); one deployed from a named model loses it.

Serverless (SageMaker's bounds): `MemorySizeInMB` 1024-6144 in 1 GB steps, `MaxConcurrency` 1-200, CPU
only, requests and responses up to 4 MB, `/invocations` within 60 s; the first request after idle waits
for a container to start and load the model (the cold start: docs/realtime-and-registry.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from batch.deploy.async_endpoint import VARIANT
from batch.polling import poll
from batch.registry.approval import FOLLOW_TAG, follow_tags
from batch.serving_model import ServingModel

log = logging.getLogger(__name__)

SERVERLESS_MEMORY_MB = tuple(range(1024, 6144 + 1, 1024))
MAX_SERVERLESS_CONCURRENCY = 200


@dataclass(frozen=True)
class Serverless:
    memory_mb: int = 2048
    max_concurrency: int = 5

    def __post_init__(self) -> None:
        if self.memory_mb not in SERVERLESS_MEMORY_MB:
            raise ValueError(f"serverless memory must be one of {', '.join(map(str, SERVERLESS_MEMORY_MB))} MB")
        if not 1 <= self.max_concurrency <= MAX_SERVERLESS_CONCURRENCY:
            raise ValueError(f"serverless max concurrency must be 1-{MAX_SERVERLESS_CONCURRENCY}")


@dataclass(frozen=True)
class RealtimeEndpointSpec:
    endpoint_name: str
    model: ServingModel
    execution_role_arn: str
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    serverless: Serverless | None = None
    environment: dict[str, str] = field(default_factory=dict)
    follows_group: str | None = None  # tag the endpoint to follow this group's approvals

    @property
    def kind(self) -> Literal["realtime", "serverless"]:
        return "serverless" if self.serverless else "realtime"

    def variant(self, model_name: str) -> dict[str, Any]:
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
        if self.serverless:
            variant["ServerlessConfig"] = {
                "MemorySizeInMB": self.serverless.memory_mb,
                "MaxConcurrency": self.serverless.max_concurrency,
            }
        else:
            variant.update(
                InstanceType=self.instance_type, InitialInstanceCount=self.instance_count, InitialVariantWeight=1
            )
        return variant

    @property
    def resource_name(self) -> str:
        """Model and endpoint configuration name: the endpoint's, and a hash of what they hold."""
        content = json.dumps(
            [self.model.container(self.environment), self.execution_role_arn, self.variant("")], sort_keys=True
        )
        digest = hashlib.sha256(content.encode()).hexdigest()[:8]
        return f"{self.endpoint_name[:54]}-{digest}"


def deploy(
    spec: RealtimeEndpointSpec, sagemaker: Any, *, wait_s: float = 1800.0, poll_s: float = 2.0
) -> dict[str, Any]:
    """Create the model and configuration (kept if they exist), then create the endpoint or update it to
    them; wait until it serves them. Returns DescribeEndpoint's answer."""
    name = spec.resource_name
    _create_if_missing(
        sagemaker.create_model,
        ModelName=name,
        PrimaryContainer=spec.model.container(spec.environment),
        ExecutionRoleArn=spec.execution_role_arn,
    )
    _create_if_missing(
        sagemaker.create_endpoint_config, EndpointConfigName=name, ProductionVariants=[spec.variant(name)]
    )
    existing = _describe(sagemaker, spec.endpoint_name)
    if existing is None:
        tags = follow_tags(spec.follows_group) if spec.follows_group else []
        sagemaker.create_endpoint(EndpointName=spec.endpoint_name, EndpointConfigName=name, Tags=tags)
        log.info("creating endpoint %s (%s)", spec.endpoint_name, name)
    else:
        _set_follow_tag(sagemaker, existing["EndpointArn"], spec.follows_group)
        if existing["EndpointConfigName"] != name:
            wait_settled(sagemaker, spec.endpoint_name, timeout_s=wait_s, poll_s=poll_s)
            sagemaker.update_endpoint(EndpointName=spec.endpoint_name, EndpointConfigName=name)
            log.info("updating endpoint %s to %s", spec.endpoint_name, name)
    return wait_serving(sagemaker, spec.endpoint_name, name, timeout_s=wait_s, poll_s=poll_s)


def wait_serving(
    sagemaker: Any, endpoint: str, config_name: str, *, timeout_s: float, poll_s: float = 2.0
) -> dict[str, Any]:
    """Until the endpoint is InService on `config_name`; RuntimeError when it failed (or an update did)."""
    status = "unknown"

    def serving() -> dict[str, Any] | None:
        nonlocal status
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint)
        status = str(described["EndpointStatus"])
        if status == "Failed":
            raise RuntimeError(f"endpoint {endpoint} failed: {described.get('FailureReason')}")
        if status != "InService":
            return None
        if described["EndpointConfigName"] != config_name:
            raise RuntimeError(f"endpoint {endpoint} was not updated: {described.get('FailureReason')}")
        return described

    return poll(
        serving,
        timeout_s=timeout_s,
        interval_s=poll_s,
        on_timeout=lambda: f"endpoint {endpoint} still {status} after {timeout_s:.0f}s",
    )


def wait_settled(sagemaker: Any, endpoint: str, *, timeout_s: float, poll_s: float = 2.0) -> dict[str, Any]:
    """Until the endpoint is no longer creating or updating (an update must start from InService)."""

    def settled() -> dict[str, Any] | None:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint)
        return None if described["EndpointStatus"] in ("Creating", "Updating", "SystemUpdating") else described

    return poll(settled, timeout_s=timeout_s, interval_s=poll_s, on_timeout=lambda: f"endpoint {endpoint} stays busy")


def _describe(sagemaker: Any, endpoint: str) -> dict[str, Any] | None:
    try:
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint)
    except Exception as exc:  # botocore's ClientError: "Could not find endpoint"
        if "could not find" in str(exc).lower():
            return None
        raise
    return described


def _set_follow_tag(sagemaker: Any, endpoint_arn: str, group: str | None) -> None:
    if group:
        sagemaker.add_tags(ResourceArn=endpoint_arn, Tags=follow_tags(group))
    else:
        sagemaker.delete_tags(ResourceArn=endpoint_arn, TagKeys=[FOLLOW_TAG])


def _create_if_missing(create: Any, **request: Any) -> None:
    try:
        create(**request)
    except Exception as exc:
        # Named after their content: one that exists already holds exactly this.
        if "already exist" not in str(exc):
            raise
