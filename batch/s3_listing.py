"""Listing S3: every object under a prefix, page by page (the one paginator loop in the product)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from batch.s3_uri import S3Uri


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Each object summary (`Key`, `Size`, `ETag`, ...) under `prefix` ('' = the whole bucket), in key order."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def list_keys(s3: Any, prefix: S3Uri) -> list[str]:
    """Every object below `prefix`, as keys relative to it, sorted. Folder markers are not inputs."""
    keys = (str(obj["Key"]) for obj in list_objects(s3, prefix.bucket, prefix.prefix))
    return sorted(key[len(prefix.prefix) :] for key in keys if not key.endswith("/"))
