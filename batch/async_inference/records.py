"""Error records written at an image's mirrored keypoints key by the orchestration (not the container):
when the image could not be submitted, when its retries ran out, or when its event was dead-lettered.
Standard library and boto3 only (the Lambda handlers use it)."""

from __future__ import annotations

import json
import logging
from typing import Any

from batch.errors import error_record
from batch.s3_uri import S3Uri

log = logging.getLogger(__name__)

MAX_S3_KEY_BYTES = 1024


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


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code")
    return 404 if code in ("404", "NoSuchKey", "NotFound") else status
