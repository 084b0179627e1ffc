"""boto3 clients. `client` talks to AWS (botocore itself honours `AWS_ENDPOINT_URL*`); `ClientFactory`
talks to whatever an explicit set of the standard variables names, which is how `--local` commands
reach the embedded stack without writing to this process's environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from batch.orchestration_settings import aws_region

# `clients("s3")`: how flows receive their clients (AWS by default, the local stack in tests and `--local`).
Clients = Callable[[str], Any]


def region() -> str:
    return aws_region()


def _config(max_pool: int) -> Config:
    return Config(
        max_pool_connections=max_pool,
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )


def client(service: str, *, endpoint_url: str | None = None, max_pool: int = 32) -> Any:
    """A client with a connection pool large enough for our concurrent S3 traffic."""
    return boto3.session.Session().client(
        service, region_name=region(), endpoint_url=endpoint_url, config=_config(max_pool)
    )


@dataclass(frozen=True)
class ClientFactory:
    """Clients for the target named by `environment` (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`,
    credentials, region): the local stack's state file holds one."""

    environment: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        env = self.environment
        endpoint = env.get("AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")) or env.get("AWS_ENDPOINT_URL")
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            region_name=aws_region(env) if "AWS_REGION" in env or "AWS_DEFAULT_REGION" in env else region(),
        )
        return session.client(service, endpoint_url=endpoint, config=_config(32))
