"""Loopback ports and readiness polling for the local stack's processes."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from batch.polling import poll


def listening_socket(backlog: int = 128) -> socket.socket:
    """A loopback socket bound to a free port and listening, for a child process to inherit (`pass_fds`).

    The port is held from the moment it is chosen. Handing a child a bare port number (`free_port`) left
    it free until the child bound it, seconds later after its imports, and another process choosing a
    port meanwhile (a parallel test worker's container) could take it: our `/ping` then answered from
    the other container, and our requests went to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def free_port() -> int:
    """A port free now, not reserved: only for servers in this process that bind at once (or tests)."""
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
