"""Real-time endpoints on the local SageMaker stand-in, instance-backed or serverless: their fleet and
SageMaker's runtime wire protocol, so that a plain boto3 `sagemaker-runtime` client's
`invoke_endpoint(EndpointName=..., Body=..., ContentType=...)` works against the stack.

`POST /endpoints/{name}/invocations` (REST-JSON, as botocore sends it): the body goes to one instance's
`/invocations` with `Content-Type`, `Accept`, `X-Amzn-SageMaker-Custom-Attributes` and
`X-Amzn-SageMaker-Inference-Id`; the container's answer comes back with its content type and
`x-Amzn-Invoked-Production-Variant`. SageMaker's limits are kept:

- a request body over 6 MB (serverless: 4 MB) is refused with HTTP 413 before any container sees it;
- the container has 60 s to answer; past that, or on its 4xx/5xx, the caller gets a `ModelError` (424)
  carrying the container's status and message, as SageMaker reports it;
- serverless: `ServerlessConfig` is checked against its bounds (`MemorySizeInMB` 1024-6144 in 1 GB steps,
  `MaxConcurrency` 1-200, `ProvisionedConcurrency` 1-`MaxConcurrency`), there is no container until the
  first request (the cold start, recorded in `RealtimeFleet.cold_starts`: the container's start to its
  first answer) unless provisioned concurrency keeps one warm, and more than `MaxConcurrency` requests at
  once are refused with 429 `ThrottlingException` (what AWS sends then is not confirmed: callers retry).

Not emulated: `MemorySizeInMB` is recorded, not enforced (the container gets this machine's memory and
CPUs); a serverless endpoint keeps its container once started (AWS reclaims idle ones after some minutes,
and the next request is cold again); response-size limits; more than one variant.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from batch.local.container import Answer, InvocationFailed, ServingContainer, invoke
from batch.local.sagemaker.api import validation_error
from batch.local.sagemaker.instance_supervisor import Instance, InstanceSupervisor

if TYPE_CHECKING:
    from batch.local.sagemaker.endpoint_service import Endpoint, Endpoints, FleetSpec
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_PAYLOAD_BYTES = 6 * MB  # InvokeEndpoint's request limit
SERVERLESS_MAX_PAYLOAD_BYTES = 4 * MB
INVOCATION_TIMEOUT_S = 60.0  # a real-time container must answer within 60 s
SERVERLESS_PING_TIMEOUT_S = 180.0  # a serverless container must pass /ping within 3 minutes of start
DEFAULT_STARTUP_TIMEOUT_S = 240.0
SERVERLESS_MEMORY_MB = range(1024, 6144 + 1, 1024)
SERVERLESS_MAX_CONCURRENCY = 200
_FORWARDED_HEADERS = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-inference-id")


@dataclass(frozen=True)
class ServerlessConfig:
    memory_mb: int
    max_concurrency: int
    provisioned_concurrency: int | None = None

    @classmethod
    def from_variant(cls, variant: dict[str, Any]) -> ServerlessConfig | None:
        config = variant.get("ServerlessConfig")
        if not config:
            return None
        provisioned = config.get("ProvisionedConcurrency")
        return cls(
            int(config.get("MemorySizeInMB") or 0),
            int(config.get("MaxConcurrency") or 0),
            None if provisioned is None else int(provisioned),
        )


def check_variant(variant: dict[str, Any], *, asynchronous: bool) -> None:
    """A production variant as CreateEndpointConfig checks it: a `ServerlessConfig` within its bounds,
    and not mixed with instances or an asynchronous configuration."""
    serverless = ServerlessConfig.from_variant(variant)
    if serverless is None:
        return
    if asynchronous:
        raise validation_error("Serverless endpoints do not support AsyncInferenceConfig")
    if variant.get("InstanceType") or variant.get("InitialInstanceCount"):
        raise validation_error("A serverless variant takes no InstanceType or InitialInstanceCount")
    if serverless.memory_mb not in SERVERLESS_MEMORY_MB:
        raise validation_error(
            f"ServerlessConfig.MemorySizeInMB {serverless.memory_mb} must be one of "
            f"{', '.join(str(m) for m in SERVERLESS_MEMORY_MB)}"
        )
    if not 1 <= serverless.max_concurrency <= SERVERLESS_MAX_CONCURRENCY:
        raise validation_error(
            f"ServerlessConfig.MaxConcurrency {serverless.max_concurrency} must be between 1 and "
            f"{SERVERLESS_MAX_CONCURRENCY}"
        )
    provisioned = serverless.provisioned_concurrency
    if provisioned is not None and not 1 <= provisioned <= serverless.max_concurrency:
        raise validation_error(
            f"ServerlessConfig.ProvisionedConcurrency {provisioned} must be between 1 and MaxConcurrency "
            f"({serverless.max_concurrency})"
        )


class InvokeError(Exception):
    """An InvokeEndpoint answered with an AWS error: status, error type (None: none sent) and body."""

    def __init__(self, status: int, error_type: str | None, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.body = {"message": message, **extra}

    def response(self) -> JSONResponse:
        headers = {"x-amzn-ErrorType": self.error_type} if self.error_type else {}
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def _validation(message: str) -> InvokeError:
    return InvokeError(400, "ValidationError", message)


@dataclass(frozen=True)
class ColdStart:
    """A serverless request that found no container: from starting one to its first answer."""

    seconds: float
    ping_seconds: float  # of which: until the container passed /ping (model loaded)


class RealtimeFleet:
    """The containers serving one configuration of a real-time endpoint."""

    def __init__(self, stack: EmbeddedStack, spec: FleetSpec) -> None:
        self.endpoint_name = spec.endpoint_name
        self.variant_name = str(spec.variant.get("VariantName") or "AllTraffic")
        self.serverless = ServerlessConfig.from_variant(spec.variant)
        self.max_payload_bytes = SERVERLESS_MAX_PAYLOAD_BYTES if self.serverless else MAX_PAYLOAD_BYTES
        self.cold_starts: list[ColdStart] = []
        count = 1 if self.serverless else int(spec.variant.get("InitialInstanceCount") or 1)
        self.instances = [
            Instance(
                index,
                ServingContainer(
                    model_dir=spec.model_dir,
                    environment=dict(spec.model.get("Environment") or {}),
                    aws_environment=stack.environment,
                    log_path=spec.log_dir / f"instance-{index}.log",
                    command=stack.serve_command,
                ),
            )
            for index in range(count)
        ]
        self._startup_timeout_s = (
            SERVERLESS_PING_TIMEOUT_S
            if self.serverless
            else float(spec.variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or DEFAULT_STARTUP_TIMEOUT_S)
        )
        self._supervisor: InstanceSupervisor | None = None
        self._state = threading.Condition()
        self._in_flight = 0
        self._draining = False
        self._next = 0
        self._start_lock = threading.Lock()  # one cold start at a time; the others wait for it
        self._slots = threading.BoundedSemaphore(self.serverless.max_concurrency) if self.serverless else None

    def start(self) -> RealtimeFleet:
        """Instance-backed: every instance passes /ping. Serverless: none yet, unless provisioned."""
        if self.serverless is not None:
            if self.serverless.provisioned_concurrency:
                self.instances[0].container.start(startup_timeout_s=self._startup_timeout_s)
            else:
                self.instances[0].healthy.clear()
                self.instances[0].running = False
            return self
        try:
            for instance in self.instances:
                instance.container.start(startup_timeout_s=self._startup_timeout_s)
        except Exception:
            self.stop()
            raise
        # Backlog 0: a real-time endpoint never wakes from zero instances by itself.
        self._supervisor = InstanceSupervisor(self.endpoint_name, self.instances, lambda: 0)
        return self

    # --- Fleet ---------------------------------------------------------------------------------
    def instance_counts(self) -> tuple[int, int]:
        if self._supervisor is not None:
            return self._supervisor.running_count, self._supervisor.desired
        alive = sum(1 for i in self.instances if i.container.alive())
        return alive, alive

    def scale(self, count: int) -> None:
        if self._supervisor is not None:
            self._supervisor.scale(count)

    def drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._state:
            self._draining = True
            while self._in_flight and time.monotonic() < deadline:
                self._state.wait(min(1.0, max(0.0, deadline - time.monotonic())))

    def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.stop()
        for instance in self.instances:
            instance.container.stop(grace_s=10)

    # --- requests ------------------------------------------------------------------------------
    @contextmanager
    def lease(self) -> Iterator[bool]:
        """True while this fleet takes the request (counted in flight until it is answered); False once
        it drains: the caller goes to the endpoint's new fleet."""
        with self._state:
            if self._draining:
                yield False
                return
            self._in_flight += 1
        try:
            yield True
        finally:
            with self._state:
                self._in_flight -= 1
                self._state.notify_all()

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
        """One request, under a lease. Raises `InvokeError` with the answer SageMaker would give."""
        if self._slots is not None and not self._slots.acquire(blocking=False):
            raise InvokeError(
                429,
                "ThrottlingException",
                f"Endpoint {self.endpoint_name} is at its MaxConcurrency ({self._max_concurrency}); retry later",
            )
        try:
            container, cold = self._container()
            try:
                answer = invoke(container.url, body, headers, timeout_s=INVOCATION_TIMEOUT_S)
            except InvocationFailed as exc:
                raise _model_error(exc, self.endpoint_name) from None
            if cold is not None:
                started, ping_s = cold
                cold_start = ColdStart(time.monotonic() - started, ping_s)
                self.cold_starts.append(cold_start)
                log.info("%s: cold start %.1f s (/ping after %.1f s)", self.endpoint_name, cold_start.seconds, ping_s)
            return answer
        finally:
            if self._slots is not None:
                self._slots.release()

    @property
    def _max_concurrency(self) -> int:
        return self.serverless.max_concurrency if self.serverless else 0

    def _container(self) -> tuple[ServingContainer, tuple[float, float] | None]:
        """The instance to send to (round robin over healthy ones), and for a serverless cold start
        (start time, seconds until /ping passed)."""
        if self.serverless is not None:
            instance = self.instances[0]
            with self._start_lock:
                if instance.container.alive():
                    return instance.container, None
                started = time.monotonic()
                try:
                    if instance.running:  # it ran and died: a new container, as SageMaker would start
                        instance.container.restart(startup_timeout_s=self._startup_timeout_s)
                    else:
                        instance.container.start(startup_timeout_s=self._startup_timeout_s)
                except Exception as exc:
                    raise InvokeError(
                        424, "ModelError", f"The serverless endpoint's container did not start: {exc}"
                    ) from None
                instance.running = True
                instance.healthy.set()
                return instance.container, (started, time.monotonic() - started)
        with self._state:
            healthy = [i for i in self.instances if i.healthy.is_set() and i.container.alive()]
            if not healthy:
                raise InvokeError(503, "ServiceUnavailable", f"Endpoint {self.endpoint_name} has no healthy instance")
            self._next += 1
            return healthy[self._next % len(healthy)].container, None


