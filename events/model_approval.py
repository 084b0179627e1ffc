"""Lambda entry point for "SageMaker Model Package State Change" (approved, in the stack's group): make
the package the default model and move the following endpoints to it.

The logic is `batch.registry.approval`; the group comes from `batch.orchestration_settings`. It waits for
an endpoint that is still updating within the invocation's time (less a margin), then fails so that
Lambda retries the event.
"""

from __future__ import annotations

from typing import Any

import boto3

from batch.orchestration_settings import model_package_group
from batch.registry.approval import handle_records

MARGIN_S = 60.0  # kept back from the invocation's time for the last update calls


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 600.0
    return handle_records(
        event, group=model_package_group(), clients=boto3.client, wait_s=max(0.0, remaining - MARGIN_S)
    )
