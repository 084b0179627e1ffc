"""The data plane of the local Batch Transform stand-in: how one instance turns input files into
requests to the real serving container and `.out` files, with SageMaker's semantics.

- `SplitType=None`: each object is one request; bigger than `MaxPayloadInMB` fails the file.
- `SplitType=Line`: one record per line; `MultiRecord` packs as many lines as fit in the payload
  limit, never mixing two files. `AssembleWith=Line` puts a newline after each record's response.
- At most `MaxConcurrentTransforms` requests in flight per instance.
- A request that fails (connection error, 5xx, timeout) is retried `InvocationsMaxRetries` times;
  if the container died it is restarted first. A 4xx answer is final.
- A file with a request that finally failed gets no `.out`; the other files still finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from batch.local.container import InvocationFailed, ServingContainer, invoke
from batch.s3_uri import S3Uri

log = logging.getLogger(__name__)

Strategy = Literal["SingleRecord", "MultiRecord"]
MB = 1024 * 1024


class FileFailed(Exception):
    """One input file cannot be transformed; the message names why."""


class JobStopped(Exception):
    pass


@dataclass(frozen=True)
class RunParameters:
    """The job's effective settings, after SageMaker's precedence (request > container > defaults)."""

    max_concurrent: int
    max_payload_mb: int
    batch_strategy: Strategy
    split_type: str
    content_type: str | None
    accept: str | None
    assemble_with: str
    timeout_s: float
    max_retries: int

    @property
    def max_payload_bytes(self) -> int | None:
        return None if self.max_payload_mb == 0 else self.max_payload_mb * MB


@dataclass(frozen=True)
class InputFile:
    key: str
    rel: str
    size: int


class Instance:
    """One "ML instance" of the job: a serving container, restarted when it dies."""

    def __init__(self, index: int, make_container: Callable[[int], ServingContainer]) -> None:
        self.index = index
        self._make = make_container
        self._lock = threading.Lock()
        self.container: ServingContainer | None = None
        self.restarts = 0

    def start(self) -> Instance:
        self.container = self._make(self.index).start()
        return self

    @property
    def url(self) -> str:
        return self._started().url

    def execution_parameters(self) -> dict[str, Any] | None:
        """The container's `/execution-parameters` answer; None when it has none (404) or it is not JSON."""
        status, answer = self._started().get_json("/execution-parameters")
        return answer if status == 200 and isinstance(answer, dict) else None

    def _started(self) -> ServingContainer:
        if self.container is None:
            raise RuntimeError(f"instance {self.index} is not started")
        return self.container

    def recover(self, failed_url: str, *, health_timeout_s: float = 10.0) -> None:
        """After a failed request: restart the container if it died or stopped answering /ping
        (once, whichever thread sees it first); otherwise let the caller retry."""
        with self._lock:
            current = self.container
            if current is None or current.url != failed_url:
                return  # another thread already replaced it
            # `alive()` can say yes for a moment while a killed process is being reaped: a dead or
            # unresponsive container is told apart by /ping within a bounded wait, as SageMaker does.
            deadline = time.monotonic() + health_timeout_s
            while time.monotonic() < deadline:
                if not current.alive():
                    break
                if current.ping():
                    return
                time.sleep(0.2)
            log.warning("container of instance %d died or stopped answering; restarting it", self.index)
            current.stop(grace_s=5)
            self.container = self._make(self.index).start()
            self.restarts += 1

    def stop(self) -> None:
        with self._lock:
            if self.container is not None:
                self.container.stop(grace_s=10)


