"""The model registry on the local SageMaker stand-in. Model package groups and packages are stored by moto,
which implements them (create, describe, list, update); the stand-in forwards those operations to it, so a
`sagemaker` client pointed at the stack finds them beside everything else, and adds what moto lacks:

- the "SageMaker Model Package State Change" event on (moto's) EventBridge when a package is created or
  its approval status is set, shaped as on AWS (`detail` is the package's description);
- AWS's update semantics: UpdateModelPackage keeps the CustomerMetadataProperties and the approval
  status it is not given (moto would replace them with nothing); a second group of one name is refused;
- CreateModel from a `ModelPackageName` container: the package's image and model data (an unapproved
  version is refused, as SageMaker deploys only approved ones);
- the stack's own group, and its approval rule -> SQS -> `batch.registry.approval` (the code the
  template's Lambda runs), run by the stack's poller.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from batch.local.sagemaker.api import SageMakerApiError, validation_error
from batch.registry import approval
from batch.registry.packages import APPROVED, ensure_group

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

RULE_NAME = "posebatch-model-package-approved"
QUEUE_NAME = "posebatch-model-approvals"
# Operation -> moto's boto3 method.
FORWARDED = {
    "CreateModelPackageGroup": "create_model_package_group",
    "DescribeModelPackageGroup": "describe_model_package_group",
    "ListModelPackageGroups": "list_model_package_groups",
    "CreateModelPackage": "create_model_package",
    "DescribeModelPackage": "describe_model_package",
    "ListModelPackages": "list_model_packages",
    "UpdateModelPackage": "update_model_package",
}


class ModelRegistry:
    def __init__(self, stack: EmbeddedStack) -> None:
        self._stack = stack
        self._moto = stack.moto.client("sagemaker")
        for operation, method in FORWARDED.items():
            self._stack.sagemaker.register(operation, self._forwarder(method))
        self._stack.sagemaker.register("CreateModelPackageGroup", self._create_group)
        self._stack.sagemaker.register("CreateModelPackage", self._create_package)
        self._stack.sagemaker.register("UpdateModelPackage", self._update_package)
        self._stack.sagemaker.package_resolver = self.container_of

    def _call(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = dict(getattr(self._moto, method)(**request))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "ValidationException")
            raise SageMakerApiError(code, str(error.get("Message"))) from None
        except ParamValidationError as exc:
            raise validation_error(str(exc)) from None
        answer.pop("ResponseMetadata", None)
        result: dict[str, Any] = _jsonable(answer)
        return result

    def _forwarder(self, method: str) -> Any:
        return lambda request: self._call(method, request)

    def _create_group(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("ModelPackageGroupName") or "")
        try:
            existing = self._call("describe_model_package_group", {"ModelPackageGroupName": name})
        except SageMakerApiError:
            return self._call("create_model_package_group", request)
        raise validation_error(f"Model Package Group already exists: {existing['ModelPackageGroupArn']}")

    def _create_package(self, request: dict[str, Any]) -> dict[str, Any]:
        created = self._call("create_model_package", request)
        self._emit(str(created["ModelPackageArn"]))
        return created

    def _update_package(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = str(request.get("ModelPackageArn") or "")
        current = self._call("describe_model_package", {"ModelPackageName": arn})
        metadata = dict(current.get("CustomerMetadataProperties") or {})
        metadata.update(request.get("CustomerMetadataProperties") or {})
        for key in request.get("CustomerMetadataPropertiesToRemove") or []:
            metadata.pop(key, None)
        status = request.get("ModelApprovalStatus") or current.get("ModelApprovalStatus")
        merged = {**request, "ModelApprovalStatus": status}
        merged.pop("CustomerMetadataPropertiesToRemove", None)
        if metadata:
            merged["CustomerMetadataProperties"] = metadata
        if "ApprovalDescription" not in request and current.get("ApprovalDescription"):
            merged["ApprovalDescription"] = current["ApprovalDescription"]
        updated = self._call("update_model_package", merged)
        if request.get("ModelApprovalStatus"):
            self._emit(arn)
        return updated

    def _emit(self, arn: str) -> None:
        """The state-change event SageMaker sends to EventBridge (moto sends none)."""
        detail = self._call("describe_model_package", {"ModelPackageName": arn})
        try:
            self._stack.client("events").put_events(
                Entries=[
                    {
                        "Source": "aws.sagemaker",
                        "DetailType": approval.DETAIL_TYPE,
                        "Detail": json.dumps(detail),
                        "Resources": [str(detail["ModelPackageArn"])],
                    }
                ]
            )
        except Exception:
            log.exception("could not put the state-change event of %s", arn)

    def container_of(self, package: str) -> dict[str, Any]:
        """CreateModel's container for a package: its image, model data and environment."""
        described = self._call("describe_model_package", {"ModelPackageName": package})
        if described.get("ModelPackageGroupName") and described.get("ModelApprovalStatus") != APPROVED:
            raise validation_error(
                f"Model package {described['ModelPackageArn']} is {described.get('ModelApprovalStatus')}: "
                "only an approved model package version can be deployed"
            )
        (container, *_) = (described.get("InferenceSpecification") or {}).get("Containers") or [{}]
        return {
            "Image": container.get("Image"),
            "ModelDataUrl": container.get("ModelDataUrl"),
            "Environment": dict(container.get("Environment") or {}),
        }


def _jsonable(value: Any) -> Any:
    """boto3's answer as the JSON SageMaker sends: times as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def install(stack: EmbeddedStack, group: str) -> ModelRegistry:
    """The registry operations on the stand-in, the stack's group, and what an approval in it deploys."""
    registry = ModelRegistry(stack)
    ensure_group(stack.client("sagemaker"), group)

    def on_approval(event: dict[str, Any], context: Any) -> Any:
        return approval.handle_records(event, group=group, clients=stack.client, wait_s=600.0, poll_s=1.0)

    # Long enough for a rollout that waits for an endpoint still updating: never handled twice at once.
    queue_arn = stack.add_sqs_lambda(QUEUE_NAME, on_approval, batch_size=1, attributes={"VisibilityTimeout": "900"})
    events = stack.client("events")
    events.put_rule(Name=RULE_NAME, EventPattern=json.dumps(approval.event_pattern(group)), State="ENABLED")
    events.put_targets(Rule=RULE_NAME, Targets=[{"Id": "model-approval", "Arn": queue_arn}])
    log.info("local model registry ready (group %s)", group)
    return registry
