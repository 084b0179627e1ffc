"""Asynchronous endpoints on the local SageMaker stand-in: their fleet and their runtime.

The control plane (configs, endpoints, updates) is `endpoint_service`'s; an endpoint with an
`AsyncInferenceConfig` gets its fleet here: one real serving container per instance behind
`async_worker.AsyncRunner`, whose instances are health-checked, replaced and scaled
(UpdateEndpointWeightsAndCapacities, 0 included) by `instance_supervisor.InstanceSupervisor`
(docs/async-faults.md says what is and is not emulated). The queue of accepted requests belongs to the
endpoint, so an update's new instances take it over. Runtime (REST-JSON): `POST
/endpoints/{name}/async-invocations`, answered 202 with the inference id and the output/failure
locations. As on AWS, the response object is `<S3OutputPath>/<inference id>.out` and the failure object
`<S3FailurePath>/<inference id>-error.out` (PoseBatch never sends `Filename` or
`S3OutputPathExtension`, so the stand-in does not emulate them).

`async_deployment.deploy_local_endpoint` deploys the default endpoint through the same boto3 code as on
AWS and wires the S3-event path: bucket notification -> SQS -> `batch.async_inference.trigger`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import JSONResponse

from batch.local.container import ServingContainer
from batch.local.sagemaker.api import SageMakerApiError
from batch.local.sagemaker.async_worker import AsyncRequest, AsyncRunner, Notification, RequestQueue

if TYPE_CHECKING:
    from batch.local.sagemaker.endpoint_service import Endpoints, FleetSpec
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

_H = "x-amzn-sagemaker-"
_DEFAULT_CONCURRENCY = 4  # SageMaker picks one when MaxConcurrentInvocationsPerInstance is unset


@dataclass
class AsyncFleet:
    """The instances of one configuration of an asynchronous endpoint."""

    runner: AsyncRunner
    containers: list[ServingContainer]

    def instance_counts(self) -> tuple[int, int]:
        return self.runner.supervisor.running_count, self.runner.supervisor.desired

    def scale(self, count: int) -> None:
        self.runner.supervisor.scale(count)

    def drain(self, timeout_s: float) -> None:
        self.runner.drain(timeout_s)

    def stop(self) -> None:
        self.runner.stop()
        for container in self.containers:
            container.stop(grace_s=10)


def start_fleet(stack: EmbeddedStack, spec: FleetSpec, requests: RequestQueue) -> AsyncFleet:
    """One container per instance, all passing /ping, and the workers that feed them from `requests`."""
    async_config = spec.config["AsyncInferenceConfig"]
    containers: list[ServingContainer] = []
    try:
        for index in range(int(spec.variant.get("InitialInstanceCount") or 1)):
            container = ServingContainer(
                model_dir=spec.model_dir,
                environment=dict(spec.model.get("Environment") or {}),
                aws_environment=stack.environment,
                log_path=spec.log_dir / f"instance-{index}.log",
                command=stack.serve_command,
            )
            containers.append(container)
            container.start()
    except Exception:
        for container in containers:
            container.stop(grace_s=10)
        raise
    client_config = async_config.get("ClientConfig") or {}
    runner = AsyncRunner(
        endpoint_name=spec.endpoint_name,
        containers=containers,
        max_concurrent_per_instance=int(
            client_config.get("MaxConcurrentInvocationsPerInstance") or _DEFAULT_CONCURRENCY
        ),
        notification=Notification.from_config(async_config["OutputConfig"]),
        s3=stack.client("s3"),
        sns=stack.client("sns"),
        region=stack.region,
        requests=requests,
    )
    return AsyncFleet(runner, containers)


class AsyncRuntime:
    """`POST /endpoints/{name}/async-invocations` (InvokeEndpointAsync)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self._endpoints = endpoints

    # --- runtime -------------------------------------------------------------------------------
    async def invoke_async(self, endpoint_name: str, request: Request) -> JSONResponse:
        try:
            accepted = self._accept(endpoint_name, {k.lower(): _utf8(v) for k, v in request.headers.items()})
        except SageMakerApiError as exc:
            return JSONResponse(
                {"message": exc.message}, status_code=exc.status, headers={"x-amzn-ErrorType": exc.code}
            )
        return JSONResponse(
            {"InferenceId": accepted.inference_id},
            status_code=202,
            headers={
                "X-Amzn-SageMaker-OutputLocation": _latin1(accepted.output_location),
                "X-Amzn-SageMaker-FailureLocation": _latin1(accepted.failure_location),
            },
        )

    def _accept(self, endpoint_name: str, headers: dict[str, str]) -> AsyncRequest:
        endpoint = self._endpoints.find(endpoint_name)
        if endpoint is None:
            raise SageMakerApiError("ValidationError", f"Endpoint {endpoint_name} of account 000000000000 not found.")
        if endpoint.status not in ("InService", "Updating") or endpoint.fleet is None:
            raise SageMakerApiError("ValidationError", f"Endpoint {endpoint_name} is {endpoint.status}.")
        if endpoint.kind != "async":
            raise SageMakerApiError(
                "ValidationError", f"Endpoint {endpoint_name} is not an asynchronous endpoint: use InvokeEndpoint."
            )
        input_location = headers.get(_H + "inputlocation")
        if not input_location or not input_location.startswith("s3://"):
            raise SageMakerApiError("ValidationError", "InputLocation must be an S3 URI")
        inference_id = headers.get(_H + "inference-id") or _new_id()
        if len(inference_id) > 64:
            raise SageMakerApiError("ValidationError", "InferenceId must be at most 64 characters")
        output_config = self._endpoints.config(endpoint.config_name)["AsyncInferenceConfig"]["OutputConfig"]
        output_path = str(output_config["S3OutputPath"]).rstrip("/")
        failure_path = str(output_config.get("S3FailurePath") or output_path).rstrip("/")
        accepted = AsyncRequest(
            inference_id=inference_id,
            endpoint_name=endpoint_name,
            input_location=input_location,
            content_type=headers.get(_H + "content-type") or "application/octet-stream",
            accept=headers.get(_H + "accept"),
            custom_attributes=headers.get(_H + "custom-attributes"),
            output_location=f"{output_path}/{inference_id}.out",
            failure_location=f"{failure_path}/{inference_id}-error.out",
            invocation_timeout_s=_bounded(headers, "invocationtimeoutseconds", 900, 1, 3600),
            request_ttl_s=_bounded(headers, "requestttlseconds", 21600, 60, 21600),
            received_at=time.time(),
        )
        if not endpoint.requests.submit(accepted):
            log.info("inference %s is already queued; not queued twice", inference_id)
        return accepted


def _bounded(headers: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = headers.get(_H + name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SageMakerApiError("ValidationError", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise SageMakerApiError("ValidationError", f"{name} must be between {low} and {high}")
    return value


def _utf8(value: str) -> str:
    """HTTP headers arrive decoded as latin-1; boto3 sends UTF-8 bytes (keys with non-ASCII names)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _latin1(value: str) -> str:
    return value.encode("utf-8").decode("latin-1")


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())


def install_runtime(stack: EmbeddedStack, endpoints: Endpoints) -> AsyncRuntime:
    """Add InvokeEndpointAsync's route to the stack's SageMaker stand-in."""
    runtime = AsyncRuntime(endpoints)
    stack.sagemaker.app.add_api_route(
        "/endpoints/{endpoint_name}/async-invocations", runtime.invoke_async, methods=["POST"]
    )
    return runtime


def endpoints_of(stack: EmbeddedStack) -> Endpoints:
    """The stack's endpoints (`endpoints_of(stack).runner(name)`: an async endpoint's queue and workers)."""
    from batch.local.sagemaker import endpoint_service

    return endpoint_service.endpoints_of(stack)
