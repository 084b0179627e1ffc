"""The local stand-in for SageMaker Batch Transform: CreateTransformJob, DescribeTransformJob,
ListTransformJobs and StopTransformJob on the stack's SageMaker API, each job run by real serving
containers (see `transform_runner`), and the completion plumbing as on AWS: an EventBridge rule on
"SageMaker Transform Job State Change" -> (SQS here, since moto cannot target SNS or Lambda) -> the
completion handler -> the pages queue -> page invocations (`POSEBATCH_FINALIZE_CONCURRENCY` at once)
-> the summary and the SNS topic.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from batch.local.container import ContainerStartupFailed, ServingContainer, unpack_model
from batch.local.sagemaker.api import SageMakerApiError, arn, not_found, validation_error
from batch.local.sagemaker.transform_job_record import TransformJob, container_environment, resolve_parameters
from batch.local.sagemaker.transform_runner import InputFile, Instance, InstanceWorker, spread_over_instances
from batch.orchestration_settings import CompletionConfig, finalize_budget_s, local_finalize_concurrency
from batch.s3_listing import list_objects
from batch.s3_uri import S3Uri
from batch.transform import completion, fanout

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

RULE_NAME = "posebatch-transform-job-state"
CONTINUE_RULE_NAME = "posebatch-transform-finalize-continue"
QUEUE_NAME = "posebatch-transform-events"
PAGES_QUEUE_NAME = "posebatch-transform-pages"
MAX_LOCAL_INSTANCES = 8
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class TransformJobService:
    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.jobs: dict[str, TransformJob] = {}
        self._lock = threading.Lock()

    # --- control plane --------------------------------------------------------------------------
    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        _validate(request)
        name = request["TransformJobName"]
        self.stack.sagemaker.model(request["ModelName"])
        job = TransformJob(request=request, arn=arn(self.stack.region, "transform-job", name))
        with self._lock:
            if name in self.jobs:
                raise SageMakerApiError(
                    "ResourceInUse",
                    f"Job name must be unique within an AWS account and "
                    f"region, and a job with this name already exists ({job.arn})",
                )
            self.jobs[name] = job
        job.thread = threading.Thread(target=self._run, args=(job,), name=f"transform-{name}", daemon=True)
        job.thread.start()
        return {"TransformJobArn": job.arn}

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.job(str(request.get("TransformJobName"))).describe()

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            jobs = list(self.jobs.values())
        contains = (request.get("NameContains") or "").lower()
        status = request.get("StatusEquals")
        jobs = [j for j in jobs if contains in j.name.lower() and (not status or j.status == status)]
        key = "TransformJobName" if request.get("SortBy") == "Name" else "CreationTime"
        summaries = sorted(
            (j.summary() for j in jobs),
            key=lambda s: s[key],
            reverse=request.get("SortOrder", "Descending") == "Descending",
        )
        start = int(request.get("NextToken") or 0)
        end = start + int(request.get("MaxResults") or 100)
        page: dict[str, Any] = {"TransformJobSummaries": summaries[start:end]}
        if end < len(summaries):
            page["NextToken"] = str(end)
        return page

    def stop_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.job(str(request.get("TransformJobName")))
        with job.lock:
            if job.status == "InProgress":
                job.status = "Stopping"
                job.stop.set()
        return {}

    def job(self, name: str) -> TransformJob:
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
                job.thread.join(60)

    # --- running a job --------------------------------------------------------------------------
    def _run(self, job: TransformJob) -> None:
        try:
            self._execute(job)
        except ContainerStartupFailed as exc:  # the container's own reason, whole, first
            log.warning("transform job %s: %s", job.name, exc)
            job.fail(f"ClientError: the container failed to start: {exc.reason} (log: {exc.log_path})"[:1024])
        except Exception as exc:
            log.exception("transform job %s failed", job.name)
            job.fail(f"ClientError: {exc}"[:1024])
        finally:
            for instance in job.instances:
                instance.stop()
            job.finish()
            self._put_event(job)

    def _execute(self, job: TransformJob) -> None:
        request = job.request
        s3 = self.stack.client("s3")
        model = self.stack.sagemaker.model(request["ModelName"])
        workdir = self.stack.home / "transform-jobs" / job.name
        model_dir = workdir / "model"
        model_data_url = model["PrimaryContainer"].get("ModelDataUrl")
        if model_data_url:
            unpack_model(s3, model_data_url, model_dir)
        else:
            model_dir.mkdir(parents=True, exist_ok=True)
        environment = container_environment(model, request)

        def make_container(index: int) -> ServingContainer:
            return ServingContainer(
                model_dir=model_dir,
                environment=environment,
                aws_environment=self.stack.environment,
                log_path=workdir / f"instance-{index}.log",
                command=self.stack.serve_command,
            )

        count = int(request["TransformResources"]["InstanceCount"])
        job.instances = [Instance(i, make_container) for i in range(count)]
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda instance: instance.start(), job.instances))
        if job.stop.is_set():
            return
        job.params = resolve_parameters(request, job.instances[0].execution_parameters())
        data_source = request["TransformInput"]["DataSource"]["S3DataSource"]
        source = S3Uri.parse(data_source["S3Uri"], allow_empty_key=True)
        if data_source.get("S3DataType", "S3Prefix") == "ManifestFile":
            source, files = _read_manifest_file(s3, source)
        else:
            files = _list_input(s3, source)
        if not files:
            raise ValueError(f"no objects found under the input S3Uri {source}")
        output = S3Uri.parse(request["TransformOutput"]["S3OutputPath"], allow_empty_key=True)
        workers = [
            InstanceWorker(
                instance,
                job.params,
                s3=s3,
                output=output,
                input_bucket=source.bucket,
                stop=job.stop,
                on_response=lambda _instance: job.count_response(),
                on_retry=job.count_retry,
            )
            for instance in job.instances
        ]
        groups = spread_over_instances(files, count)
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda pair: pair[0].run(pair[1]), zip(workers, groups, strict=True)))
        for worker in workers:
            job.record(worker.done, worker.failed)

    def _put_event(self, job: TransformJob) -> None:
        try:
            self.stack.client("events").put_events(Entries=[job.state_change_event()])
        except Exception:
            log.exception("could not put the state-change event of %s", job.name)


def _list_input(s3: Any, source: S3Uri) -> list[InputFile]:
    # An S3Uri without a trailing slash is a key prefix on AWS: `in/a` also matches `in/ab/x`.
    prefix = source.key
    sizes = {obj["Key"]: int(obj["Size"]) for obj in list_objects(s3, source.bucket, prefix)}
    return [InputFile(key=k, rel=_relative(k, prefix), size=sizes[k]) for k in sorted(sizes) if not k.endswith("/")]


def _read_manifest_file(s3: Any, manifest: S3Uri) -> tuple[S3Uri, list[InputFile]]:
    """`S3DataType=ManifestFile`: `[{"prefix": "s3://b/p/"}, "rel", ...]`; `.out` names keep `rel`."""
    entries = json.loads(s3.get_object(Bucket=manifest.bucket, Key=manifest.key)["Body"].read())
    if not (isinstance(entries, list) and entries and isinstance(entries[0], dict) and "prefix" in entries[0]):
        raise ValueError(f"the manifest {manifest} must be a JSON list starting with {{'prefix': ...}}")
    prefix = S3Uri.parse(entries[0]["prefix"], allow_empty_key=True)

    def stat(rel: str) -> InputFile:
        key = prefix.key + rel
        return InputFile(key=key, rel=rel, size=int(s3.head_object(Bucket=prefix.bucket, Key=key)["ContentLength"]))

    with ThreadPoolExecutor(8) as pool:
        return prefix, list(pool.map(stat, [str(rel) for rel in entries[1:]]))


def _relative(key: str, prefix: str) -> str:
    if not prefix or prefix.endswith("/"):
        return key[len(prefix) :]
    if key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    return key[len(prefix.rpartition("/")[0]) + 1 :] if "/" in prefix else key


def _validate(request: dict[str, Any]) -> None:
    name = request.get("TransformJobName") or ""
    if not _NAME.match(name):
        raise validation_error(f"TransformJobName {name!r} must match {_NAME.pattern}")
    for path in (
        ("ModelName",),
        ("TransformInput", "DataSource", "S3DataSource", "S3Uri"),
        ("TransformOutput", "S3OutputPath"),
        ("TransformResources", "InstanceType"),
        ("TransformResources", "InstanceCount"),
    ):
        value: Any = request
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value in (None, ""):
            raise validation_error(f"{'.'.join(path)} is required")
    data_type = request["TransformInput"]["DataSource"]["S3DataSource"].get("S3DataType", "S3Prefix")
    if data_type not in ("S3Prefix", "ManifestFile"):
        raise validation_error(f"S3DataType {data_type!r}: the local stand-in supports S3Prefix and ManifestFile")
    count = int(request["TransformResources"]["InstanceCount"])
    if not 1 <= count <= MAX_LOCAL_INSTANCES:
        raise validation_error(f"InstanceCount must be 1-{MAX_LOCAL_INSTANCES} locally, got {count}")
    try:
        resolve_parameters(request, None)
    except ValueError as exc:
        raise validation_error(str(exc)) from None
    concurrent, payload = request.get("MaxConcurrentTransforms"), request.get("MaxPayloadInMB")
    if concurrent and payload and int(concurrent) * int(payload) > 100:
        raise validation_error("MaxConcurrentTransforms * MaxPayloadInMB must not exceed 100 MB")


def service(stack: EmbeddedStack) -> TransformJobService:
    """The running service of `stack` (tests reach jobs and their containers through it)."""
    assert stack.transform_jobs is not None, "the stack is not started"
    return stack.transform_jobs


def install(stack: EmbeddedStack) -> TransformJobService:
    jobs = TransformJobService(stack)
    stack.sagemaker.register("CreateTransformJob", jobs.create)
    stack.sagemaker.register("DescribeTransformJob", jobs.describe)
    stack.sagemaker.register("ListTransformJobs", jobs.list)
    stack.sagemaker.register("StopTransformJob", jobs.stop_job)
    stack.sagemaker.shutdown_hooks.append(jobs.shutdown)

    topic_arn = stack.client("sns").create_topic(Name=completion.TOPIC_NAME)["TopicArn"]

    def on_pages(event: dict[str, Any], context: Any) -> Any:
        return fanout.handle_task_records(
            event, clients=stack.client, topic_arn=topic_arn, job_prefix=completion.JOB_NAME_PREFIX
        )

    # As on AWS: the pages queue with its own invocations, a bounded number at once.
    stack.add_sqs_lambda(PAGES_QUEUE_NAME, on_pages, batch_size=1, concurrency=local_finalize_concurrency())
    config = CompletionConfig(topic_arn=topic_arn, pages_queue_url=stack.queue_url(PAGES_QUEUE_NAME))

    def on_job_event(event: dict[str, Any], context: Any) -> Any:
        budget_s = finalize_budget_s()  # no Lambda context here: the setting alone
        return completion.handle_records(event, config, clients=stack.client, budget_s=budget_s)

    queue_arn = stack.add_sqs_lambda(QUEUE_NAME, on_job_event, batch_size=1)
    events = stack.client("events")
    # As on AWS: the job's state change and the finaliser's own continuation events, to one handler.
    for rule, pattern in ((RULE_NAME, completion.EVENT_PATTERN), (CONTINUE_RULE_NAME, completion.CONTINUE_PATTERN)):
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": "transform-completion", "Arn": queue_arn}])
    log.info("local transform jobs ready (topic %s)", topic_arn)
    return jobs
