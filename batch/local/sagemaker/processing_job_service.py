"""The local stand-in for SageMaker processing jobs (the evaluation step): CreateProcessingJob,
DescribeProcessingJob, ListProcessingJobs and StopProcessingJob, each job run by the real image as a
process with the /opt/ml layout (`ml_process`): every S3Input downloaded to its LocalPath, the image's
entry point (or ContainerEntrypoint) with ContainerArguments, every S3Output uploaded from its LocalPath at
the end (EndOfJob), ExitMessage from /opt/ml/output/message. LocalPaths under /opt/ml/ land in the job's
folder, and so do /opt/ml paths in the arguments."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch.local.sagemaker import ml_process
from batch.local.sagemaker.api import SageMakerApiError, arn, not_found, validation_error
from batch.local.sagemaker.processing_job_record import ProcessingJob

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
DEFAULT_MAX_RUNTIME_S = 86400


class ProcessingJobService:
    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.jobs: dict[str, ProcessingJob] = {}
        self._lock = threading.Lock()

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        _validate(request)
        name = request["ProcessingJobName"]
        job = ProcessingJob(request=request, arn=arn(self.stack.region, "processing-job", name))
        with self._lock:
            if name in self.jobs:
                raise SageMakerApiError("ResourceInUse", f"Job name must be unique; {job.arn} already exists")
            self.jobs[name] = job
        job.thread = threading.Thread(target=self._run, args=(job,), name=f"processing-{name}", daemon=True)
        job.thread.start()
        return {"ProcessingJobArn": job.arn}

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.job(str(request.get("ProcessingJobName"))).describe()

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            jobs = list(self.jobs.values())
        contains = (request.get("NameContains") or "").lower()
        status = request.get("StatusEquals")
        jobs = [j for j in jobs if contains in j.name.lower() and (not status or j.status == status)]
        summaries = sorted((j.summary() for j in jobs), key=lambda s: s["CreationTime"], reverse=True)
        start = int(request.get("NextToken") or 0)
        end = start + int(request.get("MaxResults") or 100)
        page: dict[str, Any] = {"ProcessingJobSummaries": summaries[start:end]}
        if end < len(summaries):
            page["NextToken"] = str(end)
        return page

    def stop_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.job(str(request.get("ProcessingJobName")))
        with job.lock:
            if job.status == "InProgress":
                job.status = "Stopping"
                job.stop.set()
        return {}

    def job(self, name: str) -> ProcessingJob:
        with self._lock:
            found = self.jobs.get(name)
        if found is None:
            raise not_found(f"Could not find requested job with name {name}")
        return found

    def shutdown(self) -> None:
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            job.stop.set()
        for job in jobs:
            if job.thread is not None:
                job.thread.join(ml_process.STOP_GRACE_S + 30)

    def _run(self, job: ProcessingJob) -> None:
        try:
            self._execute(job)
        except Exception as exc:
            log.exception("processing job %s failed in the stand-in", job.name)
            job.finish("Failed", failure_reason=f"ClientError: {exc}")
        finally:
            try:
                self.stack.client("events").put_events(Entries=[job.state_change_event()])
            except Exception:
                log.exception("could not put the state-change event of %s", job.name)

    def _execute(self, job: ProcessingJob) -> None:
        request = job.request
        s3 = self.stack.client("s3")
        workdir = self.stack.home / "processing-jobs" / job.name
        root = workdir / "ml"
        for item in request.get("ProcessingInputs") or []:
            source = item["S3Input"]
            ml_process.download(s3, source["S3Uri"], Path(ml_process.reroot(source["LocalPath"], root)))
        outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for item in outputs:
            Path(ml_process.reroot(item["S3Output"]["LocalPath"], root)).mkdir(parents=True, exist_ok=True)
        (root / "output").mkdir(parents=True, exist_ok=True)
        spec = request["AppSpecification"]
        command = ml_process.image_command(
            list(spec.get("ContainerArguments") or []), spec.get("ContainerEntrypoint"), root
        )
        environment = {
            **{str(k): str(v) for k, v in (request.get("Environment") or {}).items()},
            "POSE_ML_ROOT": str(root),
        }
        job.started()
        process = ml_process.JobProcess(
            command, environment=environment, log_path=workdir / "container.log", on_line=lambda _line: None
        ).start()
        limit = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_S
        code = process.wait(time.monotonic() + float(limit), job.stop)
        stopped = code is None
        if code is None:
            code = process.stop()
        message_file = root / "output" / "message"
        message = message_file.read_text(errors="replace").strip() if message_file.is_file() else None
        if not stopped:
            for item in outputs:
                target = item["S3Output"]
                ml_process.upload(s3, Path(ml_process.reroot(target["LocalPath"], root)), target["S3Uri"])
        if stopped:
            job.finish("Stopped", exit_message=message)
        elif code == 0:
            job.finish("Completed", exit_message=message)
        else:
            reason = f"AlgorithmError: {message or f'the processing container exited with code {code}'}"
            job.finish("Failed", exit_message=message, failure_reason=reason)


def _validate(request: dict[str, Any]) -> None:
    name = request.get("ProcessingJobName") or ""
    if not _NAME.match(name):
        raise validation_error(f"ProcessingJobName {name!r} must match {_NAME.pattern}")
    if not (request.get("AppSpecification") or {}).get("ImageUri"):
        raise validation_error("AppSpecification.ImageUri is required")
    if not request.get("RoleArn"):
        raise validation_error("RoleArn is required")
    cluster = (request.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    if not cluster.get("InstanceType") or not cluster.get("InstanceCount"):
        raise validation_error("ProcessingResources.ClusterConfig InstanceType and InstanceCount are required")
    for item in request.get("ProcessingInputs") or []:
        source = item.get("S3Input") or {}
        if not item.get("InputName") or not source.get("S3Uri") or not source.get("LocalPath"):
            raise validation_error("each ProcessingInput needs InputName and S3Input.S3Uri and LocalPath")
        if not str(source["S3Uri"]).startswith("s3://"):
            raise validation_error(f"S3Uri {source['S3Uri']!r} of input {item['InputName']} is not an s3:// URI")
        if not str(source["LocalPath"]).startswith("/opt/ml/processing"):
            raise validation_error(f"LocalPath {source['LocalPath']!r} must be under /opt/ml/processing")
        if source.get("S3DataType", "S3Prefix") != "S3Prefix" or source.get("S3InputMode", "File") != "File":
            raise validation_error("the local stand-in supports S3DataType S3Prefix in File mode")
    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        target = item.get("S3Output") or {}
        if not item.get("OutputName") or not target.get("S3Uri") or not target.get("LocalPath"):
            raise validation_error("each ProcessingOutput needs OutputName and S3Output.S3Uri and LocalPath")


def service(stack: EmbeddedStack) -> ProcessingJobService:
    assert stack.processing_jobs is not None, "the stack is not started"
    return stack.processing_jobs


def install(stack: EmbeddedStack) -> ProcessingJobService:
    jobs = ProcessingJobService(stack)
    stack.sagemaker.register("CreateProcessingJob", jobs.create)
    stack.sagemaker.register("DescribeProcessingJob", jobs.describe)
    stack.sagemaker.register("ListProcessingJobs", jobs.list)
    stack.sagemaker.register("StopProcessingJob", jobs.stop_job)
    stack.sagemaker.shutdown_hooks.append(jobs.shutdown)
    return jobs
