"""Listening for async inference outcomes: a temporary SQS queue subscribed to the endpoint's success and
error SNS topics (raw delivery), created before submitting so that no notification is missed, and deleted
afterwards. Without topics, `receive` only paces the caller's S3 polling."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

log = logging.getLogger(__name__)


class OutcomeNotifications:
    def __init__(self, endpoint_name: str, clients: dict[str, Any]) -> None:
        self._endpoint_name = endpoint_name
        self._clients = clients
        self._queue_url: str | None = None
        self._subscriptions: tuple[str, ...] = ()

    @property
    def listening(self) -> bool:
        return self._queue_url is not None

    def subscribe(self) -> None:
        topics = [t for t in self.topics() if t]
        if not topics:
            return
        sqs, sns = self._clients["sqs"], self._clients["sns"]
        self._queue_url = sqs.create_queue(QueueName=f"posebatch-wait-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topics}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=self._queue_url, Attributes={"Policy": json.dumps(policy)})
        self._subscriptions = tuple(
            sns.subscribe(TopicArn=t, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})[
                "SubscriptionArn"
            ]
            for t in topics
        )

    def unsubscribe(self) -> None:
        for subscription in self._subscriptions:
            self._clients["sns"].unsubscribe(SubscriptionArn=subscription)
        if self._queue_url:
            self._clients["sqs"].delete_queue(QueueUrl=self._queue_url)
        self._queue_url, self._subscriptions = None, ()

    def receive(self) -> list[dict[str, Any]]:
        if not self._queue_url:
            time.sleep(0.5)  # S3 polling only: pace it
            return []
        sqs = self._clients["sqs"]
        messages = sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if messages:
            sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        parsed = [_notification(m["Body"]) for m in messages]
        return [p for p in parsed if p is not None]

    def topics(self) -> tuple[str | None, str | None]:
        config = self._endpoint_config()
        notification = config.get("AsyncInferenceConfig", {}).get("OutputConfig", {}).get("NotificationConfig", {})
        return notification.get("SuccessTopic"), notification.get("ErrorTopic")

    def _endpoint_config(self) -> dict[str, Any]:
        sagemaker = self._clients["sagemaker"]
        name = sagemaker.describe_endpoint(EndpointName=self._endpoint_name)["EndpointConfigName"]
        return dict(sagemaker.describe_endpoint_config(EndpointConfigName=name))


def _notification(body: str) -> dict[str, Any] | None:
    try:
        message = json.loads(body)
        if message.get("Type") == "Notification":  # delivered without RawMessageDelivery
            message = json.loads(message["Message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("ignoring a message that is not an async inference notification: %.200s", body)
        return None
    return message if isinstance(message, dict) else None