def _model_error(exc: InvocationFailed, endpoint_name: str) -> InvokeError:
    """How SageMaker reports a container that failed or did not answer in time."""
    log_stream = f"arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
    if exc.kind == "timeout":
        message = (
            "Your invocation timed out while waiting for a response from container primary. Review the latency "
            "metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
        )
        return InvokeError(424, "ModelError", message, LogStreamArn=log_stream)
    if exc.kind == "unreachable":
        return InvokeError(503, "ServiceUnavailable", f"The model container did not answer: {exc.detail}")
    text = exc.body.decode(errors="replace")
    message = (
        f'Received {exc.kind} error ({exc.status}) from primary with message "{text[:800]}". '
        f"See {log_stream} for more information."
    )
    return InvokeError(
        424, "ModelError", message, OriginalStatusCode=exc.status, OriginalMessage=text, LogStreamArn=log_stream
    )


def start_fleet(stack: EmbeddedStack, spec: FleetSpec) -> RealtimeFleet:
    return RealtimeFleet(stack, spec).start()


class RealtimeRuntime:
    """`POST /endpoints/{name}/invocations` (InvokeEndpoint)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self._endpoints = endpoints

    async def invoke(self, endpoint_name: str, request: Request) -> Response:
        try:
            endpoint = self._serving(endpoint_name)
            limit = int(endpoint.fleet.max_payload_bytes)
            body = await _read_body(request, limit)
            headers = {name: value for name, value in request.headers.items() if name.lower() in _FORWARDED_HEADERS}
            answer, variant = await anyio.to_thread.run_sync(self._call, endpoint, body, headers)
        except InvokeError as exc:
            return exc.response()
        return Response(
            answer.body, media_type=answer.content_type, headers={"x-Amzn-Invoked-Production-Variant": variant}
        )

    def _serving(self, endpoint_name: str) -> Endpoint:
        endpoint = self._endpoints.find(endpoint_name)
        if endpoint is None:
            raise _validation(f"Endpoint {endpoint_name} of account 000000000000 not found.")
        if endpoint.kind == "async":
            raise _validation(f"Endpoint {endpoint_name} is an asynchronous endpoint: use InvokeEndpointAsync.")
        if endpoint.status not in ("InService", "Updating") or endpoint.fleet is None:
            raise _validation(f"Endpoint {endpoint_name} is {endpoint.status}.")
        return endpoint

    @staticmethod
    def _call(endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> tuple[Answer, str]:
        # An update moves traffic by swapping the endpoint's fleet: a fleet that has begun draining sends
        # the request on to the one that replaced it, so no request lands on a container being stopped.
        for _ in range(3):
            fleet: RealtimeFleet = endpoint.fleet
            with fleet.lease() as taken:
                if taken:
                    return fleet.invoke(body, headers), fleet.variant_name
        raise InvokeError(503, "ServiceUnavailable", f"Endpoint {endpoint.name} is being updated; retry")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 when it exceeds `limit` (no container sees it). An oversize body is still read
    to its end, unkept, so that the client finishes sending and reads the 413 instead of a reset."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
    if size > limit:
        raise InvokeError(413, None, f"HTTP content length exceeded {limit} bytes.")
    return b"".join(chunks)


def install_runtime(stack: EmbeddedStack, endpoints: Endpoints) -> RealtimeRuntime:
    """Add InvokeEndpoint's route to the stack's SageMaker stand-in."""
    runtime = RealtimeRuntime(endpoints)
    stack.sagemaker.app.add_api_route("/endpoints/{endpoint_name}/invocations", runtime.invoke, methods=["POST"])
    return runtime
