"""One local transform job: its request, state, counters, the shapes AWS gives it (Describe, List
summary, the EventBridge state-change event), and SageMaker's rules for its settings."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from batch.local.sagemaker.transform_runner import Instance, RunParameters

# SageMaker's defaults where neither the job nor the container's /execution-parameters says.
DEFAULT_MAX_CONCURRENT = 1
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_STRATEGY = "SingleRecord"
DEFAULT_TIMEOUT_S = 600
DEFAULT_MAX_RETRIES = 3
_MAX_REASON = 1024


def normalise_batch_strategy(value: str) -> Literal["SingleRecord", "MultiRecord"]:
    """`MULTI_RECORD`, `MultiRecord` and `multi-record` all name the same strategy."""
    key = value.replace("_", "").replace("-", "").strip().lower()
    if key == "multirecord":
        return "MultiRecord"
    if key == "singlerecord":
        return "SingleRecord"
    raise ValueError(f"unknown batch strategy {value!r}: expected SingleRecord or MultiRecord")


def _pick(name: str, request: dict[str, Any], answer: dict[str, Any] | None, default: Any) -> Any:
    for source in (request, answer or {}):
        value = source.get(name)
        if value not in (None, ""):
            return value
    return default


def resolve_parameters(request: dict[str, Any], answer: dict[str, Any] | None) -> RunParameters:
    """SageMaker's precedence: the job request, then the container's answer, then the defaults."""
    transform_input = request.get("TransformInput") or {}
    output = request.get("TransformOutput") or {}
    client = request.get("ModelClientConfig") or {}
    max_concurrent = int(_pick("MaxConcurrentTransforms", request, answer, DEFAULT_MAX_CONCURRENT))
    max_payload = int(_pick("MaxPayloadInMB", request, answer, DEFAULT_MAX_PAYLOAD_MB))
    timeout = int(client.get("InvocationsTimeoutInSeconds") or DEFAULT_TIMEOUT_S)
    retries = client.get("InvocationsMaxRetries")
    retries = DEFAULT_MAX_RETRIES if retries is None else int(retries)
    split = transform_input.get("SplitType") or "None"
    compression = transform_input.get("CompressionType") or "None"
    assemble_with = output.get("AssembleWith") or "None"
    checks = [
        (1 <= max_concurrent <= 1000, f"MaxConcurrentTransforms must be 1-1000, got {max_concurrent}"),
        (0 <= max_payload <= 100, f"MaxPayloadInMB must be 0-100, got {max_payload}"),
        (1 <= timeout <= 3600, f"InvocationsTimeoutInSeconds must be 1-3600, got {timeout}"),
        (0 <= retries <= 3, f"InvocationsMaxRetries must be 0-3, got {retries}"),
        (split in ("None", "Line"), f"SplitType {split!r}: the local stand-in supports None and Line"),
        # PoseBatch never compresses its inputs: the stand-in emulates only CompressionType=None.
        (compression == "None", f"CompressionType {compression!r}: the local stand-in supports None"),
        (assemble_with in ("None", "Line"), f"AssembleWith must be None or Line, got {assemble_with!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return RunParameters(
        max_concurrent=max_concurrent,
        max_payload_mb=max_payload,
        batch_strategy=normalise_batch_strategy(str(_pick("BatchStrategy", request, answer, DEFAULT_STRATEGY))),
        split_type=split,
        content_type=transform_input.get("ContentType"),
        accept=output.get("Accept"),
        assemble_with=assemble_with,
        timeout_s=float(timeout),
        max_retries=retries,
    )


def container_environment(model: dict[str, Any], request: dict[str, Any]) -> dict[str, str]:
    """Model env + job env + SageMaker's own variables, the latter only where the job request sets them."""
    env = {**(model["PrimaryContainer"].get("Environment") or {}), **(request.get("Environment") or {})}
    env["SAGEMAKER_BATCH"] = "true"
    if request.get("MaxPayloadInMB") not in (None, ""):
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(request["MaxPayloadInMB"])
    if request.get("BatchStrategy"):
        strategy = normalise_batch_strategy(str(request["BatchStrategy"]))
        env["SAGEMAKER_BATCH_STRATEGY"] = "MULTI_RECORD" if strategy == "MultiRecord" else "SINGLE_RECORD"
    if request.get("MaxConcurrentTransforms") not in (None, ""):
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(request["MaxConcurrentTransforms"])
    return {str(k): str(v) for k, v in env.items()}


