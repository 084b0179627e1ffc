"""Plain helpers for tests that run transform jobs on the local stack (no fixtures, no mocks)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.local.stack import EmbeddedStack
from batch.model_package import upload_model
from batch.polling import poll
from batch.s3_listing import list_objects
from batch.transform.completion import TOPIC_NAME
from batch.transform.plan import END_STATES


def wait_until_job_ends(sagemaker: Any, name: str, *, timeout_s: float = 240.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = sagemaker.describe_transform_job(TransformJobName=name)
        return job if job["TransformJobStatus"] in END_STATES else None

    return poll(
        ended, timeout_s=timeout_s, interval_s=0.5, on_timeout=lambda: f"transform job {name} did not end in time"
    )


def objects(s3: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix`, by key relative to it."""
    return {
        obj["Key"][len(prefix) :]: s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        for obj in list_objects(s3, bucket, prefix)
    }


@dataclass
class Notifications:
    """An SQS queue subscribed to the completion topic, drained into envelopes by job name."""

    sqs: Any
    queue_url: str
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def subscribe(cls, stack: EmbeddedStack, queue_name: str = "test-transform-notifications") -> Notifications:
        sqs = stack.client("sqs")
        url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns = stack.client("sns")
        topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        return cls(sqs, url)

    def wait_for(self, job_name: str, *, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.received.get(job_name):
            for message in self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                envelope = json.loads(message["Body"])
                job = envelope.get("MessageAttributes", {}).get("job", {}).get("Value", "")
                self.received.setdefault(job, []).append(envelope)
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return self.received.get(job_name, [])


@dataclass
class TransformStack:
    stack: EmbeddedStack
    model_data: str
    notifications: Notifications

    @property
    def bucket(self) -> str:
        return self.stack.bucket

    @classmethod
    def start(
        cls, home: Path, model_path: Path, *, bucket: str, serve_command: list[str] | None = None
    ) -> TransformStack:
        stack = EmbeddedStack(home, bucket=bucket, serve_command=serve_command).start()
        try:
            model_data = upload_model(stack.client("s3"), bucket, model_path, stack.home)
            return cls(stack, model_data, Notifications.subscribe(stack))
        except Exception:
            stack.stop()
            raise
