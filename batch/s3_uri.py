"""Parsing and building `s3://bucket/key` URIs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from batch.errors import InvalidS3Uri

# S3's bucket naming rules (lower-case letters, digits, dots, hyphens; 3-63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, *, allow_empty_key: bool = False) -> S3Uri:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise InvalidS3Uri(f"not an S3 URI (expected s3://bucket/key): {str(uri)[:200]!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not _BUCKET.match(bucket):
            raise InvalidS3Uri(f"invalid bucket name {bucket!r} in {uri[:200]!r}")
        if not key and not allow_empty_key:
            raise InvalidS3Uri(f"S3 URI has no object key: {uri[:200]!r}")
        return cls(bucket, key)

    @property
    def prefix(self) -> str:
        """The key as a folder-like prefix ('' or ending in '/')."""
        return self.key if not self.key or self.key.endswith("/") else self.key + "/"

    def child(self, relative_key: str) -> S3Uri:
        """The object `relative_key` below this prefix. S3 keys are exact strings (`in/x.jpg` and
        `in//x.jpg` are two objects), so the join normalises nothing."""
        return S3Uri(self.bucket, self.prefix + relative_key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"
