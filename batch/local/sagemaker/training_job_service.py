"""The local stand-in for SageMaker training jobs: CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs
and StopTrainingJob on the stack's SageMaker API, each job run by the real image (`container/serve train`)
as a process with the /opt/ml layout (`ml_process`):

    Downloading   the channels (S3Prefix, File mode) into input/data/<channel>/, the config JSON files,
                  CheckpointConfig.S3Uri into checkpoints/
    Training      the container, MetricDefinitions applied to its log, MaxRuntimeInSeconds enforced
    Uploading     model/ as <S3OutputPath>/<job>/output/model.tar.gz, output/data/ as output.tar.gz,
                  checkpoints/ back to CheckpointConfig.S3Uri
    then Completed, Failed (FailureReason "AlgorithmError: " + output/failure) or Stopped, and a
    "SageMaker Training Job State Change" event at the start and at the end, as AWS sends them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch.local.sagemaker import ml_process
from batch.local.sagemaker.api import SageMakerApiError, arn, not_found, validation_error
from batch.local.sagemaker.training_job_record import TrainingJob

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
DEFAULT_MAX_RUNTIME_S = 86400


class TrainingJobService:
    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    # --- control plane --------------------------------------------------------------------------
    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        _validate(request)
        name = request["TrainingJobName"]
        job = TrainingJob(request=request, arn=arn(self.stack.region, "training-job", name))
        with self._lock:
            if name in self.jobs:
                raise SageMakerApiError(
                    "ResourceInUse", f"Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({job.arn})",
                )  # fmt: skip
            self.jobs[name] = job
        self._put_event(job)
        job.thread = threading.Thread(target=self._run, args=(job,), name=f"training-{name}", daemon=True)
        job.thread.start()
        return {"TrainingJobArn": job.arn}

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.job(str(request.get("TrainingJobName"))).describe()

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            jobs = list(self.jobs.values())
        contains = (request.get("NameContains") or "").lower()
        status = request.get("StatusEquals")
        jobs = [j for j in jobs if contains in j.name.lower() and (not status or j.status == status)]
        key = "TrainingJobName" if request.get("SortBy") == "Name" else "CreationTime"
        summaries = sorted(
            (j.summary() for j in jobs),
            key=lambda s: s[key],
            reverse=request.get("SortOrder", "Descending") == "Descending",
        )
        start = int(request.get("NextToken") or 0)
        end = start + int(request.get("MaxResults") or 100)
        page: dict[str, Any] = {"TrainingJobSummaries": summaries[start:end]}
        if end < len(summaries):
            page["NextToken"] = str(end)
        return page

    def stop_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.job(str(request.get("TrainingJobName")))
        with job.lock:
            if job.status == "InProgress":
                job.status = "Stopping"
                job.stop.set()
        return {}

    def job(self, name: str) -> TrainingJob:
        with self._lock:
            found = self.jobs.get(name)
        if found is None:
            raise not_found(f"Requested resource not found: training job {name}")
        return found

    def shutdown(self) -> None:
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            job.stop.set()
        for job in jobs:
            if job.thread is not None:
                job.thread.join(ml_process.STOP_GRACE_S + 30)

    # --- running a job --------------------------------------------------------------------------
    def _run(self, job: TrainingJob) -> None:
        try:
            self._execute(job)
        except Exception as exc:
            log.exception("training job %s failed in the stand-in", job.name)
            job.finish("Failed", "Failed", "Training job failed", f"ClientError: {exc}")
        finally:
            self._put_event(job)

    def _execute(self, job: TrainingJob) -> None:
        request = job.request
        s3 = self.stack.client("s3")
        workdir = self.stack.home / "training-jobs" / job.name
        root = workdir / "ml"
        job.advance("Downloading", "Downloading input data")
        _write_config(root, request)
        for channel in request.get("InputDataConfig") or []:
            source = channel["DataSource"]["S3DataSource"]["S3Uri"]
            ml_process.download(s3, source, root / "input" / "data" / channel["ChannelName"])
        checkpoints = (request.get("CheckpointConfig") or {}).get("S3Uri")
        if checkpoints:
            ml_process.download(s3, checkpoints, root / "checkpoints")
        if job.stop.is_set():
            job.finish("Stopped", "Stopped", "Training job stopped")
            return
        job.advance("Training", "Training image download completed. Training in progress.")
        catcher = ml_process.MetricCatcher(request["AlgorithmSpecification"].get("MetricDefinitions") or [])
        spec = request["AlgorithmSpecification"]
        command = ml_process.image_command(
            list(spec.get("ContainerArguments") or ["train"]), spec.get("ContainerEntrypoint"), root
        )
        environment = {
            **{str(k): str(v) for k, v in (request.get("Environment") or {}).items()},
            "POSE_ML_ROOT": str(root),
            "TRAINING_JOB_NAME": job.name,
            "TRAINING_JOB_ARN": job.arn,
        }
        process = ml_process.JobProcess(
            command, environment=environment, log_path=workdir / "container.log", on_line=catcher.feed
        ).start()
        job.pid = process.pid
        limit = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_S
        code = process.wait(time.monotonic() + float(limit), job.stop)
        overran = code is None and not job.stop.is_set()
        if code is None:
            code = process.stop()
        job.final_metrics = catcher.final()
        job.advance("Uploading", "Uploading generated training model")
        if checkpoints:
            ml_process.upload(s3, root / "checkpoints", checkpoints)
        self._upload_outputs(job, s3, root, keep_model=code == 0 or job.stop.is_set() or overran)
        if overran:
            job.finish("Stopped", "MaxRuntimeExceeded", f"Training job exceeded MaxRuntimeInSeconds ({limit} s)")
        elif job.stop.is_set():
            job.finish("Stopped", "Stopped", "Training job stopped")
        elif code == 0:
            job.finish("Completed", "Completed", "Training job completed")
        else:
            job.finish("Failed", "Failed", "Training job failed", _failure_reason(root, code))

    def _upload_outputs(self, job: TrainingJob, s3: Any, root: Path, *, keep_model: bool) -> None:
        from batch.s3_uri import S3Uri

        output = S3Uri.parse(f"{job.output_path}/{job.name}/output/", allow_empty_key=True)
        model_dir = root / "model"
        if keep_model and model_dir.is_dir() and any(model_dir.iterdir()):
            archive = ml_process.tar_folder(model_dir, root.parent / "model.tar.gz")
            s3.upload_file(str(archive), output.bucket, output.prefix + "model.tar.gz")
            job.model_artifacts = f"s3://{output.bucket}/{output.prefix}model.tar.gz"
        data = root / "output" / "data"
        if data.is_dir() and any(data.iterdir()):
            archive = ml_process.tar_folder(data, root.parent / "output.tar.gz")
            s3.upload_file(str(archive), output.bucket, output.prefix + "output.tar.gz")

    def _put_event(self, job: TrainingJob) -> None:
        try:
            self.stack.client("events").put_events(Entries=[job.state_change_event()])
        except Exception:
            log.exception("could not put the state-change event of %s", job.name)


def _write_config(root: Path, request: dict[str, Any]) -> None:
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    hyperparameters = {str(k): str(v) for k, v in (request.get("HyperParameters") or {}).items()}
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "resourceconfig.json").write_text(
        json.dumps(
            {
                "current_host": "algo-1",
                "hosts": [f"algo-{i + 1}" for i in range(int(request["ResourceConfig"]["InstanceCount"]))],
                "network_interface_name": "eth0",
            }
        )
    )
    channels = {
        c["ChannelName"]: {
            "TrainingInputMode": c.get("InputMode")
            or request["AlgorithmSpecification"].get("TrainingInputMode", "File"),
            "S3DistributionType": c["DataSource"]["S3DataSource"].get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": c.get("RecordWrapperType", "None"),
        }
        for c in request.get("InputDataConfig") or []
    }
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    for name in ("model", "output/data", "checkpoints"):
        (root / name).mkdir(parents=True, exist_ok=True)


def _failure_reason(root: Path, code: int) -> str:
    failure = root / "output" / "failure"
    text = failure.read_text(errors="replace").strip() if failure.is_file() else ""
    return f"AlgorithmError: {text or f'the training container exited with code {code} (no /opt/ml/output/failure)'}"


def _validate(request: dict[str, Any]) -> None:
    name = request.get("TrainingJobName") or ""
    if not _NAME.match(name):
        raise validation_error(f"TrainingJobName {name!r} must match {_NAME.pattern}")
    spec = request.get("AlgorithmSpecification") or {}
    if not spec.get("TrainingImage") and not spec.get("AlgorithmName"):
        raise validation_error("AlgorithmSpecification.TrainingImage is required")
    if spec.get("TrainingInputMode", "File") not in ("File",):
        raise validation_error(f"TrainingInputMode {spec.get('TrainingInputMode')!r}: the local stand-in supports File")
    for path in (("RoleArn",), ("OutputDataConfig", "S3OutputPath"), ("ResourceConfig", "InstanceType"),
                 ("ResourceConfig", "InstanceCount"), ("StoppingCondition",)):  # fmt: skip
        value: Any = request
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value in (None, ""):
            raise validation_error(f"{'.'.join(path)} is required")
    for channel in request.get("InputDataConfig") or []:
        source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        if not channel.get("ChannelName") or not source.get("S3Uri"):
            raise validation_error("each InputDataConfig channel needs ChannelName and DataSource.S3DataSource.S3Uri")
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise validation_error(f"S3DataType {source.get('S3DataType')!r}: the local stand-in supports S3Prefix")
    for key, value in (request.get("HyperParameters") or {}).items():
        if not isinstance(value, str):
            raise validation_error(f"HyperParameters[{key!r}] must be a string, got {type(value).__name__}")


def service(stack: EmbeddedStack) -> TrainingJobService:
    """The running service of `stack` (tests reach jobs through it)."""
    assert stack.training_jobs is not None, "the stack is not started"
    return stack.training_jobs


def install(stack: EmbeddedStack) -> TrainingJobService:
    jobs = TrainingJobService(stack)
    stack.sagemaker.register("CreateTrainingJob", jobs.create)
    stack.sagemaker.register("DescribeTrainingJob", jobs.describe)
    stack.sagemaker.register("ListTrainingJobs", jobs.list)
    stack.sagemaker.register("StopTrainingJob", jobs.stop_job)
    stack.sagemaker.shutdown_hooks.append(jobs.shutdown)
    log.info("local training jobs ready")
    return jobs
