"""The default model of a model package group: the package approved last, which `transform` (and `deploy`,
`submit`) use when no model is named. It lives in an SSM parameter, `/posebatch/model-registry/<group>/
default-model`, which both AWS and the local stack (moto) hold; the approval handler writes it, the CLI
reads it. Its value is a small JSON object:

    {"model_package": ARN, "version": 3, "model_data": "s3://.../model.tar.gz", "image": ..., "approved_at": ISO}

`approved_at` is the approval event's time: an older event that arrives late never replaces a newer
default (EventBridge may deliver events out of order and more than once).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

PARAMETER = "/posebatch/model-registry/{group}/default-model"


def parameter_name(group: str) -> str:
    return PARAMETER.format(group=group)


@dataclass(frozen=True)
class DefaultModel:
    model_package: str
    version: int
    model_data: str
    image: str
    approved_at: str

    def newer_than(self, time: str) -> bool:
        """Whether this default was set by an event later than `time` (ISO 8601)."""
        return _instant(self.approved_at) > _instant(time)


def read(ssm: Any, group: str) -> DefaultModel | None:
    """The group's default model, None when no package was approved since the stack began."""
    try:
        value = ssm.get_parameter(Name=parameter_name(group))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    fields: dict[str, Any] = json.loads(value)
    return DefaultModel(**{key: fields[key] for key in DefaultModel.__dataclass_fields__})


def write(ssm: Any, group: str, model: DefaultModel) -> None:
    ssm.put_parameter(
        Name=parameter_name(group),
        Value=json.dumps(asdict(model)),
        Type="String",
        Overwrite=True,
        Description=f"PoseBatch: the default model of model package group {group} (the last approved)",
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
