"""Asynchronous endpoints on the local SageMaker stand-in.

Control plane (AWS JSON 1.1): Create/Describe/Delete EndpointConfig, Create/Describe/Delete/List
Endpoint. Creating an endpoint downloads and unpacks the model artifact and starts one real serving
container per instance, in the background (`Creating` -> `InService` or `Failed`, as on AWS).
Runtime (REST-JSON): `POST /endpoints/{name}/async-invocations`, answered 202 with the inference id
and the output/failure locations; the work itself runs in `async_worker.AsyncRunner`, whose instances
are health-checked, replaced and scaled (UpdateEndpointWeightsAndCapacities, 0 included) by
`instance_supervisor.InstanceSupervisor` (docs/async-faults.md says what is and is not emulated). As on AWS, the
response object is `<S3OutputPath>/<inference id>.out` and the failure object
`<S3FailurePath>/<inference id>-error.out` (PoseBatch never sends `Filename` or
`S3OutputPathExtension`, so the stand-in does not emulate them).

`deploy_local_endpoint` deploys the default endpoint through the same boto3 code as on AWS and wires
the S3-event path: bucket notification -> SQS -> `batch.async_inference.trigger` (the Lambda's code).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from batch.local.container import ServingContainer, unpack_model
from batch.local.sagemaker.api import SageMakerApiError, arn, not_found, validation_error
from batch.local.sagemaker.async_worker import AsyncRequest, AsyncRunner, Notification

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

_H = "x-amzn-sagemaker-"
_DEFAULT_CONCURRENCY = 4  # SageMaker picks one when MaxConcurrentInvocationsPerInstance is unset


@dataclass
class _Endpoint:
    name: str
    config_name: str
    status: str = "Creating"
    failure_reason: str | None = None
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    containers: list[ServingContainer] = field(default_factory=list)
    runner: AsyncRunner | None = None


class AsyncEndpoints:
    def __init__(self, stack: EmbeddedStack) -> None:
        self._stack = stack
        self._api = stack.sagemaker
        self._configs: dict[str, dict[str, Any]] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        operations = {
            "CreateEndpointConfig": self._create_endpoint_config,
            "DescribeEndpointConfig": self._describe_endpoint_config,
            "DeleteEndpointConfig": self._delete_endpoint_config,
            "CreateEndpoint": self._create_endpoint,
            "DescribeEndpoint": self._describe_endpoint,
            "DeleteEndpoint": self._delete_endpoint,
            "ListEndpoints": self._list_endpoints,
            "UpdateEndpointWeightsAndCapacities": self._update_capacities,
        }
        for name, operation in operations.items():
            self._api.register(name, operation)
        self._api.app.add_api_route(
            "/endpoints/{endpoint_name}/async-invocations", self._invoke_async, methods=["POST"]
        )
        self._api.shutdown_hooks.append(self.shutdown)

    # --- endpoint configs ----------------------------------------------------------------------
    def _create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("EndpointConfigName")
        variants = request.get("ProductionVariants") or []
        if not name or not variants:
            raise validation_error("EndpointConfigName and ProductionVariants are required")
        for variant in variants:
            self._api.model(str(variant.get("ModelName")))  # AWS checks the model exists
        with self._api.lock:
            if name in self._configs:
                raise validation_error(f'Cannot create already existing endpoint configuration "{name}".')
            config_arn = arn(self._api.region, "endpoint-config", name)
            self._configs[name] = {**request, "EndpointConfigArn": config_arn, "CreationTime": time.time()}
        return {"EndpointConfigArn": config_arn}

    def _describe_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self._config(str(request.get("EndpointConfigName"))))

    def _delete_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._api.lock:
            if self._configs.pop(str(request.get("EndpointConfigName")), None) is None:
                raise not_found(f'Could not find endpoint configuration "{request.get("EndpointConfigName")}".')
        return {}

    def _config(self, name: str) -> dict[str, Any]:
        with self._api.lock:
            found = self._configs.get(name)
        if found is None:
            raise not_found(f'Could not find endpoint configuration "{name}".')
        return found

    # --- endpoints -----------------------------------------------------------------------------
    def _create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name, config_name = request.get("EndpointName"), request.get("EndpointConfigName")
        if not name or not config_name:
            raise validation_error("EndpointName and EndpointConfigName are required")
        config = self._config(config_name)
        with self._api.lock:
            if name in self._endpoints:
                raise validation_error(
                    f'Cannot create already existing endpoint "{arn(self._api.region, "endpoint", name)}".'
                )
            endpoint = self._endpoints[name] = _Endpoint(name, config_name)
        threading.Thread(target=self._start, args=(endpoint, config), name=f"create-{name}", daemon=True).start()
        return {"EndpointArn": arn(self._api.region, "endpoint", name)}

    def _start(self, endpoint: _Endpoint, config: dict[str, Any]) -> None:
        try:
            async_config = config.get("AsyncInferenceConfig")
            if not async_config:
                raise RuntimeError("the local stand-in runs asynchronous endpoints only (no AsyncInferenceConfig)")
            variant = config["ProductionVariants"][0]
            model = self._api.model(variant["ModelName"])["PrimaryContainer"]
            model_dir = self._stack.home / "endpoints" / endpoint.name / "model"
            shutil.rmtree(model_dir, ignore_errors=True)
            unpack_model(self._stack.client("s3"), model["ModelDataUrl"], model_dir)
            for index in range(int(variant.get("InitialInstanceCount") or 1)):
                container = ServingContainer(
                    model_dir=model_dir,
                    environment=dict(model.get("Environment") or {}),
                    aws_environment=self._stack.environment,
                    log_path=self._stack.home / "endpoints" / endpoint.name / f"instance-{index}.log",
                    command=self._stack.serve_command,
                )
                endpoint.containers.append(container)
                container.start()
            client_config = async_config.get("ClientConfig") or {}
            endpoint.runner = AsyncRunner(
                endpoint_name=endpoint.name,
                containers=endpoint.containers,
                max_concurrent_per_instance=int(
                    client_config.get("MaxConcurrentInvocationsPerInstance") or _DEFAULT_CONCURRENCY
                ),
                notification=Notification.from_config(async_config["OutputConfig"]),
                s3=self._stack.client("s3"),
                sns=self._stack.client("sns"),
                region=self._api.region,
            )
            endpoint.status = "InService"
        except Exception as exc:
            log.exception("endpoint %s failed to start", endpoint.name)
            endpoint.failure_reason = str(exc)[:1024]
            endpoint.status = "Failed"
            self._stop_endpoint(endpoint)
        endpoint.modified = time.time()

    def _describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(str(request.get("EndpointName")))
        config = self._configs.get(endpoint.config_name, {})
        variant = (config.get("ProductionVariants") or [{}])[0]
        runner = endpoint.runner
        running = runner.supervisor.running_count if runner else sum(1 for c in endpoint.containers if c.alive())
        desired = runner.supervisor.desired if runner else int(variant.get("InitialInstanceCount") or 1)
        described: dict[str, Any] = {
            "EndpointName": endpoint.name,
            "EndpointArn": arn(self._api.region, "endpoint", endpoint.name),
            "EndpointConfigName": endpoint.config_name,
            "EndpointStatus": endpoint.status,
            "CreationTime": endpoint.created,
            "LastModifiedTime": endpoint.modified,
            "ProductionVariants": [
                {
                    "VariantName": variant.get("VariantName", "AllTraffic"),
                    "CurrentInstanceCount": running,
                    "DesiredInstanceCount": desired,
                }
            ],
        }
        if endpoint.failure_reason:
            described["FailureReason"] = endpoint.failure_reason
        if config.get("AsyncInferenceConfig"):
            described["AsyncInferenceConfig"] = config["AsyncInferenceConfig"]
        return described

    def _delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(str(request.get("EndpointName")))
        with self._api.lock:
            self._endpoints.pop(endpoint.name, None)
        self._stop_endpoint(endpoint)
        return {}

    def _list_endpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        contains, status = request.get("NameContains") or "", request.get("StatusEquals")
        with self._api.lock:
            endpoints = list(self._endpoints.values())
        return {
            "Endpoints": [
                {
                    "EndpointName": e.name,
                    "EndpointArn": arn(self._api.region, "endpoint", e.name),
                    "CreationTime": e.created,
                    "LastModifiedTime": e.modified,
                    "EndpointStatus": e.status,
                }
                for e in endpoints
                if contains in e.name and (status is None or e.status == status)
            ]
        }

    def _update_capacities(self, request: dict[str, Any]) -> dict[str, Any]:
        """What Application Auto Scaling calls on AWS; here it scales between zero and the endpoint's
        InitialInstanceCount (more instances than that are not emulated)."""
        endpoint = self._endpoint(str(request.get("EndpointName")))
        if endpoint.runner is None:
            raise validation_error(f"Endpoint {endpoint.name} is {endpoint.status}.")
        for desired in request.get("DesiredWeightsAndCapacities") or []:
            if "DesiredInstanceCount" in desired:
                endpoint.runner.supervisor.scale(int(desired["DesiredInstanceCount"]))
        endpoint.modified = time.time()
        return {"EndpointArn": arn(self._api.region, "endpoint", endpoint.name)}

    def runner(self, name: str) -> AsyncRunner | None:
        """The queue and workers behind an endpoint (tests observe its concurrency)."""
        return self._endpoint(name).runner

    def _endpoint(self, name: str) -> _Endpoint:
        with self._api.lock:
            found = self._endpoints.get(name)
        if found is None:
            raise not_found(f'Could not find endpoint "{name}".')
        return found

    def _stop_endpoint(self, endpoint: _Endpoint) -> None:
        if endpoint.runner is not None:
            endpoint.runner.stop()
        for container in endpoint.containers:
            container.stop(grace_s=10)

    def shutdown(self) -> None:
        with self._api.lock:
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for endpoint in endpoints:
            self._stop_endpoint(endpoint)

    # --- runtime -------------------------------------------------------------------------------
    async def _invoke_async(self, endpoint_name: str, request: Request) -> JSONResponse:
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
        with self._api.lock:
            endpoint = self._endpoints.get(endpoint_name)
        if endpoint is None:
            raise SageMakerApiError("ValidationError", f"Endpoint {endpoint_name} of account 000000000000 not found.")
        if endpoint.status != "InService" or endpoint.runner is None:
            raise SageMakerApiError("ValidationError", f"Endpoint {endpoint_name} is {endpoint.status}.")
        input_location = headers.get(_H + "inputlocation")
        if not input_location or not input_location.startswith("s3://"):
            raise SageMakerApiError("ValidationError", "InputLocation must be an S3 URI")
        inference_id = headers.get(_H + "inference-id") or _new_id()
        if len(inference_id) > 64:
            raise SageMakerApiError("ValidationError", "InferenceId must be at most 64 characters")
        output_config = self._configs[endpoint.config_name]["AsyncInferenceConfig"]["OutputConfig"]
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
        if not endpoint.runner.submit(accepted):
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


def install(stack: EmbeddedStack) -> AsyncEndpoints:
    """Register the endpoint operations and the runtime route on the stack's SageMaker stand-in."""
    return AsyncEndpoints(stack)


def endpoints_of(stack: EmbeddedStack) -> AsyncEndpoints:
    """What `install` put on this stack."""
    assert stack.async_endpoints is not None, "the stack is not started"
    return stack.async_endpoints
