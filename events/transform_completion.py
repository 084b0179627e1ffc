"""Lambda entry point for "SageMaker Transform Job State Change" (and its own continuation events):
record the job as it ended and fan its pages out to the pages queue (or finalise them here), notify SNS.

The logic is `batch.transform.completion`; its settings come from `batch.orchestration_settings` and the
time budget from the invocation's remaining time.
"""

from __future__ import annotations

from typing import Any

from batch.orchestration_settings import CompletionConfig, finalize_budget_s
from batch.transform.completion import handle_records


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None
    return handle_records(event, CompletionConfig.from_env(), budget_s=finalize_budget_s(remaining))
