"""Lambda entry point for the pages queue: finalise a task's pages; the invocation that completes the job
writes `_SUMMARY.json` and notifies SNS. The event source's MaximumConcurrency bounds how many run at once.

The logic is `batch.transform.fanout`; its settings come from `batch.orchestration_settings`.
"""

from __future__ import annotations

from typing import Any

from batch.aws import client
from batch.orchestration_settings import CompletionConfig
from batch.transform.fanout import handle_task_records


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = CompletionConfig.from_env()
    return handle_task_records(event, clients=client, topic_arn=config.topic_arn, job_prefix=config.job_prefix)
