"""Model packages in a model package group: registering one (what the training pipeline calls, through
`register_model_package`), listing them, resolving `latest`, `latest-approved` or an ARN, approving and
rejecting. Plain boto3 `sagemaker` calls: the same code runs against AWS and the local stand-in (whose
registry is moto's, kept by the stand-in).

A package carries what deploying and judging it needs:

- `InferenceSpecification`: the serving image and `model.tar.gz`, the content types the container takes
  and gives, the instance types it is meant for;
- `ModelMetrics.ModelQuality.Statistics`: the evaluation's metrics file (S3, JSON);
- `CustomerMetadataProperties`: the dataset, the base model and the AP (keypoint mAP50-95);
- `ModelApprovalStatus`: `PendingManualApproval` when registered; a person approves or rejects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from batch.orchestration_settings import DEFAULT_MODEL_PACKAGE_GROUP as DEFAULT_GROUP

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
LATEST, LATEST_APPROVED = "latest", "latest-approved"
# What the serving container takes and gives (README, "The serving container").
CONTENT_TYPES = ["image/jpeg", "image/png", "application/x-image", "application/jsonlines"]
RESPONSE_TYPES = ["application/json", "image/jpeg", "application/jsonlines"]
INSTANCE_TYPES = ["ml.g5.xlarge", "ml.g4dn.xlarge", "ml.c6i.xlarge", "ml.m5.xlarge"]
# CustomerMetadataProperties keys (values are strings of at most 256 characters).
DATASET, BASE_MODEL, AP = "dataset", "base_model", "ap"
MAX_METADATA_CHARS = 256


class RegistryError(Exception):
    """A package or group that does not exist, or cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class ModelPackage:
    arn: str
    group: str
    version: int
    status: str
    image: str
    model_data_url: str
    metrics_uri: str | None
    dataset: str | None
    base_model: str | None
    ap: float | None
    created: str
    description: str | None = None
    approval_description: str | None = None

    @property
    def name(self) -> str:
        """`group/version`, how a person names it."""
        return f"{self.group}/{self.version}"

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> ModelPackage:
        """From DescribeModelPackage's answer."""
        containers = (described.get("InferenceSpecification") or {}).get("Containers") or [{}]
        metrics = ((described.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
        metadata = described.get("CustomerMetadataProperties") or {}
        ap = metadata.get(AP)
        created = described.get("CreationTime")
        return cls(
            arn=str(described["ModelPackageArn"]),
            group=str(described.get("ModelPackageGroupName") or ""),
            version=int(described.get("ModelPackageVersion") or 0),
            status=str(described.get("ModelApprovalStatus") or ""),
            image=str(containers[0].get("Image") or ""),
            model_data_url=str(containers[0].get("ModelDataUrl") or ""),
            metrics_uri=metrics.get("S3Uri"),
            dataset=metadata.get(DATASET),
            base_model=metadata.get(BASE_MODEL),
            ap=float(ap) if ap not in (None, "") else None,
            created=created.isoformat() if isinstance(created, datetime) else str(created or ""),
            description=described.get("ModelPackageDescription"),
            approval_description=described.get("ApprovalDescription"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_package": self.arn,
            "name": self.name,
            "group": self.group,
            "version": self.version,
            "status": self.status,
            "ap": self.ap,
            "dataset": self.dataset,
            "base_model": self.base_model,
            "metrics": self.metrics_uri,
            "image": self.image,
            "model_data": self.model_data_url,
            "created": self.created,
            "description": self.description,
            "approval_description": self.approval_description,
        }


def ensure_group(sagemaker: Any, group: str, description: str = "PoseBatch pose models") -> bool:
    """Create the model package group unless it exists; True when created."""
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return False
    except ClientError as exc:
        if not _missing(exc):
            raise
    sagemaker.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription=description)
    return True


def register_model_package(
    sagemaker: Any,
    *,
    image: str,
    model_data_url: str,
    metrics_uri: str,
    dataset: str,
    base_model: str,
    ap: float,
    group: str = DEFAULT_GROUP,
    description: str | None = None,
    instance_types: list[str] | None = None,
) -> ModelPackage:
    """Register a trained model as a new version in `group` (created if missing), pending manual approval.

    `image`: the serving image URI; `model_data_url`: its `model.tar.gz` (what the container loads);
    `metrics_uri`: the evaluation's metrics JSON in S3; `dataset`: where the training data came from;
    `base_model`: the checkpoint it was fine-tuned from; `ap`: its keypoint AP on the validation split."""
    metadata = {DATASET: dataset, BASE_MODEL: base_model, AP: f"{ap:.4f}"}
    for key, value in metadata.items():
        if not value or len(value) > MAX_METADATA_CHARS:
            raise ValueError(f"{key} must be 1 to {MAX_METADATA_CHARS} characters, got {len(value)}")
    ensure_group(sagemaker, group)
    types = instance_types or INSTANCE_TYPES
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": PENDING,
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": RESPONSE_TYPES,
            "SupportedRealtimeInferenceInstanceTypes": types,
            "SupportedTransformInstanceTypes": types,
        },
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        "CustomerMetadataProperties": metadata,
    }
    if description:
        request["ModelPackageDescription"] = description
    created = sagemaker.create_model_package(**request)
    return describe_package(sagemaker, str(created["ModelPackageArn"]))


