"""Lambda entry point of the S3 trigger: S3 event -> one asynchronous inference per input image.

The logic is `batch.async_inference.trigger`; the configuration (`POSEBATCH_ENDPOINT_NAME`, ...) is
`batch.orchestration_settings.TriggerConfig`. Clients and configuration are built once per cold start,
with timeouts and retries that fit inside the function's timeout (`lambda_clients`).
"""

from __future__ import annotations

from typing import Any

import boto3

from batch.async_inference.lambda_clients import client_config
from batch.async_inference.trigger import S3Trigger
from batch.orchestration_settings import TriggerConfig

_trigger: S3Trigger | None = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _trigger
    if _trigger is None:
        config, clients = TriggerConfig.from_env(), client_config()
        sagemaker = None if config.output_uri else boto3.client("sagemaker", config=clients)
        runtime = boto3.client("sagemaker-runtime", config=clients)
        _trigger = S3Trigger(config, runtime, sagemaker, boto3.client("s3", config=clients))
    return _trigger(event, context)
