"""Launching a training job from a workstation (`pose-batch train`), on SageMaker or the local stand-in,
with plain boto3: everything the job will need is checked first (the hyperparameters, the dataset, the base
checkpoint), local inputs are uploaded, then CreateTrainingJob; `follow` waits for the end.

    <S3OutputPath>/<job>/input/dataset/...     a local --data, uploaded (an s3:// one is used in place)
    <S3OutputPath>/<job>/input/model/<ckpt>    a local base checkpoint, uploaded
    <S3OutputPath>/<job>/checkpoints/          CheckpointConfig: managed spot training resumes from it
    <S3OutputPath>/<job>/output/model.tar.gz   the model (what transform and deploy take as model data)
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.s3_uri import S3Uri
from batch.training import hyperparameters, metrics

JOB_PREFIX = "posebatch-train"
DEFAULT_INSTANCE_TYPE = "ml.g5.xlarge"
DEFAULT_MAX_RUNTIME_S = 86400
DEFAULT_VOLUME_GB = 50
UPLOAD_CONCURRENCY = 16
END_STATES = ("Completed", "Failed", "Stopped")


class LaunchError(ValueError):
    """The job cannot start as asked; the message says what to change (exit 2)."""


@dataclass(frozen=True)
class TrainRequest:
    data: str  # a local folder or s3:// prefix
    model: str  # a local .pt or an s3:// URI (.pt or model.tar.gz)
    output_path: str  # S3OutputPath
    image_uri: str
    role_arn: str
    hyperparameters: dict[str, str] = field(default_factory=dict)
    job_name: str | None = None
    instance_type: str = DEFAULT_INSTANCE_TYPE
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S
    volume_gb: int = DEFAULT_VOLUME_GB
    spot: bool = False


def job_name() -> str:
    return f"{JOB_PREFIX}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def merged_hyperparameters(flags: dict[str, int | None], pairs: list[str]) -> dict[str, str]:
    """`--epochs/--imgsz/--batch` and `--hyperparameter KEY=VALUE`, checked as the container will check
    them (an unknown name is a LaunchError before anything starts)."""
    try:
        given = hyperparameters.parse_pairs(pairs)
        twice = sorted(k for k, v in flags.items() if v is not None and k in given)
        if twice:
            raise LaunchError(f"{', '.join(twice)} given both as a flag and as --hyperparameter: keep one")
        merged = {**given, **{k: str(v) for k, v in flags.items() if v is not None}}
        hyperparameters.parse(merged)
    except hyperparameters.HyperparameterError as exc:
        raise LaunchError(f"hyperparameters: {exc}") from None
    return merged


def check_dataset(data: str, s3: Any) -> str:
    """The dataset's one-line description; DatasetError listing every problem (file and line)."""
    from batch.datasets.check import inspect
    from batch.datasets.files import open_files

    if not data.startswith("s3://") and not Path(data).expanduser().is_dir():
        raise LaunchError(f"--data {data}: no such folder (a YOLO pose dataset or a COCO keypoints folder)")
    return inspect(open_files(data, s3)).summary()


def launch(request: TrainRequest, *, s3: Any, sagemaker: Any) -> str:
    """Upload what is local, create the training job; returns its name."""
    name = request.job_name or job_name()
    root = S3Uri.parse(request.output_path, allow_empty_key=True).child(f"{name}/")
    dataset = (
        request.data
        if request.data.startswith("s3://")
        else upload_folder(s3, Path(request.data), root.child("input/dataset/"))
    )
    model = (
        request.model
        if request.model.startswith("s3://")
        else upload_file(s3, Path(request.model), root.child("input/model/"))
    )
    spec: dict[str, Any] = {
        "TrainingImage": request.image_uri,
        "TrainingInputMode": "File",
        "MetricDefinitions": metrics.metric_definitions(),
    }
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": request.max_runtime_s}
    if request.spot:
        stopping["MaxWaitTimeInSeconds"] = request.max_runtime_s * 2
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification=spec,
        RoleArn=request.role_arn,
        HyperParameters=request.hyperparameters,
        InputDataConfig=[_channel("dataset", dataset), _channel("model", model)],
        OutputDataConfig={"S3OutputPath": request.output_path},
        ResourceConfig={"InstanceType": request.instance_type, "InstanceCount": 1, "VolumeSizeInGB": request.volume_gb},
        StoppingCondition=stopping,
        CheckpointConfig={"S3Uri": str(root.child("checkpoints/")), "LocalPath": "/opt/ml/checkpoints"},
        EnableManagedSpotTraining=request.spot,
    )
    return name


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
        "InputMode": "File",
    }


def upload_folder(s3: Any, folder: Path, target: S3Uri) -> str:
    """Every file below `folder` (links followed, hidden files skipped), concurrently."""
    files: list[Path] = []
    for directory, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(Path(directory) / n for n in names if not n.startswith("."))

    def put(path: Path) -> None:
        s3.upload_file(str(path), target.bucket, target.prefix + path.relative_to(folder).as_posix())

    with ThreadPoolExecutor(UPLOAD_CONCURRENCY) as pool:
        list(pool.map(put, files))
    return str(target)


def upload_file(s3: Any, path: Path, target: S3Uri) -> str:
    s3.upload_file(str(path), target.bucket, target.prefix + path.name)
    return str(target)


def follow(sagemaker: Any, name: str, *, poll_s: float, say: Any = None) -> dict[str, Any]:
    """Describe the job until it ends, saying each new secondary status; returns the last description."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    seen = 0
    while True:
        described: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=name)
        transitions = described.get("SecondaryStatusTransitions") or []
        for transition in transitions[seen:]:
            say(f"{name}: {transition.get('Status')}: {transition.get('StatusMessage', '')}")
        seen = len(transitions)
        if described["TrainingJobStatus"] in END_STATES:
            return described
        time.sleep(poll_s)


def result(described: dict[str, Any], model_data: str | None = None) -> dict[str, Any]:
    """The command's one JSON object."""
    status = described["TrainingJobStatus"]
    found: dict[str, Any] = {
        "training_job": described["TrainingJobName"],
        "status": status,
        "model_data": model_data or (described.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        "metrics": {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList") or []},
    }
    if status in ("Failed", "Stopped"):
        found["failure_reason"] = described.get("FailureReason") or described.get("SecondaryStatus")
    return found


def download_model(s3: Any, model_data: str, folder: Path) -> Path:
    uri = S3Uri.parse(model_data)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.tar.gz"
    s3.download_file(uri.bucket, uri.key, str(target))
    return target
