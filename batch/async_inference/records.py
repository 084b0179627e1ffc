"""Error records written at an image's mirrored keypoints key by the orchestration (not the container):
when the image could not be submitted, when its retries ran out, or when its event was dead-lettered.
Standard library and boto3 only (the Lambda handlers use it)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from batch.errors import error_record
from batch.s3_uri import S3Uri

log = logging.getLogger(__name__)

MAX_S3_KEY_BYTES = 1024
# The records the orchestration writes (not the container): never a sign that the work was done.
ORCHESTRATION_CODES = frozenset(
    {
        "submission_failed",
        "resubmit_failed",
        "dead_lettered",
        "container_failed",
        "invocation_timeout",
        "request_expired",
        "inference_failed",
        "input_unreadable",
        "inference_rejected",
        "annotated_name_taken",
    }
)


def write_error_record(s3: Any, keypoints_uri: str, code: str, message: str) -> bool:
    """Put `error_record(code, message)` at `keypoints_uri`; False (logged) when the key is too long
    for S3. A failing write raises: callers let their event be retried for the record's sake."""
    target = S3Uri.parse(keypoints_uri)
    if len(target.key.encode("utf-8")) > MAX_S3_KEY_BYTES:
        log.error("no error record for %s: the key is too long for S3", keypoints_uri[:300])
        return False
    body = json.dumps(error_record(code, message), ensure_ascii=False).encode("utf-8")
    s3.put_object(Bucket=target.bucket, Key=target.key, Body=body, ContentType="application/json")
    log.warning("error record %s at %s: %s", code, keypoints_uri, message[:300])
    return True


def record_exists(s3: Any, uri: str) -> bool:
    target = S3Uri.parse(uri)
    try:
        s3.head_object(Bucket=target.bucket, Key=target.key)
    except Exception as exc:
        if _status(exc) == 404:
            return False
        raise
    return True


def is_missing(exc: Exception) -> bool:
    """Whether a boto3 error says the object does not exist (404)."""
    return _status(exc) == 404


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code")
    return 404 if code in ("404", "NoSuchKey", "NotFound") else status


def written_by_container_since(s3: Any, keypoints_uri: str, since: datetime) -> bool:
    """Whether the container wrote the image's record (a result, or its own error record) at or after
    `since`: a request that timed out or lost its connection may still have finished its work.
    S3's LastModified has whole seconds, so `since` is compared at that resolution."""
    target = S3Uri.parse(keypoints_uri)
    try:
        found = s3.get_object(Bucket=target.bucket, Key=target.key)
    except Exception as exc:
        if _status(exc) == 404:
            return False
        raise
    if found["LastModified"] < since.replace(microsecond=0):
        return False
    try:
        record = json.loads(found["Body"].read())
    except ValueError:
        return False
    error = record.get("error") if isinstance(record, dict) else None
    return not (isinstance(error, dict) and error.get("code") in ORCHESTRATION_CODES)
