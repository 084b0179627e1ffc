"""The local stand-in for Lambda's SQS event source mapping.

Polls a queue, hands each batch to a handler in Lambda's SQS event shape, and deletes only the
messages the handler did not report in `batchItemFailures`; failed ones reappear after the queue's
visibility timeout, as on AWS. `concurrency` pollers run at once, each handling one batch at a time:
the event source mapping's `ScalingConfig.MaximumConcurrency`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], Any]


class SqsLambdaPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: LambdaHandler,
        *,
        batch_size: int = 10,
        name: str = "sqs-poller",
        concurrency: int = 1,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._batch_size = batch_size
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(max(1, concurrency))
        ]

    def start(self) -> SqsLambdaPoller:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receive and handle one batch; returns how many messages were received."""
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [_to_lambda_record(m, self._queue_arn) for m in messages]}
        try:
            result = self._handler(event, None)
        except Exception:
            # Like Lambda: an uncaught error fails the whole batch, which is retried later.
            log.exception("handler failed for a batch of %d messages", len(messages))
            return len(messages)
        failed = {
            item.get("itemIdentifier") for item in (result or {}).get("batchItemFailures", []) if isinstance(item, dict)
        }
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling %s failed; retrying", self._queue_url)
                self._stop.wait(1.0)


def _to_lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1",
    }
