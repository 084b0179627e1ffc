"""boto3 clients. `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`) are honoured
by botocore itself, which is how the same code talks to AWS or to the embedded local stack."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from batch.orchestration_settings import aws_region


def region() -> str:
    return aws_region()


def client(service: str, *, endpoint_url: str | None = None, max_pool: int = 32) -> Any:
    """A client with a connection pool large enough for our concurrent S3 traffic."""
    config = Config(
        max_pool_connections=max_pool,
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.session.Session().client(
        service,
        region_name=region(),
        endpoint_url=endpoint_url,
        config=config,
    )
