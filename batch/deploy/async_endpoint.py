"""Deploying the asynchronous endpoint with plain boto3: model, endpoint config with
`AsyncInferenceConfig`, endpoint, and autoscaling down to zero instances.

The same calls run against AWS and against the local stand-in (a boto3 client pointed at it);
only the autoscaling step is AWS-only, since nothing locally scales instances.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batch.async_inference.layout import AsyncLayout
from batch.polling import poll
from batch.serving_model import ServingModel

log = logging.getLogger(__name__)

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class AsyncEndpointSpec:
    endpoint_name: str
    image_uri: str
    model_data_url: str
    execution_role_arn: str
    layout: AsyncLayout
    success_topic_arn: str | None = None
    error_topic_arn: str | None = None
    instance_type: str = "ml.g5.xlarge"
    initial_instance_count: int = 1
    max_concurrent_invocations: int = 4
    environment: dict[str, str] = field(default_factory=dict)
    model_package_arn: str | None = None  # serve this registry package (its image and model data)
    tags: list[dict[str, str]] = field(default_factory=list)  # e.g. to follow a model package group's approvals
    # Autoscaling (AWS only): 0 instances when idle, woken by the backlog alarm.
    min_capacity: int = 0
    max_capacity: int = 2
    target_backlog_per_instance: float = 5.0
    scale_in_cooldown_s: int = 600
    scale_out_cooldown_s: int = 300

    @property
    def model_name(self) -> str:
        return f"{self.endpoint_name}-model"

    @property
    def endpoint_config_name(self) -> str:
        return f"{self.endpoint_name}-config"

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint_name}/variant/{VARIANT}"

    def container_environment(self) -> dict[str, str]:
        # The container writes the keypoint records and annotated images, and only into the output bucket.
        return {"POSE_ALLOWED_BUCKETS": self.layout.output_bucket, **self.environment}

    def async_inference_config(self) -> dict[str, Any]:
        output: dict[str, Any] = {
            "S3OutputPath": self.layout.s3_output_path,
            "S3FailurePath": self.layout.s3_failure_path,
        }
        notification = {
            key: arn
            for key, arn in (("SuccessTopic", self.success_topic_arn), ("ErrorTopic", self.error_topic_arn))
            if arn
        }
        if notification:
            output["NotificationConfig"] = notification
        return {
            "OutputConfig": output,
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": self.max_concurrent_invocations},
        }


def deploy(spec: AsyncEndpointSpec, sagemaker: Any, *, wait_s: float = 1800.0) -> dict[str, Any]:
    """Create model, endpoint config and endpoint (each kept if it already exists); wait for InService."""
    _create_if_missing(
        lambda: sagemaker.create_model(
            ModelName=spec.model_name,
            PrimaryContainer=ServingModel(spec.image_uri, spec.model_data_url, spec.model_package_arn).container(
                spec.container_environment()
            ),
            ExecutionRoleArn=spec.execution_role_arn,
        ),
        f"model {spec.model_name}",
    )
    _create_if_missing(
        lambda: sagemaker.create_endpoint_config(
            EndpointConfigName=spec.endpoint_config_name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT,
                    "ModelName": spec.model_name,
                    "InstanceType": spec.instance_type,
                    "InitialInstanceCount": spec.initial_instance_count,
                }
            ],
            AsyncInferenceConfig=spec.async_inference_config(),
        ),
        f"endpoint config {spec.endpoint_config_name}",
    )
    _create_if_missing(
        lambda: sagemaker.create_endpoint(
            EndpointName=spec.endpoint_name, EndpointConfigName=spec.endpoint_config_name, Tags=spec.tags
        ),
        f"endpoint {spec.endpoint_name}",
    )
    return wait_in_service(sagemaker, spec.endpoint_name, timeout_s=wait_s)


def wait_in_service(sagemaker: Any, endpoint_name: str, *, timeout_s: float, poll_s: float = 2.0) -> dict[str, Any]:
    status = "unknown"

    def in_service() -> dict[str, Any] | None:
        nonlocal status
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint_name)
        status = str(described.get("EndpointStatus"))
        if status == "Failed":
            raise RuntimeError(f"endpoint {endpoint_name} failed: {described.get('FailureReason')}")
        return described if status == "InService" else None

    return poll(
        in_service,
        timeout_s=timeout_s,
        interval_s=poll_s,
        on_timeout=lambda: f"endpoint {endpoint_name} still {status} after {timeout_s:.0f}s",
    )


def configure_autoscaling(spec: AsyncEndpointSpec, autoscaling: Any, cloudwatch: Any) -> None:
    """Scale to zero: target tracking on the backlog per instance, plus a step policy on
    `HasBacklogWithoutCapacity` because target tracking cannot wake an endpoint from 0 instances."""
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": spec.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
    }
    autoscaling.register_scalable_target(**target, MinCapacity=spec.min_capacity, MaxCapacity=spec.max_capacity)
    dimensions = [{"Name": "EndpointName", "Value": spec.endpoint_name}]
    autoscaling.put_scaling_policy(
        **target,
        PolicyName=f"{spec.endpoint_name}-backlog-target",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": spec.target_backlog_per_instance,
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance",
                "Namespace": "AWS/SageMaker",
                "Dimensions": dimensions,
                "Statistic": "Average",
            },
            "ScaleInCooldown": spec.scale_in_cooldown_s,
            "ScaleOutCooldown": spec.scale_out_cooldown_s,
        },
    )
    step = autoscaling.put_scaling_policy(
        **target,
        PolicyName=f"{spec.endpoint_name}-wake-from-zero",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": spec.scale_out_cooldown_s,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
        },
    )
    cloudwatch.put_metric_alarm(
        AlarmName=f"{spec.endpoint_name}-has-backlog-without-capacity",
        MetricName="HasBacklogWithoutCapacity",
        Namespace="AWS/SageMaker",
        Dimensions=dimensions,
        Statistic="Average",
        Period=60,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="missing",
        AlarmActions=[step["PolicyARN"]],
    )


def delete(spec: AsyncEndpointSpec, sagemaker: Any) -> None:
    """Endpoint, endpoint config and model; missing ones are fine."""
    calls: tuple[tuple[Callable[[], object], str], ...] = (
        (lambda: sagemaker.delete_endpoint(EndpointName=spec.endpoint_name), spec.endpoint_name),
        (
            lambda: sagemaker.delete_endpoint_config(EndpointConfigName=spec.endpoint_config_name),
            spec.endpoint_config_name,
        ),
        (lambda: sagemaker.delete_model(ModelName=spec.model_name), spec.model_name),
    )
    for call, name in calls:
        try:
            call()
        except Exception as exc:  # botocore's ClientError; a missing resource is the common case
            log.info("delete %s: %s", name, exc)


def _create_if_missing(create: Any, what: str) -> None:
    try:
        create()
        log.info("created %s", what)
    except Exception as exc:
        # Re-running a deployment keeps what exists: SageMaker says "Cannot create already existing".
        if "already exist" not in str(exc):
            raise
        log.info("%s already exists; kept", what)
