"""SageMaker Pipelines on the local stand-in: CreatePipeline, UpdatePipeline, DescribePipeline,
StartPipelineExecution, DescribePipelineExecution, ListPipelineExecutions, ListPipelineExecutionSteps and
StopPipelineExecution. moto only records pipelines (an execution "succeeds" at once and no step runs); here
each execution really runs its steps, one after another, through the stand-in's own operations over the
same boto3 client every other caller uses: CreateTrainingJob and CreateProcessingJob (the image as a
process with the /opt/ml layout), CreateModelPackage (the registry), and Condition and Fail steps.

Why an interpreter of the definition JSON rather than the SDK's `LocalPipelineExecutor`: that executor has
no executor for a register step (the pipeline's last step), it runs jobs through the SDK's docker-based
local mode (no docker here), and it would put the SDK into the stack's process. The definition language is
small; this runs exactly what `batch/pipeline/definition.py` writes, and refuses the rest by name:

- step types: Training, Processing (with PropertyFiles), Condition, RegisterModel, Fail;
- expressions: {"Get": "Parameters.X" | "Execution.PipelineExecutionId|PipelineExecutionArn|PipelineName" |
  "Steps.<step>.<property path>"}, {"Std:Join": {"On", "Values"}}, {"Std:JsonGet": {"PropertyFile", "Path"}};
- conditions: Equals, GreaterThan(OrEqualTo), LessThan(OrEqualTo), Not, Or, In.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batch.local.sagemaker.api import SageMakerApiError, arn, not_found, validation_error
from batch.s3_uri import S3Uri

if TYPE_CHECKING:
    from batch.local.stack import EmbeddedStack

log = logging.getLogger(__name__)

POLL_S = 0.5
END = ("Completed", "Failed", "Stopped")
_CONDITIONS = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


class StepFailed(Exception):
    """A step ended Failed (or its request was refused); the message is its FailureReason."""


class ExecutionStopped(Exception):
    pass


@dataclass
class StepRecord:
    name: str
    type: str
    status: str = "Executing"
    started: float = field(default_factory=time.time)
    ended: float | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {"StepName": self.name, "StepStatus": self.status, "StartTime": self.started,
                                 "Metadata": self.metadata}  # fmt: skip
        if self.ended is not None:
            found["EndTime"] = self.ended
        if self.failure_reason:
            found["FailureReason"] = self.failure_reason
        return found


@dataclass
class Execution:
    arn: str
    pipeline_arn: str
    pipeline_name: str
    execution_id: str
    definition: dict[str, Any]
    parameters: dict[str, Any]
    display_name: str | None
    status: str = "Executing"
    failure_reason: str | None = None
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    steps: list[StepRecord] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> its job's description
    stop: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "PipelineArn": self.pipeline_arn,
            "PipelineExecutionArn": self.arn,
            "PipelineExecutionDisplayName": self.display_name or self.execution_id,
            "PipelineExecutionStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
        }
        if self.failure_reason:
            found["FailureReason"] = self.failure_reason
        return found


class PipelineService:
    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.executions: dict[str, Execution] = {}
        self._lock = threading.Lock()

    # --- pipelines ------------------------------------------------------------------------------
    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _pipeline_name(request)
        definition = _definition(request)
        with self._lock:
            if name in self.pipelines:
                raise SageMakerApiError("ResourceInUse", f"Pipeline {name} already exists")
            pipeline_arn = arn(self.stack.region, "pipeline", name)
            now = time.time()
            self.pipelines[name] = {
                "PipelineArn": pipeline_arn,
                "PipelineName": name,
                "PipelineDisplayName": request.get("PipelineDisplayName") or name,
                "PipelineDefinition": json.dumps(definition),
                "PipelineDescription": request.get("PipelineDescription", ""),
                "RoleArn": request.get("RoleArn", ""),
                "PipelineStatus": "Active",
                "CreationTime": now,
                "LastModifiedTime": now,
            }
        self.stack.sagemaker.tag(pipeline_arn, request.get("Tags"))
        return {"PipelineArn": pipeline_arn}

    def update(self, request: dict[str, Any]) -> dict[str, Any]:
        pipeline = self.pipeline(_pipeline_name(request))
        with self._lock:
            if request.get("PipelineDefinition"):
                pipeline["PipelineDefinition"] = json.dumps(_definition(request))
            for key in ("PipelineDisplayName", "PipelineDescription", "RoleArn"):
                if request.get(key):
                    pipeline[key] = request[key]
            pipeline["LastModifiedTime"] = time.time()
        return {"PipelineArn": pipeline["PipelineArn"]}

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return dict(self.pipeline(_pipeline_name(request)))

    def pipeline(self, name: str) -> dict[str, Any]:
        found = self.pipelines.get(name.rpartition("/")[2] if name.startswith("arn:") else name)
        if found is None:
            raise SageMakerApiError("ResourceNotFound", f"Pipeline '{name}' does not exist.")
        return found

    # --- executions -----------------------------------------------------------------------------
    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        pipeline = self.pipeline(_pipeline_name(request))
        definition = json.loads(pipeline["PipelineDefinition"])
        given = {str(p["Name"]): p["Value"] for p in request.get("PipelineParameters") or []}
        parameters = _parameters(definition, given)
        execution_id = secrets.token_hex(6)
        execution = Execution(
            arn=f"{pipeline['PipelineArn']}/execution/{execution_id}",
            pipeline_arn=pipeline["PipelineArn"],
            pipeline_name=pipeline["PipelineName"],
            execution_id=execution_id,
            definition=definition,
            parameters=parameters,
            display_name=request.get("PipelineExecutionDisplayName"),
        )
        with self._lock:
            self.executions[execution.arn] = execution
        threading.Thread(target=self._run, args=(execution,), name=f"pipeline-{execution_id}", daemon=True).start()
        return {"PipelineExecutionArn": execution.arn}

    def execution(self, execution_arn: str) -> Execution:
        with self._lock:
            found = self.executions.get(execution_arn)
        if found is None:
            raise not_found(f"Pipeline execution '{execution_arn}' does not exist.")
        return found

    def describe_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.execution(str(request.get("PipelineExecutionArn"))).describe()

    def list_executions(self, request: dict[str, Any]) -> dict[str, Any]:
        pipeline = self.pipeline(_pipeline_name(request))
        with self._lock:
            mine = [e for e in self.executions.values() if e.pipeline_arn == pipeline["PipelineArn"]]
        mine.sort(key=lambda e: e.created, reverse=True)
        summaries = [
            {"PipelineExecutionArn": e.arn, "PipelineExecutionStatus": e.status, "StartTime": e.created,
             "PipelineExecutionDisplayName": e.display_name or e.execution_id}
            for e in mine
        ]  # fmt: skip
        return {"PipelineExecutionSummaries": summaries}

    def list_steps(self, request: dict[str, Any]) -> dict[str, Any]:
        execution = self.execution(str(request.get("PipelineExecutionArn")))
        steps = [s.summary() for s in execution.steps]
        if request.get("SortOrder", "Descending") == "Descending":
            steps.reverse()  # SageMaker's default: the latest step first
        return {"PipelineExecutionSteps": steps}

    def stop_execution(self, request: dict[str, Any]) -> dict[str, Any]:
        execution = self.execution(str(request.get("PipelineExecutionArn")))
        if execution.status == "Executing":
            execution.status = "Stopping"
            execution.stop.set()
        return {"PipelineExecutionArn": execution.arn}

    def shutdown(self) -> None:
        with self._lock:
            executions = list(self.executions.values())
        for execution in executions:
            execution.stop.set()

    # --- running --------------------------------------------------------------------------------
    def _run(self, execution: Execution) -> None:
        try:
            self._run_steps(execution, execution.definition.get("Steps") or [])
            execution.status = "Succeeded"
        except ExecutionStopped:
            execution.status = "Stopped"
        except StepFailed as exc:
            execution.status, execution.failure_reason = "Failed", str(exc)
        except Exception as exc:
            log.exception("pipeline execution %s failed in the stand-in", execution.arn)
            execution.status, execution.failure_reason = "Failed", f"InternalError: {exc}"
        execution.modified = time.time()
        log.info("pipeline execution %s: %s", execution.execution_id, execution.status)

    def _run_steps(self, execution: Execution, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            if execution.stop.is_set():
                raise ExecutionStopped()
            record = StepRecord(step["Name"], step["Type"])
            execution.steps.append(record)
            execution.modified = time.time()
            try:
                branch = self._run_step(execution, step, record)
            except StepFailed as exc:
                record.status, record.failure_reason, record.ended = "Failed", str(exc), time.time()
                raise
            except ExecutionStopped:
                record.status, record.ended = "Stopped", time.time()
                raise
            record.status, record.ended = "Succeeded", time.time()
            if branch:
                self._run_steps(execution, branch)

    def _run_step(self, execution: Execution, step: dict[str, Any], record: StepRecord) -> list[dict[str, Any]]:
        """Runs one step; returns the steps of the branch a condition chose."""
        kind = step["Type"]
        resolve = Resolver(self, execution).resolve
        if kind == "Training":
            self._job(execution, step, record, "training")
        elif kind == "Processing":
            self._job(execution, step, record, "processing")
        elif kind == "Condition":
            arguments = step["Arguments"]
            outcome = all(self._condition(resolve, c) for c in arguments.get("Conditions") or [])
            record.metadata = {"Condition": {"Outcome": str(outcome)}}
            return list(arguments.get("IfSteps" if outcome else "ElseSteps") or [])
        elif kind == "RegisterModel":
            request = resolve(step["Arguments"])
            request.pop("SkipModelValidation", None)
            from batch.registry.packages import ensure_group

            sagemaker = self.stack.client("sagemaker")
            ensure_group(sagemaker, request["ModelPackageGroupName"])
            created = sagemaker.create_model_package(**request)
            record.metadata = {"RegisterModel": {"Arn": created["ModelPackageArn"]}}
        elif kind == "Fail":
            message = str(resolve(step["Arguments"].get("ErrorMessage") or ""))
            record.metadata = {"Fail": {"ErrorMessage": message}}
            raise StepFailed(message)
        else:
            raise StepFailed(f"step {step['Name']}: the local stand-in does not run {kind} steps")
        return []

    def _condition(self, resolve: Any, condition: dict[str, Any]) -> bool:
        kind = condition["Type"]
        if kind == "Not":
            return not self._condition(resolve, condition["Expression"])
        if kind == "Or":
            return any(self._condition(resolve, c) for c in condition["Conditions"])
        if kind == "In":
            return bool(resolve(condition["QueryValue"]) in [resolve(v) for v in condition["Values"]])
        if kind not in _CONDITIONS:
            raise StepFailed(f"the local stand-in does not evaluate {kind} conditions")
        return bool(_CONDITIONS[kind](resolve(condition["LeftValue"]), resolve(condition["RightValue"])))

    def _job(self, execution: Execution, step: dict[str, Any], record: StepRecord, kind: str) -> None:
        sagemaker = self.stack.client("sagemaker")
        request = Resolver(self, execution).resolve(step["Arguments"])
        name = f"pipelines-{execution.execution_id}-{re.sub('[^a-zA-Z0-9]', '', step['Name'])[:30]}".lower()
        if kind == "training":
            request["TrainingJobName"] = name
            create, describe, key = sagemaker.create_training_job, sagemaker.describe_training_job, "TrainingJobName"
            status_key, meta = "TrainingJobStatus", "TrainingJob"
            stop = sagemaker.stop_training_job
        else:
            request["ProcessingJobName"] = name
            create, describe, key = (
                sagemaker.create_processing_job,
                sagemaker.describe_processing_job,
                "ProcessingJobName",
            )
            status_key, meta = "ProcessingJobStatus", "ProcessingJob"
            stop = sagemaker.stop_processing_job
        try:
            created = create(**request)
        except Exception as exc:  # a refused request fails the step, as on SageMaker
            raise StepFailed(f"{step['Name']}: {exc}") from None
        record.metadata = {meta: {"Arn": created.get("TrainingJobArn") or created.get("ProcessingJobArn")}}
        while True:
            described: dict[str, Any] = describe(**{key: name})
            if described[status_key] in END:
                break
            if execution.stop.is_set():
                stop(**{key: name})
            time.sleep(POLL_S)
        execution.outputs[step["Name"]] = {**described, "__property_files": step.get("PropertyFiles") or []}
        if described[status_key] == "Stopped":
            raise ExecutionStopped()
        if described[status_key] != "Completed":
            raise StepFailed(described.get("FailureReason") or f"{kind} job {name} {described[status_key]}")


class Resolver:
    """Pipeline expressions -> values, against one execution."""

    def __init__(self, service: PipelineService, execution: Execution) -> None:
        self.service = service
        self.execution = execution

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"}:
            return self._get(str(value["Get"]))
        if set(value) == {"Std:Join"}:
            joined = value["Std:Join"]
            return str(joined.get("On", "")).join(_text(self.resolve(v)) for v in joined.get("Values") or [])
        if set(value) == {"Std:JsonGet"}:
            return self._json_get(value["Std:JsonGet"])
        return {key: self.resolve(v) for key, v in value.items()}

    def _get(self, path: str) -> Any:
        execution = self.execution
        if path.startswith("Parameters."):
            name = path.removeprefix("Parameters.")
            if name not in execution.parameters:
                raise StepFailed(f"no parameter {name}")
            return execution.parameters[name]
        if path.startswith("Execution."):
            values = {"PipelineExecutionId": execution.execution_id, "PipelineExecutionArn": execution.arn,
                      "PipelineName": execution.pipeline_name}  # fmt: skip
            return values[path.removeprefix("Execution.")]
        if path.startswith("Steps."):
            step, _, rest = path.removeprefix("Steps.").partition(".")
            found: Any = execution.outputs.get(step)
            if found is None:
                raise StepFailed(f"{path}: step {step} has not run")
            for part in re.findall(r"[^.\[\]]+|\[[^\]]+\]", rest):
                if part.startswith("["):
                    index = part[1:-1].strip("'\"")
                    found = found[int(index)] if index.isdigit() else _named(found, index)
                else:
                    found = found[part]
            return found
        raise StepFailed(f"the local stand-in cannot resolve {path!r}")

    def _json_get(self, spec: dict[str, Any]) -> Any:
        reference = str(spec["PropertyFile"]["Get"])  # Steps.<step>.PropertyFiles.<name>
        step, _, name = reference.removeprefix("Steps.").partition(".PropertyFiles.")
        described = self.execution.outputs.get(step)
        if described is None:
            raise StepFailed(f"{reference}: step {step} has not run")
        (property_file,) = [p for p in described["__property_files"] if p["PropertyFileName"] == name] or [None]
        if property_file is None:
            raise StepFailed(f"{reference}: no such property file")
        outputs = (described.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        (output,) = [o for o in outputs if o["OutputName"] == property_file["OutputName"]] or [None]
        if output is None:
            raise StepFailed(f"{reference}: step {step} has no output {property_file['OutputName']}")
        uri = S3Uri.parse(str(output["S3Output"]["S3Uri"]).rstrip("/") + "/" + property_file["FilePath"])
        try:
            body = self.service.stack.client("s3").get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
            found: Any = json.loads(body)
        except Exception as exc:
            raise StepFailed(f"{reference}: cannot read {uri}: {exc}") from None
        for part in re.findall(r"[^.\[\]]+|\[\d+\]", str(spec["Path"])):
            try:
                found = found[int(part[1:-1])] if part.startswith("[") else found[part]
            except (KeyError, IndexError, TypeError):
                raise StepFailed(f"{reference}: no {spec['Path']} in {uri}") from None
        return found


def _named(items: list[dict[str, Any]], name: str) -> Any:
    for item in items:
        if name in (item.get("OutputName"), item.get("InputName"), item.get("ChannelName"), item.get("MetricName")):
            return item
    raise StepFailed(f"no item named {name}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def _pipeline_name(request: dict[str, Any]) -> str:
    name = str(request.get("PipelineName") or "")
    if not name:
        raise validation_error("PipelineName is required")
    return name


def _definition(request: dict[str, Any]) -> dict[str, Any]:
    try:
        definition: dict[str, Any] = json.loads(str(request.get("PipelineDefinition") or ""))
    except ValueError as exc:
        raise validation_error(f"PipelineDefinition is not valid JSON: {exc}") from None
    if not isinstance(definition.get("Steps"), list):
        raise validation_error("PipelineDefinition has no Steps")
    return definition


def _parameters(definition: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The execution's parameter values, typed as declared; unknown names refused as SageMaker does."""
    declared = {p["Name"]: p for p in definition.get("Parameters") or []}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise validation_error(f"Pipeline parameters {unknown} are not defined in the pipeline definition")
    values: dict[str, Any] = {}
    for name, parameter in declared.items():
        raw = given.get(name, parameter.get("DefaultValue"))
        kind = parameter.get("Type", "String")
        try:
            values[name] = (
                int(raw) if kind == "Integer" else float(raw) if kind == "Float"
                else str(raw).lower() == "true" if kind == "Boolean" else raw
            )  # fmt: skip
        except (TypeError, ValueError):
            raise validation_error(f"parameter {name}: {raw!r} is not a {kind}") from None
    return values


def service(stack: EmbeddedStack) -> PipelineService:
    assert stack.pipelines is not None, "the stack is not started"
    return stack.pipelines


def install(stack: EmbeddedStack) -> PipelineService:
    pipelines = PipelineService(stack)
    operations = {
        "CreatePipeline": pipelines.create,
        "UpdatePipeline": pipelines.update,
        "DescribePipeline": pipelines.describe,
        "StartPipelineExecution": pipelines.start,
        "DescribePipelineExecution": pipelines.describe_execution,
        "ListPipelineExecutions": pipelines.list_executions,
        "ListPipelineExecutionSteps": pipelines.list_steps,
        "StopPipelineExecution": pipelines.stop_execution,
    }
    for name, operation in operations.items():
        stack.sagemaker.register(name, operation)
    stack.sagemaker.shutdown_hooks.append(pipelines.shutdown)
    return pipelines
