"""Endpoints on the local SageMaker stand-in, whatever serves them: the control plane (Create/Describe/
Delete EndpointConfig; Create/Describe/Delete/List/Update Endpoint; UpdateEndpointWeightsAndCapacities)
and the fleet of serving containers behind each endpoint, started by the module of its kind:

- asynchronous (`AsyncInferenceConfig`): `async_endpoint_service` (the queue, InvokeEndpointAsync);
- real-time, instance-backed or serverless (`ServerlessConfig`): `realtime_endpoint_service` (InvokeEndpoint).

Creating an endpoint downloads and unpacks the model artifact and starts its fleet in the background
(`Creating` -> `InService` or `Failed`, as on AWS). UpdateEndpoint is SageMaker's blue/green deployment:
the new configuration's fleet starts beside the old one (`Updating`; the old fleet keeps serving and
`PendingDeploymentSummary` names the new configuration), traffic moves to the new fleet once it passes
its health checks, and the old fleet drains (what it has in flight finishes) before it stops. A new
fleet that cannot start leaves the endpoint `InService` on its old configuration, with the reason in
`FailureReason`. Requests are never dropped by an update.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from batch.local.sagemaker.api import arn, not_found, validation_error
from batch.local.sagemaker.async_worker import RequestQueue

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

Kind = Literal["async", "realtime", "serverless"]
# How long an update waits for the replaced fleet's requests in flight: the longest a request may take
# (an async invocation's InvocationTimeoutSeconds is at most 3600 s; real-time 60 s).
DRAIN_TIMEOUT_S = 3600.0


class Fleet(Protocol):
    """The serving containers of one endpoint configuration."""

    def instance_counts(self) -> tuple[int, int]:
        """(current, desired) instances."""

    def scale(self, count: int) -> None: ...

    def drain(self, timeout_s: float) -> None:
        """Take no new requests; wait for those in flight (up to `timeout_s`)."""

    def stop(self) -> None: ...


@dataclass(frozen=True)
class FleetSpec:
    """What a kind's module needs to start the fleet of one endpoint configuration."""

    endpoint_name: str
    config: dict[str, Any]
    variant: dict[str, Any]
    model: dict[str, Any]  # the model's PrimaryContainer (Image, ModelDataUrl, Environment)
    model_dir: Path
    log_dir: Path


@dataclass
class Endpoint:
    name: str
    config_name: str
    kind: Kind
    status: str = "Creating"
    failure_reason: str | None = None
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    fleet: Any = None  # a Fleet once started
    pending_config: str | None = None  # the configuration an update is deploying
    requests: RequestQueue = field(default_factory=RequestQueue)  # async endpoints' accepted requests


def kind_of(config: dict[str, Any]) -> Kind:
    if config.get("AsyncInferenceConfig"):
        return "async"
    variants = config.get("ProductionVariants") or [{}]
    return "serverless" if variants[0].get("ServerlessConfig") else "realtime"


