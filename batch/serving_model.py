"""What a SageMaker model serves: the serving image with a `model.tar.gz`, or a model package from the
registry (SageMaker then takes the image and the model data from the package, and records which package
the model came from). Endpoints of every kind and transform jobs build their model's container from it.
Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServingModel:
    image_uri: str
    model_data_url: str
    model_package_arn: str | None = None  # when set, the container names the package

    def container(self, environment: dict[str, str] | None = None) -> dict[str, Any]:
        """CreateModel's `PrimaryContainer`."""
        if self.model_package_arn:
            return {"ModelPackageName": self.model_package_arn, "Environment": dict(environment or {})}
        return {"Image": self.image_uri, "ModelDataUrl": self.model_data_url, "Environment": dict(environment or {})}

    def as_dict(self) -> dict[str, Any]:
        return {"model_data": self.model_data_url, "model_package": self.model_package_arn, "image": self.image_uri}
