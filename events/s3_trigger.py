"""Lambda entry point of the S3 trigger: S3 event -> one asynchronous inference per input image.

The logic is `batch.async_inference.trigger`; the configuration (`POSEBATCH_ENDPOINT_NAME`, ...) is
`batch.orchestration_settings.TriggerConfig`. Clients and configuration are built once per cold start.
"""

from __future__ import annotations

from typing import Any

import boto3

from batch.async_inference.trigger import S3Trigger
from batch.orchestration_settings import TriggerConfig

_trigger: S3Trigger | None = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _trigger
    if _trigger is None:
        config = TriggerConfig.from_env()
        sagemaker = None if config.output_uri else boto3.client("sagemaker")
        _trigger = S3Trigger(config, boto3.client("sagemaker-runtime"), sagemaker, boto3.client("s3"))
    return _trigger(event, context)
