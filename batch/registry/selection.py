"""Which model a command serves when it is asked for one, or for none: one rule for `transform`, `deploy`
and `submit`, on AWS and on the local stack.

1. `--model-package ARN|latest-approved`: that package (it must be approved: SageMaker deploys only
   approved versions);
2. `--model-data s3://...` (or `deploy --model`): that artifact with the serving image;
3. the group's default model: the package approved last (`default_model`, set by the approval handler);
4. the configured artifact (`POSEBATCH_MODEL_DATA`, or the model `pose-batch local up` uploaded).

A choice of "whatever the group approves" (3, 4 and `latest-approved`) is marked `follows_group`: an
endpoint deployed from it is tagged to follow the group's approvals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from batch.registry import default_model
from batch.registry.packages import LATEST_APPROVED, RegistryError, require_approved, resolve
from batch.serving_model import ServingModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    model: ServingModel
    origin: str  # said to the user: where the model came from
    follows_group: str | None = None


def choose_model(
    *,
    sagemaker: Any,
    ssm: Any,
    group: str,
    image_uri: str | None,
    model_data: str | None = None,
    model_package: str | None = None,
    fallback_model_data: str | None = None,
) -> ModelChoice:
    """The model by the rule above; `RegistryError` (a user's mistake) when there is none to use."""
    if model_package:
        package = require_approved(resolve(sagemaker, model_package, group))
        follows = group if model_package == LATEST_APPROVED else None
        served = ServingModel(package.image, package.model_data_url, package.arn)
        return ModelChoice(served, f"model package {package.name}", follows)
    if model_data:
        return ModelChoice(ServingModel(_image(image_uri), model_data), "--model-data")
    approved = _default(ssm, group)
    if approved is not None:
        served = ServingModel(approved.image, approved.model_data, approved.model_package)
        return ModelChoice(served, f"the approved default of {group} (version {approved.version})", group)
    if fallback_model_data:
        return ModelChoice(ServingModel(_image(image_uri), fallback_model_data), "the configured model", group)
    raise RegistryError(
        f"no model: give --model-data or --model-package, or approve a package of group {group!r} "
        "(`pose-batch models approve`)"
    )


def _default(ssm: Any, group: str) -> default_model.DefaultModel | None:
    try:
        return default_model.read(ssm, group)
    except ClientError as exc:  # no ssm:GetParameter here: the configured model still works
        log.warning("the default model of %s is unreadable (%s); using the configured one", group, exc)
        return None


def _image(image_uri: str | None) -> str:
    if not image_uri:
        raise RegistryError("no serving image: give its URI (--image-uri, --image) or set POSEBATCH_IMAGE_URI")
    return image_uri


def endpoint_package(sagemaker: Any, endpoint: str) -> str | None:
    """The model package an endpoint serves now (None: a model not from the registry)."""
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    package = container.get("ModelPackageName")
    return str(package) if package else None


def require_serving(sagemaker: Any, endpoint: str, package_reference: str, group: str) -> str:
    """`submit --model-package`: the endpoint must serve that package now (results name its model);
    returns the package's ARN, or `RegistryError` saying what the endpoint serves instead."""
    package = resolve(sagemaker, package_reference, group)
    serving = endpoint_package(sagemaker, endpoint)
    if serving != package.arn:
        raise RegistryError(
            f"endpoint {endpoint} serves {serving or 'a model outside the registry'}, not model package "
            f"{package.name}: deploy it there (`pose-batch deploy --model-package {package.arn}`) or approve it"
        )
    return package.arn
