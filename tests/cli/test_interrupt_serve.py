"""Ctrl-C on `pose-batch serve` stops it quietly (exit 130): no traceback, no CancelledError."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

from batch.local.ports import free_port
from batch.polling import poll
from tests.cli.commands import environment, start


def _answers(url: str) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return True if response.status == 200 else None
    except OSError:
        return None


def test_ctrl_c_stops_serve_without_a_traceback(tmp_path: Path, model_path: Path) -> None:
    port = free_port()
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    server = start("serve", "--model", str(model_path), "--port", str(port), cwd=tmp_path, env=environment(tmp_path),
                   stdout_path=out, stderr_path=err)  # fmt: skip
    try:
        poll(lambda: _answers(f"http://127.0.0.1:{port}/ping"), timeout_s=180, interval_s=0.5,
             on_timeout=lambda: f"serve never answered /ping: {err.read_text()}")  # fmt: skip
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    log = err.read_text() + out.read_text()
    assert code == 130, log  # the documented exit code of an interrupt
    assert "Traceback" not in log and "CancelledError" not in log
