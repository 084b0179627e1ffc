"""The default asynchronous endpoint of the local stack, deployed with the same boto3 code as on AWS,
and its event paths, as the template wires them on AWS:

- bucket notification (input prefix) -> SQS (dead-letter queue after `max_receive_count` deliveries)
  -> `batch.async_inference.trigger` (the S3-trigger Lambda's code, run by the stack's SQS poller);
- the endpoint's error topic -> SQS -> `batch.async_inference.retry` (the async error Lambda's code):
  bounded retries with backoff, then the error record.

Dropping a file into the local bucket is then enough.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batch.async_inference.layout import AsyncLayout
from batch.async_inference.retry import AsyncErrorHandler
from batch.async_inference.trigger import build_handler
from batch.deploy.async_endpoint import AsyncEndpointSpec, configure_autoscaling, deploy
from batch.local.state import write_state
from batch.orchestration_settings import RetryPolicy, TriggerConfig
from batch.registry.approval import follow_tags

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

DEFAULT_ENDPOINT = "posebatch-async"
DEFAULT_INPUT_PREFIX = "async/input/"
DEFAULT_OUTPUT_PREFIX = "async/output/"
LOCAL_IMAGE = "posebatch-local:latest"  # recorded only: the local "container" is a process
LOCAL_ROLE = "arn:aws:iam::000000000000:role/posebatch-local"


@dataclass(frozen=True)
class LocalAsyncDeployment:
    endpoint_name: str
    layout: AsyncLayout
    success_topic_arn: str
    error_topic_arn: str
    events_queue_url: str | None
    dead_letter_url: str | None

    def as_dict(self) -> dict[str, Any]:
        """For the stack's state file, so `--local` commands in other processes find it."""
        return {
            "endpoint_name": self.endpoint_name,
            "input_uri": f"s3://{self.layout.input_bucket}/{self.layout.input_prefix}",
            "output_uri": self.layout.output_root,
            "success_topic_arn": self.success_topic_arn,
            "error_topic_arn": self.error_topic_arn,
            "events_queue_url": self.events_queue_url or "",
            "dead_letter_url": self.dead_letter_url or "",
        }


def deploy_local_endpoint(
    stack: EmbeddedStack,
    *,
    model_data_url: str,
    endpoint_name: str = DEFAULT_ENDPOINT,
    input_prefix: str = DEFAULT_INPUT_PREFIX,
    output_prefix: str = DEFAULT_OUTPUT_PREFIX,
    instance_count: int = 1,
    max_concurrent_invocations: int = 4,
    environment: dict[str, str] | None = None,
    wire_events: bool = True,
    startup_timeout_s: float = 600.0,
    retry: RetryPolicy | None = None,
    invocation_timeout_s: int | None = None,
    max_receive_count: int = 5,
    write_state_file: bool = True,
    follow_approvals: bool = True,
) -> LocalAsyncDeployment:
    """`follow_approvals`: tag the endpoint so that approving a package of the stack's group rolls it."""
    layout = AsyncLayout.create(f"s3://{stack.bucket}/{input_prefix}", f"s3://{stack.bucket}/{output_prefix}")
    sns = stack.client("sns")
    success = sns.create_topic(Name=f"{endpoint_name}-success")["TopicArn"]
    error = sns.create_topic(Name=f"{endpoint_name}-error")["TopicArn"]
    spec = AsyncEndpointSpec(
        endpoint_name=endpoint_name,
        image_uri=LOCAL_IMAGE,
        model_data_url=model_data_url,
        execution_role_arn=LOCAL_ROLE,
        layout=layout,
        success_topic_arn=success,
        error_topic_arn=error,
        instance_type="local",
        initial_instance_count=instance_count,
        max_concurrent_invocations=max_concurrent_invocations,
        environment=dict(environment or {}),
        tags=follow_tags(stack.model_package_group) if follow_approvals else [],
    )
    deploy(spec, stack.client("sagemaker"), wait_s=startup_timeout_s)
    # moto records scalable targets, policies and alarms, so the AWS calls are exercised too.
    configure_autoscaling(spec, stack.client("application-autoscaling"), stack.client("cloudwatch"))
    config = TriggerConfig(
        endpoint_name=endpoint_name,
        input_prefix=layout.input_prefix,
        output_uri=layout.output_root,
        invocation_timeout_s=invocation_timeout_s,
        max_receive_count=max_receive_count,
    )
    queues: tuple[str | None, str | None] = (None, None)
    if wire_events:
        queues = wire_s3_events(stack, config, layout)
        wire_error_handler(stack, config, retry or RetryPolicy(), error)
    deployment = LocalAsyncDeployment(endpoint_name, layout, success, error, *queues)
    if write_state_file:
        write_state(stack.home, **{"async": deployment.as_dict()})
    return deployment


def wire_error_handler(stack: EmbeddedStack, config: TriggerConfig, policy: RetryPolicy, topic_arn: str) -> str:
    """Error topic -> SQS (raw delivery) -> the async error handler; returns the queue ARN."""
    handler = AsyncErrorHandler(config, policy, stack.client("sagemaker-runtime"), stack.client("s3"))
    # Longer than the handler's longest backoff wait, so a message is not re-delivered while it sleeps.
    visibility = str(int(policy.max_backoff_s) + 120)
    queue_arn = stack.add_sqs_lambda(
        f"{config.endpoint_name}-async-errors", handler, attributes={"VisibilityTimeout": visibility}
    )
    stack.client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    return queue_arn


def wire_s3_events(stack: EmbeddedStack, config: TriggerConfig, layout: AsyncLayout) -> tuple[str, str]:
    """Bucket notification on the input prefix -> SQS (with its dead-letter queue) -> the S3-trigger
    handler; returns the queue's and the dead-letter queue's URLs."""
    endpoint_name = config.endpoint_name
    sqs = stack.client("sqs")
    dead_letter_url = sqs.create_queue(QueueName=f"{endpoint_name}-s3-events-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(config.max_receive_count or 5)}
    handler = build_handler(config, stack.client("sagemaker-runtime"), stack.client("sagemaker"), stack.client("s3"))
    queue_arn = stack.add_sqs_lambda(
        f"{endpoint_name}-s3-events",
        handler,
        attributes={"VisibilityTimeout": "30", "RedrivePolicy": json.dumps(redrive)},
    )
    queue_url = sqs.get_queue_url(QueueName=f"{endpoint_name}-s3-events")["QueueUrl"]
    s3 = stack.client("s3")
    current = s3.get_bucket_notification_configuration(Bucket=layout.input_bucket)
    current.pop("ResponseMetadata", None)
    notification_id = f"{endpoint_name}-input"
    queues = [q for q in current.get("QueueConfigurations", []) if q.get("Id") != notification_id]
    queues.append(
        {
            "Id": notification_id,
            "QueueArn": queue_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": layout.input_prefix}]}},
        }
    )
    # The whole configuration is replaced on put: keep what others (e.g. EventBridge) configured.
    s3.put_bucket_notification_configuration(
        Bucket=layout.input_bucket, NotificationConfiguration={**current, "QueueConfigurations": queues}
    )
    return str(queue_url), str(dead_letter_url)
