"""Loopback ports and readiness polling for the local stack's processes."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from batch.polling import poll


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http_ok(url: str, *, timeout_s: float, interval_s: float = 0.1) -> None:
    """Poll `url` until it answers 2xx; raise TimeoutError naming the URL otherwise."""
    last_error = "no answer"

    def answered() -> bool | None:
        nonlocal last_error
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return True
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except OSError as exc:
            last_error = str(exc)
        return None

    poll(
        answered,
        timeout_s=timeout_s,
        interval_s=interval_s,
        on_timeout=lambda: f"{url} not ready after {timeout_s:.0f}s ({last_error})",
    )
