"""One local training job: its request, its state (status, secondary status and its transitions, failure
reason, final metrics) and the shapes AWS gives it (DescribeTrainingJob, the List summary, the
EventBridge "SageMaker Training Job State Change" event)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_MAX_REASON = 1024
END_STATES = frozenset({"Completed", "Failed", "Stopped"})
# What DescribeTrainingJob repeats from the request.
_ECHOED = (
    "TrainingJobName",
    "HyperParameters",
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "CheckpointConfig",
    "Environment",
    "EnableNetworkIsolation",
    "EnableManagedSpotTraining",
    "Tags",
)


@dataclass
class TrainingJob:
    request: dict[str, Any]
    arn: str
    status: str = "InProgress"
    secondary_status: str = "Starting"
    transitions: list[dict[str, Any]] = field(default_factory=list)
    failure_reason: str | None = None
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    model_artifacts: str | None = None
    creation_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    pid: int | None = None  # the container's main process while it runs (its process group's id too)

    def __post_init__(self) -> None:
        self.transitions.append({"Status": "Starting", "StartTime": self.creation_time, "StatusMessage": "Starting"})

    @property
    def name(self) -> str:
        return str(self.request["TrainingJobName"])

    @property
    def output_path(self) -> str:
        return str(self.request["OutputDataConfig"]["S3OutputPath"]).rstrip("/")

    def advance(self, secondary: str, message: str) -> None:
        """A new secondary status (Downloading, Training, Uploading, ...), as SageMaker records them."""
        now = time.time()
        with self.lock:
            if self.transitions and "EndTime" not in self.transitions[-1]:
                self.transitions[-1]["EndTime"] = now
            self.secondary_status = secondary
            self.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
            if secondary == "Training" and self.start_time is None:
                self.start_time = now

    def finish(self, status: str, secondary: str, message: str, failure_reason: str | None = None) -> None:
        self.advance(secondary, message)
        with self.lock:
            self.transitions[-1]["EndTime"] = time.time()
            self.status = status
            self.failure_reason = failure_reason[:_MAX_REASON] if failure_reason else None
            self.end_time = time.time()

    def describe(self) -> dict[str, Any]:
        with self.lock:
            described = {k: self.request[k] for k in _ECHOED if self.request.get(k) not in (None, "")}
            described.update(
                TrainingJobArn=self.arn,
                TrainingJobStatus=self.status,
                SecondaryStatus=self.secondary_status,
                SecondaryStatusTransitions=[dict(t) for t in self.transitions],
                CreationTime=self.creation_time,
                LastModifiedTime=self.end_time or time.time(),
                ModelArtifacts={
                    "S3ModelArtifacts": self.model_artifacts or f"{self.output_path}/{self.name}/output/model.tar.gz"
                },
            )
            if self.start_time is not None:
                described["TrainingStartTime"] = self.start_time
            if self.end_time is not None:
                described["TrainingEndTime"] = self.end_time
                if self.start_time is not None:
                    described["TrainingTimeInSeconds"] = int(self.end_time - self.start_time)
                    described["BillableTimeInSeconds"] = int(self.end_time - self.start_time)
            if self.failure_reason:
                described["FailureReason"] = self.failure_reason
            if self.final_metrics:
                described["FinalMetricDataList"] = [dict(m) for m in self.final_metrics]
        return described

    def summary(self) -> dict[str, Any]:
        described = self.describe()
        keys = ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "LastModifiedTime",
                "TrainingJobStatus", "SecondaryStatus")  # fmt: skip
        return {k: described[k] for k in keys if k in described}

    def state_change_event(self) -> dict[str, Any]:
        """A PutEvents entry shaped like AWS's: times in epoch milliseconds inside `detail`."""
        detail = self.describe()
        for key in ("CreationTime", "TrainingStartTime", "TrainingEndTime", "LastModifiedTime"):
            if key in detail:
                detail[key] = int(detail[key] * 1000)
        for transition in detail.get("SecondaryStatusTransitions", []):
            for key in ("StartTime", "EndTime"):
                if key in transition:
                    transition[key] = int(transition[key] * 1000)
        return {
            "Source": "aws.sagemaker",
            "DetailType": "SageMaker Training Job State Change",
            "Detail": json.dumps(detail),
            "Resources": [self.arn],
        }
