"""Starting the real serving container locally, as SageMaker would: the model artifact unpacked into
a model directory, SageMaker's environment set, `serve` as the argument, `/ping` polled until ready.

There is no Docker engine on these machines, so "the container" is `container/serve` run as a
process with the same environment the image would get.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from batch.local.ports import listening_socket, wait_http_ok
from batch.orchestration_settings import child_process_environment
from batch.s3_uri import S3Uri

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO_ROOT / "container" / "serve"


@dataclass(frozen=True)
class Answer:
    content_type: str
    body: bytes


class InvocationFailed(Exception):
    """One `/invocations` call that did not answer 2xx, classified once for every caller:
    `client` (4xx: the input is bad, no retry helps), `server` (5xx), `timeout`, `unreachable`
    (connection refused or reset: the container is down)."""

    def __init__(
        self,
        kind: Literal["client", "server", "timeout", "unreachable"],
        detail: str,
        *,
        status: int | None = None,
        body: bytes = b"",
        content_type: str = "text/plain",
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.body = body
        self.content_type = content_type

    @property
    def retryable(self) -> bool:
        return self.kind != "client"


class ContainerStartupFailed(RuntimeError):
    """The container exited before answering /ping; `reason` is what it said last, whole."""

    def __init__(self, returncode: int, reason: str, log_path: Path) -> None:
        super().__init__(f"container exited with code {returncode} during start-up: {reason} (log: {log_path})")
        self.returncode = returncode
        self.reason = reason
        self.log_path = log_path


_LOG_LINE = re.compile(r"^(INFO|WARNING|ERROR|DEBUG|CRITICAL)\b|^\d{4}-\d\d-\d\d|^\[")
MAX_REASON_CHARS = 800  # SageMaker's FailureReason holds 1024; leave room for the words around it


def startup_reason(log_text: str) -> str:
    """The meaningful end of a start-up log: the last traceback's exception lines (not its frames),
    else the last non-empty lines; module paths dropped from the exception name
    (`batch.errors.ModelLoadError: x` -> `ModelLoadError: x`)."""
    lines = [line.rstrip() for line in log_text.splitlines()]
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")), default=-1)
    if start >= 0:
        tail = lines[start + 1 :]
        # Frames are indented; the exception (possibly several lines) follows the last indented line.
        last_frame = max((i for i, line in enumerate(tail) if line.startswith(" ")), default=-1)
        reason_lines = []
        for line in tail[last_frame + 1 :]:
            if _LOG_LINE.match(line):  # the server's shutdown log after the exception
                break
            if line.strip():
                reason_lines.append(line)
    else:
        reason_lines = [line for line in lines if line.strip()][-3:]
    reason = "\n".join(reason_lines).strip() or "no output (see the log)"
    name, sep, rest = reason.partition(": ")
    if sep and "." in name and " " not in name:
        reason = f"{name.rpartition('.')[2]}: {rest}"
    return reason if len(reason) <= MAX_REASON_CHARS else "..." + reason[-MAX_REASON_CHARS:]


def invoke(url: str, body: bytes, headers: dict[str, str], *, timeout_s: float) -> Answer:
    """POST `body` to the container's `/invocations` at `url`; `InvocationFailed` unless it answers 2xx."""
    request = urllib.request.Request(f"{url}/invocations", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Answer(response.headers.get("Content-Type", "application/octet-stream"), response.read())
    except urllib.error.HTTPError as exc:
        answer = exc.read()
        kind: Literal["client", "server"] = "client" if exc.code < 500 else "server"
        content_type = exc.headers.get("Content-Type", "application/json")
        detail = answer.decode(errors="replace")
        raise InvocationFailed(kind, detail, status=exc.code, body=answer, content_type=content_type) from None
    except TimeoutError as exc:
        raise InvocationFailed("timeout", f"{type(exc).__name__}: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        # HTTPException: a container that dies while streaming its answer leaves an IncompleteRead
        # (a manifest's answer is chunked): the request failed and is retried like a refused one.
        raise InvocationFailed("unreachable", f"{type(exc).__name__}: {exc}") from None


def serve_command() -> list[str]:
    """`container/serve serve` from a checkout; the module itself when installed elsewhere."""
    if SERVE_SCRIPT.exists():
        return [str(SERVE_SCRIPT), "serve"]
    return [sys.executable, "-m", "batch.server", "serve"]


def unpack_model(s3: Any, model_data_url: str, into: Path) -> Path:
    """Download `model.tar.gz` and unpack it, refusing members that would escape `into`."""
    uri = S3Uri.parse(model_data_url)
    into.mkdir(parents=True, exist_ok=True)
    archive = into.parent / (into.name + ".tar.gz")
    s3.download_file(uri.bucket, uri.key, str(archive))
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return into


class ServingContainer:
    """One running instance of the serving container."""

    def __init__(
        self,
        *,
        model_dir: Path,
        environment: dict[str, str],
        aws_environment: dict[str, str],
        log_path: Path | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.model_dir = model_dir
        # What "the image" runs: `container/serve serve` unless the stack was configured otherwise.
        self._command = command or serve_command()
        self._env = child_process_environment(
            {
                **aws_environment,
                **environment,
                "SM_MODEL_DIR": str(model_dir),
                "POSE_BIND_HOST": "127.0.0.1",
            },
            # The interpreter that runs us also runs `container/serve` (its `python3`).
            path_first=str(Path(sys.executable).parent),
        )
        self._socket: socket.socket | None = None
        self._reserve_port()
        self._log_path = log_path or Path(tempfile.mkstemp(prefix="posebatch-container-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self._log_path

    def _reserve_port(self) -> None:
        """A fresh listening socket for the next process (`batch.local.ports.listening_socket`)."""
        self._socket = listening_socket()
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._env["SAGEMAKER_BIND_TO_PORT"] = str(self.port)
        self._env["POSE_LISTEN_FD"] = str(self._socket.fileno())

    def start(self, *, startup_timeout_s: float = 240.0) -> ServingContainer:
        if self._socket is None:  # started again after a stop: its old port may be anyone's now
            self._reserve_port()
        assert self._socket is not None
        try:
            with self._log_path.open("ab") as log_file:
                self._process = subprocess.Popen(
                    self._command,
                    env=self._env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(self._socket.fileno(),),
                )
        finally:
            # The process holds the socket now; ours closed, a dead process's port refuses connections.
            self._socket.close()
            self._socket = None
        deadline = time.monotonic() + startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ContainerStartupFailed(
                    self._process.returncode, startup_reason(self.log_tail(200)), self._log_path
                )
            try:
                wait_http_ok(f"{self.url}/ping", timeout_s=min(2.0, deadline - time.monotonic()))
                return self
            except TimeoutError:
                continue
        self.stop()
        raise TimeoutError(f"container did not pass /ping within {startup_timeout_s:.0f}s; log: {self._log_path}")

    def restart(self, *, startup_timeout_s: float = 240.0) -> ServingContainer:
        """Replace this instance's process (SageMaker replaces an instance that fails its health
        checks): the old one is killed, a new one starts on a fresh port and must pass /ping."""
        self.kill()
        self._process = None
        return self.start(startup_timeout_s=startup_timeout_s)

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the container is not running")
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: what a crashed or OOM-killed container looks like (tests use it)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after the grace period, as `docker stop` does."""
        if self._socket is not None:  # reserved, never started
            self._socket.close()
            self._socket = None
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def ping(self, timeout_s: float = 2.0) -> bool:
        """SageMaker's health check: True when /ping answers 200, False on any error or timeout."""
        try:
            return self.get_json("/ping", timeout_s)[0] == 200
        except (OSError, ValueError):
            return False

    def get_json(self, path: str, timeout_s: float = 5.0) -> tuple[int, Any]:
        import json

        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