class InstanceWorker:
    """Runs the files assigned to one instance."""

    def __init__(
        self,
        instance: Instance,
        params: RunParameters,
        *,
        s3: Any,
        output: S3Uri,
        input_bucket: str,
        stop: threading.Event,
        on_response: Callable[[Instance], None],
        on_retry: Callable[[], None],
    ) -> None:
        self.instance = instance
        self.params = params
        self._s3 = s3
        self._output = output
        self._bucket = input_bucket
        self._stop = stop
        self._on_response = on_response
        self._on_retry = on_retry
        self.done: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def run(self, files: list[InputFile]) -> None:
        window = threading.BoundedSemaphore(self.params.max_concurrent * 2)
        pending: deque[tuple[InputFile, list[Future[bytes]] | FileFailed]] = deque()
        with ThreadPoolExecutor(self.params.max_concurrent, thread_name_prefix="transform-req") as pool:
            for item in files:
                if self._stop.is_set():
                    break
                try:
                    futures: list[Future[bytes]] = []
                    for body in self._requests(item):
                        window.acquire()
                        future = pool.submit(self._invoke, body)
                        future.add_done_callback(lambda _: window.release())
                        futures.append(future)
                    pending.append((item, futures))
                except FileFailed as exc:
                    pending.append((item, exc))
                # Write finished files in order as we go, so responses do not pile up in memory.
                while pending and _finished(pending[0][1]):
                    self._finish(*pending.popleft())
            while pending:
                self._finish(*pending.popleft())

    def _requests(self, item: InputFile) -> list[bytes]:
        limit = self.params.max_payload_bytes
        if self.params.split_type == "None" and limit is not None and item.size > limit:
            raise FileFailed(f"{item.size} bytes exceeds MaxPayloadInMB={self.params.max_payload_mb}")
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=item.key)["Body"].read()
        except ClientError as exc:
            raise FileFailed(f"cannot read s3://{self._bucket}/{item.key}: {exc}") from None
        if self.params.split_type == "None":
            if limit is not None and len(body) > limit:
                raise FileFailed(f"{len(body)} bytes exceeds MaxPayloadInMB={self.params.max_payload_mb}")
            return [body]
        # b"\n" only, as SageMaker's Line splitter: a key may hold U+2028, U+2029 or U+0085.
        records = [line + b"\n" for line in body.split(b"\n") if line.strip()]
        if self.params.batch_strategy == "SingleRecord":
            return records
        return pack_records(records, limit)

    def _invoke(self, body: bytes) -> bytes:
        attempts = 1 + self.params.max_retries
        last_error = "no attempt"
        for attempt in range(attempts):
            if self._stop.is_set():
                raise JobStopped()
            if attempt:
                self._on_retry()
            url = self.instance.url
            headers = {"Content-Type": self.params.content_type, "Accept": self.params.accept}
            try:
                answer = invoke(url, body, {k: v for k, v in headers.items() if v}, timeout_s=self.params.timeout_s)
                self._on_response(self.instance)
                return answer.body
            except InvocationFailed as exc:
                if exc.status is not None:
                    last_error = f"HTTP {exc.status}: {exc.detail[:300]}"
                    if not exc.retryable:
                        raise FileFailed(f"the container answered {last_error}") from None
                else:
                    last_error = exc.detail
            log.info(
                "request to instance %d failed (attempt %d/%d): %s",
                self.instance.index,
                attempt + 1,
                attempts,
                last_error,
            )
            self.instance.recover(url)
        raise FileFailed(f"request failed after {attempts} attempts: {last_error}")

    def _finish(self, item: InputFile, outcome: list[Future[bytes]] | FileFailed) -> None:
        if isinstance(outcome, FileFailed):
            self.failed.append((item.rel, str(outcome)))
            return
        parts: list[bytes] = []
        for future in outcome:
            try:
                parts.append(future.result())
            except FileFailed as exc:
                self.failed.append((item.rel, str(exc)))
                return
            except JobStopped:
                return
            except Exception as exc:
                log.exception("request for %s failed unexpectedly", item.rel)
                self.failed.append((item.rel, f"internal error: {type(exc).__name__}"))
                return
        out = self._output.child(item.rel + ".out")
        self._s3.put_object(Bucket=out.bucket, Key=out.key, Body=assemble(parts, self.params.assemble_with))
        self.done.append(item.rel)


def _finished(outcome: list[Future[bytes]] | FileFailed) -> bool:
    return isinstance(outcome, FileFailed) or all(f.done() for f in outcome)


def pack_records(records: list[bytes], limit: int | None) -> list[bytes]:
    """MultiRecord: as many whole records per request as fit in `limit` bytes (None: no limit)."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if limit is not None and len(record) > limit:
            raise FileFailed(f"a record of {len(record)} bytes exceeds the payload limit of {limit} bytes")
        if current and limit is not None and size + len(record) > limit:
            batches.append(b"".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        batches.append(b"".join(current))
    return batches


def assemble(parts: list[bytes], assemble_with: str) -> bytes:
    if assemble_with != "Line":
        return b"".join(parts)
    # A MultiRecord answer is already one line per record: do not add blank lines after it.
    return b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts)


def spread_over_instances(files: list[InputFile], instance_count: int) -> list[list[InputFile]]:
    """Like SageMaker: whole files per instance, decided by key (round-robin over sorted keys)."""
    ordered = sorted(files, key=lambda f: f.key)
    return [ordered[i::instance_count] for i in range(instance_count)]
