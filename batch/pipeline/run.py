"""Upsert the pipeline, start an execution and follow it, with plain boto3 `sagemaker`/`s3` clients: the
same code against SageMaker and the local stand-in. The definition comes from `definition.py` (the SDK);
nothing here imports the SDK.

The result (the command's one JSON object): pipeline_execution, status, steps (name, status, failure
reason, oldest first), metrics (the evaluation's ap and baseline_ap, and the gate), model_package (the ARN
the Register step created, or null) and approval (that package's status, or null).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from botocore.exceptions import ClientError

from batch.pipeline.definition import EVALUATE, EVALUATION_FILE, EVALUATION_OUTPUT
from batch.s3_uri import S3Uri

END_STATES = ("Succeeded", "Failed", "Stopped")


def upsert(sagemaker: Any, name: str, definition: str, role_arn: str) -> str:
    """UpdatePipeline when it exists, else CreatePipeline; returns its ARN."""
    try:
        sagemaker.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ResourceNotFound", "ResourceNotFoundException"):
            raise
        description = "PoseBatch: train -> evaluate -> AP gate -> register (pose-batch pipeline run)"
        created = sagemaker.create_pipeline(
            PipelineName=name, PipelineDefinition=definition, RoleArn=role_arn, PipelineDescription=description
        )
        return str(created["PipelineArn"])
    updated = sagemaker.update_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=role_arn)
    return str(updated["PipelineArn"])


def start(sagemaker: Any, name: str, parameters: list[dict[str, str]]) -> str:
    started = sagemaker.start_pipeline_execution(PipelineName=name, PipelineParameters=parameters)
    return str(started["PipelineExecutionArn"])


def steps(sagemaker: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every step so far, oldest first."""
    found: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending"
    ):
        found += page.get("PipelineExecutionSteps", [])
    return found


def follow(sagemaker: Any, execution_arn: str, *, poll_s: float, say: Any = None) -> dict[str, Any]:
    """Describe the execution until it ends, saying each step's changes; returns the last description."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    seen: dict[str, str] = {}
    while True:
        described: dict[str, Any] = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        for step in steps(sagemaker, execution_arn):
            if seen.get(step["StepName"]) != step["StepStatus"]:
                seen[step["StepName"]] = step["StepStatus"]
                reason = f": {step['FailureReason']}" if step.get("FailureReason") else ""
                say(f"step {step['StepName']}: {step['StepStatus']}{reason}")
        if described["PipelineExecutionStatus"] in END_STATES:
            return described
        time.sleep(poll_s)


def result(sagemaker: Any, s3: Any, described: dict[str, Any]) -> dict[str, Any]:
    execution_arn = str(described["PipelineExecutionArn"])
    found_steps = steps(sagemaker, execution_arn)
    package_arn = next(
        (s["Metadata"]["RegisterModel"]["Arn"] for s in found_steps if "RegisterModel" in (s.get("Metadata") or {})),
        None,
    )
    approval = None
    if package_arn:
        approval = sagemaker.describe_model_package(ModelPackageName=package_arn).get("ModelApprovalStatus")
    found: dict[str, Any] = {
        "pipeline_execution": execution_arn,
        "status": described["PipelineExecutionStatus"],
        "steps": [
            {"name": s["StepName"], "status": s["StepStatus"], "failure_reason": s.get("FailureReason")}
            for s in found_steps
        ],
        "metrics": evaluation_metrics(sagemaker, s3, found_steps),
        "model_package": package_arn,
        "approval": approval,
    }
    if described.get("FailureReason"):
        found["failure_reason"] = described["FailureReason"]
    return found


def evaluation_metrics(sagemaker: Any, s3: Any, found_steps: list[dict[str, Any]]) -> dict[str, Any]:
    """ap and baseline_ap (null when not scored) from the Evaluate step's evaluation.json."""
    empty: dict[str, Any] = {"ap": None, "baseline_ap": None}
    step = next((s for s in found_steps if s["StepName"] == EVALUATE), None)
    job_arn = ((step or {}).get("Metadata") or {}).get("ProcessingJob", {}).get("Arn")
    if not job_arn or step is None or step["StepStatus"] != "Succeeded":
        return empty
    job = sagemaker.describe_processing_job(ProcessingJobName=str(job_arn).rpartition("/")[2])
    outputs = (job.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    uri = next((o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == EVALUATION_OUTPUT), None)
    if not uri:
        return empty
    location = S3Uri.parse(f"{str(uri).rstrip('/')}/{EVALUATION_FILE}")
    report = json.loads(s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read())
    metrics = report.get("pose_metrics") or {}
    return {
        "ap": (metrics.get("ap") or {}).get("value"),
        "baseline_ap": (metrics.get("baseline_ap") or {}).get("value"),
        "ap50": (metrics.get("ap50") or {}).get("value"),
        "gate": report.get("gate"),
        "evaluation": str(location),
    }
