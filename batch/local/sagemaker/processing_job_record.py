"""One local processing job: its request, state and the shapes AWS gives it (DescribeProcessingJob, the
List summary, the "SageMaker Processing Job State Change" event)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_MAX_MESSAGE = 1024
_ECHOED = (
    "ProcessingJobName",
    "ProcessingInputs",
    "ProcessingOutputConfig",
    "ProcessingResources",
    "StoppingCondition",
    "AppSpecification",
    "Environment",
    "NetworkConfig",
    "RoleArn",
    "ExperimentConfig",
)


@dataclass
class ProcessingJob:
    request: dict[str, Any]
    arn: str
    status: str = "InProgress"
    exit_message: str | None = None
    failure_reason: str | None = None
    creation_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return str(self.request["ProcessingJobName"])

    def started(self) -> None:
        with self.lock:
            self.start_time = time.time()

    def finish(self, status: str, *, exit_message: str | None = None, failure_reason: str | None = None) -> None:
        with self.lock:
            self.status = status
            self.exit_message = exit_message[:_MAX_MESSAGE] if exit_message else None
            self.failure_reason = failure_reason[:_MAX_MESSAGE] if failure_reason else None
            self.end_time = time.time()

    def describe(self) -> dict[str, Any]:
        with self.lock:
            described = {k: self.request[k] for k in _ECHOED if self.request.get(k) not in (None, "")}
            described.update(
                ProcessingJobArn=self.arn,
                ProcessingJobStatus=self.status,
                CreationTime=self.creation_time,
                LastModifiedTime=self.end_time or time.time(),
            )
            if self.start_time is not None:
                described["ProcessingStartTime"] = self.start_time
            if self.end_time is not None:
                described["ProcessingEndTime"] = self.end_time
            if self.exit_message:
                described["ExitMessage"] = self.exit_message
            if self.failure_reason:
                described["FailureReason"] = self.failure_reason
        return described

    def summary(self) -> dict[str, Any]:
        described = self.describe()
        keys = ("ProcessingJobName", "ProcessingJobArn", "CreationTime", "ProcessingEndTime", "LastModifiedTime",
                "ProcessingJobStatus", "FailureReason", "ExitMessage")  # fmt: skip
        return {k: described[k] for k in keys if k in described}

    def state_change_event(self) -> dict[str, Any]:
        detail = self.describe()
        for key in ("CreationTime", "ProcessingStartTime", "ProcessingEndTime", "LastModifiedTime"):
            if key in detail:
                detail[key] = int(detail[key] * 1000)
        return {
            "Source": "aws.sagemaker",
            "DetailType": "SageMaker Processing Job State Change",
            "Detail": json.dumps(detail),
            "Resources": [self.arn],
        }
