"""Lambda entry point for "SageMaker Transform Job State Change" (and its own continuation events):
finalise the job, notify SNS.

The logic is `batch.transform.completion`; the topic and the time budget come from
`batch.orchestration_settings` and the invocation's remaining time.
"""

from __future__ import annotations

from typing import Any

from batch.orchestration_settings import finalize_budget_s, transform_job_prefix, transform_topic_arn
from batch.transform.completion import handle_records


def handler(event: dict[str, Any], context: Any, *, topic_arn: str | None = None) -> dict[str, Any]:
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None
    return handle_records(
        event,
        topic_arn=topic_arn or transform_topic_arn(),
        budget_s=finalize_budget_s(remaining),
        job_prefix=transform_job_prefix(),
    )
