"""Created objects out of every event shape the S3 trigger accepts: S3 notifications directly, wrapped
in SQS, wrapped in SNS (enveloped or raw), and EventBridge "Object Created" events, also nested
(S3 -> SNS -> SQS). Keys are decoded (`unquote_plus`); anything else is logged and skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

_MAX_NESTING = 4  # S3 -> SNS -> SQS is three levels; anything deeper is not an event we know


@dataclass(frozen=True)
class ObjectCreated:
    """One created object, key already decoded."""

    bucket: str
    key: str
    version: str | None  # versionId, else ETag: what makes the inference id change per object version


def object_events(event: Any) -> list[tuple[str | None, ObjectCreated]]:
    """Every created object in the event, with the SQS message id it came in (None outside SQS)."""
    if not is_sqs_event(event):
        return [(None, created) for created in _object_events(event, 0)]
    found: list[tuple[str | None, ObjectCreated]] = []
    for record in event["Records"]:
        message_id = record.get("messageId") if isinstance(record, dict) else None
        body = _json(record.get("body")) if isinstance(record, dict) else None
        if body is None:
            log.warning("skipping SQS message %s: body is not JSON", message_id)
            continue
        found.extend((message_id, created) for created in _object_events(body, 1))
    return found


def _object_events(event: Any, depth: int) -> Iterator[ObjectCreated]:
    """Every created object in an event of any supported shape; everything else is logged and skipped."""
    if depth > _MAX_NESTING or not isinstance(event, dict):
        log.warning("skipping an event of unknown shape: %.300s", json.dumps(event, default=str))
        return
    if event.get("Event") == "s3:TestEvent":
        log.info("skipping s3:TestEvent for bucket %s", event.get("Bucket"))
        return
    if event.get("Type") == "Notification" and "Message" in event:  # SNS envelope (delivered to SQS)
        yield from _object_events(_json(event["Message"]), depth + 1)
        return
    if "detail-type" in event:
        created = _from_eventbridge(event)
        if created is not None:
            yield created
        return
    records = event.get("Records")
    if not isinstance(records, list):
        log.warning("skipping an event of unknown shape: %.300s", json.dumps(event, default=str))
        return
    for record in records:
        yield from _from_record(record, depth)


def _from_record(record: Any, depth: int) -> Iterator[ObjectCreated]:
    if not isinstance(record, dict):
        log.warning("skipping a record that is not an object: %.200r", record)
        return
    if isinstance(record.get("Sns"), dict):  # SNS -> Lambda
        yield from _object_events(_json(record["Sns"].get("Message")), depth + 1)
        return
    if _is_sqs(record):  # SQS inside something else: unwrap its body
        yield from _object_events(_json(record.get("body")), depth + 1)
        return
    try:
        if not str(record.get("eventName", "")).startswith(("ObjectCreated:", "s3:ObjectCreated:")):
            log.info("skipping %s event", record.get("eventName"))
            return
        s3 = record["s3"]
        obj = s3["object"]
        yield ObjectCreated(
            bucket=str(s3["bucket"]["name"]),
            key=unquote_plus(str(obj["key"])),
            version=obj.get("versionId") or obj.get("eTag") or obj.get("etag"),
        )
    except (KeyError, TypeError):
        log.warning("skipping a malformed S3 record: %.300s", json.dumps(record, default=str))


def _from_eventbridge(event: dict[str, Any]) -> ObjectCreated | None:
    if event.get("detail-type") != "Object Created" or event.get("source") != "aws.s3":
        log.info("skipping EventBridge event %s from %s", event.get("detail-type"), event.get("source"))
        return None
    try:
        detail = event["detail"]
        obj = detail["object"]
        return ObjectCreated(
            bucket=str(detail["bucket"]["name"]),
            key=unquote_plus(str(obj["key"])),
            version=obj.get("version-id") or obj.get("etag"),
        )
    except (KeyError, TypeError):
        log.warning("skipping a malformed EventBridge event: %.300s", json.dumps(event, default=str))
        return None


def receive_counts(event: Any) -> dict[str, int]:
    """SQS message id -> ApproximateReceiveCount (how often the queue delivered it, this time included)."""
    if not is_sqs_event(event):
        return {}
    counts: dict[str, int] = {}
    for record in event["Records"]:
        if isinstance(record, dict) and isinstance(record.get("messageId"), str):
            try:
                counts[record["messageId"]] = int((record.get("attributes") or {}).get("ApproximateReceiveCount", 0))
            except (TypeError, ValueError):
                counts[record["messageId"]] = 0
    return counts


def is_sqs_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and bool(records) and _is_sqs(records[0])


def _is_sqs(record: Any) -> bool:
    return isinstance(record, dict) and record.get("eventSource") == "aws:sqs" and "body" in record


def _json(text: Any) -> Any:
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
