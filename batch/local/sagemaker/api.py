"""The local stand-in for the SageMaker control plane and runtime, spoken over HTTP.

It speaks SageMaker's own wire protocols (AWS JSON 1.1 with `X-Amz-Target: SageMaker.<Operation>`
for the control plane, REST-JSON under `/endpoints/...` for the runtime), so an ordinary boto3
`sagemaker` or `sagemaker-runtime` client pointed at it with `endpoint_url` (or
`AWS_ENDPOINT_URL_SAGEMAKER`) works unchanged: the launcher and the async client run the same code
locally and on AWS.

Operations are plain functions registered by feature modules (`transform_job_service`, `endpoint_service`,
`model_registry_service`); this module holds only the dispatch, the shared model table, the tags of every
resource and the error shape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

Operation = Callable[[dict[str, Any]], dict[str, Any]]
# A model package ARN -> the container its InferenceSpecification names (Image, ModelDataUrl, Environment).
PackageResolver = Callable[[str], dict[str, Any]]


class SageMakerApiError(Exception):
    """Answered as AWS does: HTTP 400 and `{"__type": code, "message": ...}`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation_error(message: str) -> SageMakerApiError:
    return SageMakerApiError("ValidationException", message)


def not_found(message: str) -> SageMakerApiError:
    # SageMaker answers Describe* of an unknown name with a ValidationException "Could not find ...".
    return SageMakerApiError("ValidationException", message)


def arn(region: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:000000000000:{kind}/{name.lower()}"


@dataclass
class LocalSageMaker:
    """Shared state of the stand-in. Feature modules keep their own state next to it."""

    region: str = "us-east-1"
    lock: threading.RLock = field(default_factory=threading.RLock)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    app: FastAPI = field(default_factory=lambda: FastAPI(title="PoseBatch local SageMaker stand-in"))
    shutdown_hooks: list[Callable[[], None]] = field(default_factory=list)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # resource ARN -> {key: value}
    # Set by the model registry (`model_registry_service`): CreateModel of a `ModelPackageName` container.
    package_resolver: PackageResolver | None = None

    def __post_init__(self) -> None:
        self.register("CreateModel", self._create_model)
        self.register("DescribeModel", self._describe_model)
        self.register("DeleteModel", self._delete_model)
        self.register("AddTags", self._add_tags)
        self.register("ListTags", self._list_tags)
        self.register("DeleteTags", self._delete_tags)
        self.app.add_api_route("/", self._dispatch, methods=["POST"])

    def register(self, name: str, operation: Operation) -> None:
        self.operations[name] = operation

    def shutdown(self) -> None:
        for hook in reversed(self.shutdown_hooks):
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")

    def model(self, name: str) -> dict[str, Any]:
        with self.lock:
            found = self.models.get(name)
        if found is None:
            raise not_found(f'Could not find model "{name}".')
        return found

    async def _dispatch(self, request: Request) -> JSONResponse:
        target = request.headers.get("x-amz-target", "")
        name = target.rpartition(".")[2]
        operation = self.operations.get(name)
        if operation is None:
            return _error(SageMakerApiError("UnknownOperationException", f"{target!r} is not supported"))
        try:
            body = await request.json() if await request.body() else {}
            result = await anyio.to_thread.run_sync(operation, body)
        except SageMakerApiError as exc:
            return _error(exc)
        except Exception:
            log.exception("operation %s failed", name)
            return _error(SageMakerApiError("InternalFailure", f"{name} failed", 500))
        return JSONResponse(result, media_type="application/x-amz-json-1.1")

    # --- models: shared by transform jobs and endpoints ---------------------------------------
    def _create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("ModelName")
        container = request.get("PrimaryContainer") or (request.get("Containers") or [None])[0]
        if container and container.get("ModelPackageName") and not container.get("Image"):
            container = self._from_package(container)
        if not name or not container or not container.get("Image"):
            raise validation_error("ModelName and PrimaryContainer.Image (or ModelPackageName) are required")
        with self.lock:
            if name in self.models:
                raise validation_error(f'Cannot create already existing model "{name}".')
            model_arn = arn(self.region, "model", name)
            self.models[name] = {
                "ModelName": name,
                "PrimaryContainer": container,
                "ExecutionRoleArn": request.get("ExecutionRoleArn", ""),
                "CreationTime": time.time(),
                "ModelArn": model_arn,
            }
        self.tag(model_arn, request.get("Tags"))
        return {"ModelArn": model_arn}

    def _from_package(self, container: dict[str, Any]) -> dict[str, Any]:
        """A container naming a model package gets the package's image and model data, as on SageMaker;
        the model's own `Environment` is laid over the package's."""
        if self.package_resolver is None:
            raise validation_error("model packages are not available on this stand-in")
        resolved = self.package_resolver(str(container["ModelPackageName"]))
        environment = {**(resolved.get("Environment") or {}), **(container.get("Environment") or {})}
        return {**container, **resolved, "Environment": environment}

    # --- tags: any resource, by ARN ---------------------------------------------------------------
    def tag(self, resource_arn: str, tags: list[dict[str, str]] | None) -> None:
        if tags:
            with self.lock:
                self.tags.setdefault(resource_arn, {}).update({t["Key"]: t.get("Value", "") for t in tags})

    def _add_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        resource_arn = str(request.get("ResourceArn") or "")
        if not resource_arn.startswith("arn:"):
            raise validation_error("ResourceArn must be an ARN")
        self.tag(resource_arn, request.get("Tags") or [])
        return {"Tags": request.get("Tags") or []}

    def _list_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            found = dict(self.tags.get(str(request.get("ResourceArn")), {}))
        return {"Tags": [{"Key": key, "Value": value} for key, value in sorted(found.items())]}

    def _delete_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            found = self.tags.get(str(request.get("ResourceArn")), {})
            for key in request.get("TagKeys") or []:
                found.pop(key, None)
        return {}

    def _describe_model(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self.model(str(request.get("ModelName"))))

    def _delete_model(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.models.pop(str(request.get("ModelName")), None) is None:
                raise not_found(f'Could not find model "{request.get("ModelName")}".')
        return {}


def _error(exc: SageMakerApiError) -> JSONResponse:
    return JSONResponse(
        {"__type": exc.code, "message": exc.message},
        status_code=exc.status,
        headers={"x-amzn-ErrorType": exc.code},
        media_type="application/x-amz-json-1.1",
    )
