"""The boto3 client configuration of the async Lambdas, sized to fit inside their own timeout.

One AWS call takes at most `CALL_BUDGET_S`: `MAX_ATTEMPTS` tries of `CONNECT_TIMEOUT_S` +
`READ_TIMEOUT_S` each, plus standard-mode backoff (under a second, then under two). A handler starts a
call only while that much of its invocation is left; the messages it cannot reach in time are
reported failed (SQS `batchItemFailures`) and come back, instead of the whole batch timing out and
being re-sent wholesale. InvokeEndpointAsync only queues the request, so these timeouts are short.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

CONNECT_TIMEOUT_S = 2
READ_TIMEOUT_S = 5
MAX_ATTEMPTS = 3  # first try included: throttling and 5xx are retried with backoff by botocore
CALL_BUDGET_S = MAX_ATTEMPTS * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + 3


def client_config() -> Config:
    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    )


def seconds_left(context: Any) -> float | None:
    """What is left of this Lambda invocation; None outside Lambda (the local poller, tests)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else None


def has_time_for_a_call(context: Any, *, waiting_s: float = 0.0) -> bool:
    left = seconds_left(context)
    return left is None or left - waiting_s >= CALL_BUDGET_S