def describe_package(sagemaker: Any, arn: str) -> ModelPackage:
    try:
        return ModelPackage.from_description(sagemaker.describe_model_package(ModelPackageName=arn))
    except ClientError as exc:
        if _missing(exc):
            raise RegistryError(f"no model package {arn}: see `pose-batch models list`") from None
        raise


def list_packages(sagemaker: Any, group: str, *, status: str | None = None) -> list[ModelPackage]:
    """Every version in `group` (optionally of one approval status), oldest first."""
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as exc:
        if _missing(exc):
            raise RegistryError(f"no model package group {group!r}: give --group, or register a model first") from None
        raise
    arns: list[str] = []
    request: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Ascending"}
    if status:
        request["ModelApprovalStatus"] = status
    for page in sagemaker.get_paginator("list_model_packages").paginate(**request):
        arns += [str(s["ModelPackageArn"]) for s in page.get("ModelPackageSummaryList", [])]
    return sorted((describe_package(sagemaker, arn) for arn in arns), key=lambda p: p.version)


def resolve(sagemaker: Any, reference: str, group: str = DEFAULT_GROUP) -> ModelPackage:
    """`latest` (the newest version), `latest-approved` (the newest approved one) or an ARN."""
    if reference in (LATEST, LATEST_APPROVED):
        status = APPROVED if reference == LATEST_APPROVED else None
        found = list_packages(sagemaker, group, status=status)
        if not found:
            what = "approved model package" if status else "model package"
            raise RegistryError(f"no {what} in group {group!r} (see `pose-batch models list --group {group}`)")
        return found[-1]
    if not reference.startswith("arn:"):
        raise RegistryError(f"{reference!r} is not a model package ARN, {LATEST!r} or {LATEST_APPROVED!r}")
    return describe_package(sagemaker, reference)


def require_approved(package: ModelPackage) -> ModelPackage:
    """SageMaker deploys a versioned package only once it is approved: say so before it refuses."""
    if package.status != APPROVED:
        raise RegistryError(
            f"model package {package.name} is {package.status}: approve it first (`pose-batch models approve "
            f"{package.arn}`), or try its model without the registry: --model-data {package.model_data_url}"
        )
    return package


def set_approval(sagemaker: Any, arn: str, status: str, description: str | None = None) -> ModelPackage:
    """Approve or reject a package (UpdateModelPackage); SageMaker then emits its state-change event."""
    package = describe_package(sagemaker, arn)  # a clear error for an unknown ARN
    request: dict[str, Any] = {"ModelPackageArn": package.arn, "ModelApprovalStatus": status}
    if description:
        request["ApprovalDescription"] = description
    sagemaker.update_model_package(**request)
    return describe_package(sagemaker, package.arn)


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    text = f"{error.get('Code', '')} {error.get('Message', '')}".lower()
    return "not found" in text or "does not exist" in text or "could not find" in text
