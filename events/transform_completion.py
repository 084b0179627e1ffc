"""Lambda entry point for "SageMaker Transform Job State Change": finalise the job, notify SNS.

The logic is `batch.transform.completion`; the topic comes from `POSEBATCH_TRANSFORM_TOPIC_ARN`
(`batch.orchestration_settings`).
"""

from __future__ import annotations

from typing import Any

from batch.orchestration_settings import transform_topic_arn
from batch.transform.completion import handle_records


def handler(event: dict[str, Any], context: Any, *, topic_arn: str | None = None) -> dict[str, Any]:
    return handle_records(event, topic_arn=topic_arn or transform_topic_arn())
