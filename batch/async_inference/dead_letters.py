"""The way back from the S3 trigger's dead-letter queue (`pose-batch dlq`).

A message lands there after the trigger failed to submit its image `maxReceiveCount` times (the
endpoint throttled, was deleted or misconfigured, the role lacked a permission). Once the cause is
fixed, `redrive` moves the messages back to the trigger's queue, so the images are submitted (same
inference ids: nothing is done twice). When they should not run any more, `fail` writes each image's
error record at its mirrored key and deletes the message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from batch.async_inference.layout import AsyncLayout
from batch.async_inference.records import write_error_record
from batch.async_inference.s3_notifications import object_events

log = logging.getLogger(__name__)


@dataclass
class DeadLetterReport:
    messages: int = 0
    images: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "images": len(self.images), "inputs": self.images}


def _messages(sqs: Any, queue_url: str, limit: int | None) -> Iterator[dict[str, Any]]:
    """Receive until the queue reads empty (or `limit` messages); each is hidden while handled."""
    seen = 0
    while limit is None or seen < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - seen)),
            WaitTimeSeconds=1,
            VisibilityTimeout=120,
        ).get("Messages", [])
        if not batch:
            return
        for message in batch:
            seen += 1
            yield message


def _images(message: dict[str, Any]) -> list[str]:
    record = {"messageId": message["MessageId"], "body": message["Body"], "eventSource": "aws:sqs"}
    return [f"s3://{c.bucket}/{c.key}" for _, c in object_events({"Records": [record]})]


def redrive(sqs: Any, dead_letter_url: str, queue_url: str, *, limit: int | None = None) -> DeadLetterReport:
    """Send each message back to the trigger's queue (body unchanged), then delete it here."""
    report = DeadLetterReport()
    for message in _messages(sqs, dead_letter_url, limit):
        sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
        report.messages += 1
        report.images += _images(message)
    return report


def fail(
    sqs: Any, s3: Any, dead_letter_url: str, layout: AsyncLayout, *, reason: str, limit: int | None = None
) -> DeadLetterReport:
    """Write each image's error record (`dead_lettered`), then delete the message."""
    report = DeadLetterReport()
    for message in _messages(sqs, dead_letter_url, limit):
        for uri in _images(message):
            bucket, _, key = uri[len("s3://") :].partition("/")
            placement = layout.place(bucket, key)
            if placement is None:
                log.info("not an input under %s: %s", layout.input_prefix, uri)
                continue
            text = (
                f"{uri} was not submitted: its event was dead-lettered and marked failed ({reason}). "
                f"To run it: `pose-batch submit {uri}`, or upload the image again."
            )
            write_error_record(s3, placement.keypoints_uri, "dead_lettered", text)
            report.images.append(uri)
        sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
        report.messages += 1
    return report
