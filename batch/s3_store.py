"""S3 reads and writes for the container, on their own thread pool so they never block inference,
restricted to the buckets the container is configured to allow (`POSE_ALLOWED_BUCKETS`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from batch import aws
from batch.errors import BucketNotAllowed, PayloadTooLarge, S3ObjectError
from batch.s3_uri import S3Uri
from batch.settings import Settings


class S3Store:
    def __init__(self, settings: Settings) -> None:
        self._allowed = frozenset(settings.allowed_buckets)
        # What the container reads from S3 has its own limit: the request payload limit is for bodies.
        self._max_bytes = settings.max_s3_object_bytes
        self._pool = ThreadPoolExecutor(max_workers=settings.s3_concurrency, thread_name_prefix="s3")
        self._client: Any = None

    def check_allowed(self, uri: S3Uri) -> None:
        if uri.bucket not in self._allowed:
            allowed = ", ".join(sorted(self._allowed)) or "none (POSE_ALLOWED_BUCKETS is empty)"
            raise BucketNotAllowed(f"bucket {uri.bucket!r} is not allowed for this container; allowed: {allowed}")

    async def get(self, uri: S3Uri) -> bytes:
        self.check_allowed(uri)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._get, uri)

    async def put(self, uri: S3Uri, data: bytes, content_type: str) -> None:
        self.check_allowed(uri)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._put, uri, data, content_type)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _s3(self) -> Any:
        if self._client is None:  # created lazily: the container starts without touching AWS
            self._client = aws.client("s3", max_pool=64)
        return self._client

    def _get(self, uri: S3Uri) -> bytes:
        try:
            response = self._s3().get_object(Bucket=uri.bucket, Key=uri.key)
            if self._max_bytes is not None and response.get("ContentLength", 0) > self._max_bytes:
                response["Body"].close()
                raise PayloadTooLarge(
                    f"{uri} is {response['ContentLength']:,} bytes; the limit is {self._max_bytes:,}"
                    " (POSE_MAX_S3_OBJECT_MB)"
                )
            return bytes(response["Body"].read())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise S3ObjectError(f"could not read {uri}: {code}") from None
        except BotoCoreError as exc:
            raise S3ObjectError(f"could not read {uri}: {exc}") from None

    def _put(self, uri: S3Uri, data: bytes, content_type: str) -> None:
        try:
            self._s3().put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise S3ObjectError(f"could not write {uri}: {code}") from None
        except BotoCoreError as exc:
            raise S3ObjectError(f"could not write {uri}: {exc}") from None
