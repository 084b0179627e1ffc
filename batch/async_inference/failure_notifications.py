"""SageMaker's async error notifications out of the event shapes the error handler receives: SNS
invoking Lambda directly (`Records[].Sns.Message`), and SNS -> SQS (`Records[].body`, raw or in the
SNS envelope), which is how the local stack delivers them. Anything else is logged and skipped."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedInference:
    inference_id: str
    input_location: str
    endpoint_name: str
    reason: str
    message_id: str | None  # the SQS message it came in (None outside SQS)
    received_at: datetime | None = None  # when the endpoint accepted the failed request


def failed_inferences(event: Any) -> tuple[list[FailedInference], bool]:
    """The failed inferences in `event`, and whether it is an SQS batch (answered with batchItemFailures)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        log.warning("not an SNS or SQS event: %.200s", json.dumps(event, default=str))
        return [], False
    is_sqs = any(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    found: list[FailedInference] = []
    for record in records:
        if not isinstance(record, dict):
            continue
        message_id = record.get("messageId") if is_sqs else None
        text = record.get("body") if is_sqs else (record.get("Sns") or {}).get("Message")
        failure = _failure(_message(text), message_id)
        if failure is not None:
            found.append(failure)
    return found, is_sqs


def _message(text: Any) -> dict[str, Any] | None:
    try:
        message = json.loads(text)
        if isinstance(message, dict) and message.get("Type") == "Notification":  # SNS envelope
            message = json.loads(message["Message"])
    except (TypeError, ValueError, KeyError):
        return None
    return message if isinstance(message, dict) else None


def _failure(message: dict[str, Any] | None, message_id: str | None) -> FailedInference | None:
    if message is None or message.get("invocationStatus") != "Failed":
        if message is None:
            log.warning("skipping a message that is not an async inference notification")
        return None
    parameters = message.get("requestParameters") or {}
    inference_id, input_location = message.get("inferenceId"), parameters.get("inputLocation")
    if not isinstance(inference_id, str) or not isinstance(input_location, str):
        log.warning("skipping a failure notification without inferenceId/inputLocation")
        return None
    return FailedInference(
        inference_id=inference_id,
        input_location=input_location,
        endpoint_name=str(parameters.get("endpointName") or ""),
        reason=str(message.get("failureReason") or "unknown failure"),
        message_id=message_id,
        received_at=_time(message.get("receivedTime")),
    )


def _time(text: Any) -> datetime | None:
    """`2024-05-01T12:00:00.123Z` (timezone-aware), None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