@dataclass
class TransformJob:
    request: dict[str, Any]
    arn: str
    status: str = "InProgress"
    failure_reason: str | None = None
    creation_time: float = field(default_factory=time.time)
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    instances: list[Instance] = field(default_factory=list)
    params: RunParameters | None = None
    files_done: list[str] = field(default_factory=list)
    files_failed: list[tuple[str, str]] = field(default_factory=list)
    responses: int = 0
    retries: int = 0

    @property
    def name(self) -> str:
        return str(self.request["TransformJobName"])

    def count_response(self) -> None:
        with self.lock:
            self.responses += 1

    def count_retry(self) -> None:
        with self.lock:
            self.retries += 1

    def record(self, done: list[str], failed: list[tuple[str, str]]) -> None:
        with self.lock:
            self.files_done.extend(done)
            self.files_failed.extend(failed)

    def fail(self, reason: str) -> None:
        with self.lock:
            self.failure_reason = reason[:_MAX_REASON]

    def finish(self) -> None:
        with self.lock:
            if self.failure_reason is None and self.files_failed:
                named = "; ".join(f"{rel}: {why}" for rel, why in sorted(self.files_failed)[:5])
                total = len(self.files_done) + len(self.files_failed)
                self.failure_reason = (f"ClientError: {len(self.files_failed)} of {total} input files failed: {named}")[
                    :_MAX_REASON
                ]
            if self.stop.is_set():
                self.status = "Stopped"
            else:
                self.status = "Failed" if self.failure_reason else "Completed"
            self.end_time = time.time()

    def describe(self) -> dict[str, Any]:
        keys = (
            "TransformJobName",
            "ModelName",
            "MaxConcurrentTransforms",
            "ModelClientConfig",
            "MaxPayloadInMB",
            "BatchStrategy",
            "Environment",
            "TransformInput",
            "TransformOutput",
            "DataCaptureConfig",
            "TransformResources",
            "DataProcessing",
            "ExperimentConfig",
        )
        with self.lock:
            described = {k: self.request[k] for k in keys if self.request.get(k) not in (None, "")}
            described.update(
                TransformJobArn=self.arn,
                TransformJobStatus=self.status,
                CreationTime=self.creation_time,
                TransformStartTime=self.start_time,
            )
            if self.failure_reason:
                described["FailureReason"] = self.failure_reason
            if self.end_time is not None:
                described["TransformEndTime"] = self.end_time
        return described

    def summary(self) -> dict[str, Any]:
        described = self.describe()
        keys = (
            "TransformJobName",
            "TransformJobArn",
            "CreationTime",
            "TransformEndTime",
            "TransformJobStatus",
            "FailureReason",
        )
        summary = {k: described[k] for k in keys if k in described}
        summary["LastModifiedTime"] = described.get("TransformEndTime", described["TransformStartTime"])
        return summary

    def state_change_event(self) -> dict[str, Any]:
        """A PutEvents entry shaped like AWS's: times in epoch milliseconds inside `detail`."""
        detail = self.describe()
        for key in ("CreationTime", "TransformStartTime", "TransformEndTime"):
            if key in detail:
                detail[key] = int(detail[key] * 1000)
        return {
            "Source": "aws.sagemaker",
            "DetailType": "SageMaker Transform Job State Change",
            "Detail": json.dumps(detail),
            "Resources": [self.arn],
        }