class Endpoints:
    def __init__(self, stack: EmbeddedStack) -> None:
        self._stack = stack
        self._api = stack.sagemaker
        self._configs: dict[str, dict[str, Any]] = {}
        self._endpoints: dict[str, Endpoint] = {}
        operations = {
            "CreateEndpointConfig": self._create_endpoint_config,
            "DescribeEndpointConfig": self._describe_endpoint_config,
            "DeleteEndpointConfig": self._delete_endpoint_config,
            "CreateEndpoint": self._create_endpoint,
            "DescribeEndpoint": self._describe_endpoint,
            "DeleteEndpoint": self._delete_endpoint,
            "ListEndpoints": self._list_endpoints,
            "UpdateEndpoint": self._update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self._update_capacities,
        }
        for name, operation in operations.items():
            self._api.register(name, operation)
        self._api.shutdown_hooks.append(self.shutdown)

    # --- endpoint configs ----------------------------------------------------------------------
    def _create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        from batch.local.sagemaker.realtime_endpoint_service import check_variant

        name = request.get("EndpointConfigName")
        variants = request.get("ProductionVariants") or []
        if not name or not variants:
            raise validation_error("EndpointConfigName and ProductionVariants are required")
        for variant in variants:
            self._api.model(str(variant.get("ModelName")))  # AWS checks the model exists
            check_variant(variant, asynchronous=bool(request.get("AsyncInferenceConfig")))
        with self._api.lock:
            if name in self._configs:
                raise validation_error(f'Cannot create already existing endpoint configuration "{name}".')
            config_arn = arn(self._api.region, "endpoint-config", name)
            self._configs[name] = {**request, "EndpointConfigArn": config_arn, "CreationTime": time.time()}
        self._api.tag(config_arn, request.get("Tags"))
        return {"EndpointConfigArn": config_arn}

    def _describe_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        described = dict(self.config(str(request.get("EndpointConfigName"))))
        described.pop("Tags", None)
        return described

    def _delete_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._api.lock:
            if self._configs.pop(str(request.get("EndpointConfigName")), None) is None:
                raise not_found(f'Could not find endpoint configuration "{request.get("EndpointConfigName")}".')
        return {}

    def config(self, name: str) -> dict[str, Any]:
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
        config = self.config(config_name)
        endpoint_arn = arn(self._api.region, "endpoint", name)
        with self._api.lock:
            if name in self._endpoints:
                raise validation_error(f'Cannot create already existing endpoint "{endpoint_arn}".')
            endpoint = self._endpoints[name] = Endpoint(name, config_name, kind_of(config))
        self._api.tag(endpoint_arn, request.get("Tags"))
        threading.Thread(target=self._create, args=(endpoint, config), name=f"create-{name}", daemon=True).start()
        return {"EndpointArn": endpoint_arn}

    def _create(self, endpoint: Endpoint, config: dict[str, Any]) -> None:
        try:
            endpoint.fleet = self._start_fleet(endpoint, config)
            endpoint.status = "InService"
        except Exception as exc:
            log.exception("endpoint %s failed to start", endpoint.name)
            endpoint.failure_reason = str(exc)[:1024]
            endpoint.status = "Failed"
        endpoint.modified = time.time()

    def _start_fleet(self, endpoint: Endpoint, config: dict[str, Any]) -> Fleet:
        from batch.local.container import unpack_model
        from batch.local.sagemaker import async_endpoint_service, realtime_endpoint_service

        variant = config["ProductionVariants"][0]
        model = self._api.model(variant["ModelName"])["PrimaryContainer"]
        # One folder per configuration: an update's new fleet never touches the files the old one serves.
        folder = self._stack.home / "endpoints" / endpoint.name / config["EndpointConfigName"]
        model_dir = folder / "model"
        shutil.rmtree(model_dir, ignore_errors=True)
        unpack_model(self._stack.client("s3"), model["ModelDataUrl"], model_dir)
        spec = FleetSpec(endpoint.name, config, variant, model, model_dir, folder)
        if endpoint.kind == "async":
            return async_endpoint_service.start_fleet(self._stack, spec, endpoint.requests)
        return realtime_endpoint_service.start_fleet(self._stack, spec)

    def _update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.endpoint(str(request.get("EndpointName")))
        config_name = str(request.get("EndpointConfigName") or "")
        config = self.config(config_name)
        endpoint_arn = arn(self._api.region, "endpoint", endpoint.name)
        with self._api.lock:
            if endpoint.status != "InService":
                raise validation_error(f'Cannot update in-progress endpoint "{endpoint_arn}".')
            if kind_of(config) != endpoint.kind:
                raise validation_error(
                    f"Endpoint {endpoint.name} is {endpoint.kind}; configuration {config_name} is {kind_of(config)}: "
                    "an update cannot change the kind of an endpoint"
                )
            endpoint.status, endpoint.pending_config, endpoint.failure_reason = "Updating", config_name, None
            endpoint.modified = time.time()
        retain = bool(request.get("RetainAllVariantProperties"))
        updating = threading.Thread(
            target=self._update, args=(endpoint, config, retain), name=f"update-{endpoint.name}"
        )
        updating.daemon = True
        updating.start()
        return {"EndpointArn": endpoint_arn}

    def _update(self, endpoint: Endpoint, config: dict[str, Any], retain: bool) -> None:
        """`retain` (RetainAllVariantProperties): the new fleet keeps the instance count autoscaling set."""
        try:
            fleet = self._start_fleet(endpoint, config)
            if retain and endpoint.fleet is not None and endpoint.kind != "serverless":
                fleet.scale(endpoint.fleet.instance_counts()[1])
        except Exception as exc:
            log.exception("endpoint %s: the update to %s failed", endpoint.name, config["EndpointConfigName"])
            with self._api.lock:
                endpoint.failure_reason = f"Update to {config['EndpointConfigName']} failed: {exc}"[:1024]
                endpoint.status, endpoint.pending_config, endpoint.modified = "InService", None, time.time()
            return
        with self._api.lock:
            old, endpoint.fleet = endpoint.fleet, fleet  # traffic moves here: new requests reach the new fleet
            deleted = self._endpoints.get(endpoint.name) is not endpoint
        if deleted:
            fleet.drain(0)
            fleet.stop()
            return
        log.info("endpoint %s: traffic on %s; draining the old instances", endpoint.name, config["EndpointConfigName"])
        if old is not None:
            old.drain(DRAIN_TIMEOUT_S)
            old.stop()
        with self._api.lock:
            endpoint.config_name, endpoint.pending_config = config["EndpointConfigName"], None
            endpoint.status, endpoint.modified = "InService", time.time()

    def _describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.endpoint(str(request.get("EndpointName")))
        config = self._configs.get(endpoint.config_name, {})
        variant = (config.get("ProductionVariants") or [{}])[0]
        fleet = endpoint.fleet
        current, desired = fleet.instance_counts() if fleet else (0, int(variant.get("InitialInstanceCount") or 1))
        described_variant: dict[str, Any] = {"VariantName": variant.get("VariantName", "AllTraffic")}
        if endpoint.kind == "serverless":
            described_variant["CurrentServerlessConfig"] = variant["ServerlessConfig"]
        else:
            described_variant.update(CurrentInstanceCount=current, DesiredInstanceCount=desired)
        described: dict[str, Any] = {
            "EndpointName": endpoint.name,
            "EndpointArn": arn(self._api.region, "endpoint", endpoint.name),
            "EndpointConfigName": endpoint.config_name,
            "EndpointStatus": endpoint.status,
            "CreationTime": endpoint.created,
            "LastModifiedTime": endpoint.modified,
            "ProductionVariants": [described_variant],
        }
        if endpoint.pending_config:
            described["PendingDeploymentSummary"] = {
                "EndpointConfigName": endpoint.pending_config,
                "StartTime": endpoint.modified,
            }
        if endpoint.failure_reason:
            described["FailureReason"] = endpoint.failure_reason
        if config.get("AsyncInferenceConfig"):
            described["AsyncInferenceConfig"] = config["AsyncInferenceConfig"]
        return described

    def _delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.endpoint(str(request.get("EndpointName")))
        with self._api.lock:
            self._endpoints.pop(endpoint.name, None)
        if endpoint.fleet is not None:
            endpoint.fleet.stop()
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
        endpoint = self.endpoint(str(request.get("EndpointName")))
        if endpoint.fleet is None or endpoint.kind == "serverless":
            raise validation_error(f"Endpoint {endpoint.name} is {endpoint.status} ({endpoint.kind}).")
        for desired in request.get("DesiredWeightsAndCapacities") or []:
            if "DesiredInstanceCount" in desired:
                endpoint.fleet.scale(int(desired["DesiredInstanceCount"]))
        endpoint.modified = time.time()
        return {"EndpointArn": arn(self._api.region, "endpoint", endpoint.name)}

    def endpoint(self, name: str) -> Endpoint:
        with self._api.lock:
            found = self._endpoints.get(name)
        if found is None:
            raise not_found(f'Could not find endpoint "{name}".')
        return found

    def find(self, name: str) -> Endpoint | None:
        """The endpoint named so, or None (the runtime answers its own error for an unknown one)."""
        with self._api.lock:
            return self._endpoints.get(name)

    def runner(self, name: str) -> Any:
        """The queue and workers behind an asynchronous endpoint (tests observe its concurrency)."""
        fleet = self.endpoint(name).fleet
        return getattr(fleet, "runner", None)

    def fleet(self, name: str) -> Any:
        """The fleet serving an endpoint now (tests and the cold-start benchmark observe it)."""
        return self.endpoint(name).fleet

    def shutdown(self) -> None:
        with self._api.lock:
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for endpoint in endpoints:
            if endpoint.fleet is not None:
                endpoint.fleet.stop()


def install(stack: EmbeddedStack) -> Endpoints:
    """Register the endpoint operations, and each kind's runtime route, on the stack's SageMaker stand-in."""
    from batch.local.sagemaker import async_endpoint_service, realtime_endpoint_service

    endpoints = Endpoints(stack)
    async_endpoint_service.install_runtime(stack, endpoints)
    realtime_endpoint_service.install_runtime(stack, endpoints)
    return endpoints


def endpoints_of(stack: EmbeddedStack) -> Endpoints:
    """What `install` put on this stack (tests and benchmarks observe fleets through it)."""
    assert stack.endpoints is not None, "the stack is not started"
    return stack.endpoints
