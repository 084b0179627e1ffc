"""Lambda entry point on the async endpoint's error topic: retry failed inferences with backoff, then
write the error record at the mirrored key.

The logic is `batch.async_inference.retry`; the configuration is `TriggerConfig` and `RetryPolicy`
(`batch.orchestration_settings`). Clients and configuration are built once per cold start.
"""

from __future__ import annotations

from typing import Any

import boto3

from batch.async_inference.lambda_clients import client_config
from batch.async_inference.retry import AsyncErrorHandler
from batch.orchestration_settings import RetryPolicy, TriggerConfig

_handler: AsyncErrorHandler | None = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _handler
    if _handler is None:
        config = client_config()
        _handler = AsyncErrorHandler(
            TriggerConfig.from_env(),
            RetryPolicy.from_env(),
            boto3.client("sagemaker-runtime", config=config),
            boto3.client("s3", config=config),
        )
    return _handler(event, context)
