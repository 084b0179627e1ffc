"""Small S3 objects of the finaliser (plans, outcomes, markers, claims): read whole, written as JSON, and
claimed at most once with S3's conditional writes.

Standard library and botocore only: the Lambda handlers import it.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from botocore.exceptions import ClientError

from batch.s3_uri import S3Uri

_CONFLICT = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def absent(s3: Any, uri: S3Uri, exc: ClientError) -> bool:
    """Whether a failed read means the object does not exist. S3 answers 404 for a missing key only to
    a caller that may list it, and the roles may list only below the output prefix: a 403 there is
    told apart by listing the key itself (a real refusal, or a refused listing, stays an error)."""
    code = _code(exc)
    if code in ("NoSuchKey", "404", "NotFound"):
        return True
    if code not in ("AccessDenied", "403"):
        return False
    try:
        listed = s3.list_objects_v2(Bucket=uri.bucket, Prefix=uri.key, MaxKeys=1).get("Contents", [])
    except ClientError:
        return False
    return not any(item.get("Key") == uri.key for item in listed)


def read_object(s3: Any, uri: S3Uri) -> bytes | None:
    """A small object whole (plans, markers, outcomes), None when it does not exist."""
    try:
        body: bytes = s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        return body
    except ClientError as exc:
        if absent(s3, uri, exc):
            return None
        raise


def read_json(s3: Any, uri: S3Uri) -> Any:
    """A JSON object, None when it does not exist."""
    body = read_object(s3, uri)
    return None if body is None else json.loads(body)


def put_json(s3: Any, uri: S3Uri, data: Any, **extra: str) -> None:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType="application/json", **extra)


def claim(s3: Any, uri: S3Uri, *, lease_s: float) -> bool:
    """Whether this caller now holds the one-time step named by `uri` (the summary and notification of a
    job). The first conditional create wins; a claim older than `lease_s` (longer than any invocation
    lives) belongs to one that died, and is taken over, again conditionally, so only one caller does.
    The winner reads its claim back: S3's conditional writes are atomic, a stand-in's may not be."""
    token = secrets.token_hex(8)
    try:
        put_json(s3, uri, {"claimed_at": time.time(), "token": token}, IfNoneMatch="*")
        return _still_ours(s3, uri, token)
    except ClientError as exc:
        if _code(exc) not in _CONFLICT:
            raise
    try:
        current = s3.get_object(Bucket=uri.bucket, Key=uri.key)
        held = json.loads(current["Body"].read())
    except (ClientError, ValueError):
        return False  # changing under us: another caller is on it
    if time.time() - float(held.get("claimed_at", 0)) < lease_s:
        return False
    try:
        put_json(s3, uri, {"claimed_at": time.time(), "token": token, "taken_over": True}, IfMatch=current["ETag"])
        return _still_ours(s3, uri, token)
    except ClientError as exc:
        if _code(exc) not in _CONFLICT:
            raise
        return False


def _still_ours(s3: Any, uri: S3Uri, token: str) -> bool:
    held = read_json(s3, uri)
    return isinstance(held, dict) and held.get("token") == token
