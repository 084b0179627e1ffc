"""Waiting for something with a deadline (the one polling loop): a job to end, an endpoint to be in
service, a server to answer, a summary to appear."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    check: Callable[[], T | None],
    *,
    timeout_s: float | None,
    interval_s: float,
    on_timeout: Callable[[], str],
) -> T:
    """Call `check` until it returns something other than None and return that. Past `timeout_s`
    (None: no deadline), raise TimeoutError with the message `on_timeout()` gives then."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        found = check()
        if found is not None:
            return found
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(on_timeout())
            time.sleep(min(interval_s, left))
        else:
            time.sleep(interval_s)
