"""The PoseBatch training pipeline, built with the SageMaker SDK's own workflow classes (sagemaker 3.x,
`sagemaker.mlops.workflow`), and nothing else imports the SDK: it is heavy, and only this module needs it.

    Train       TrainingStep (ModelTrainer.train() under a PipelineSession): the PoseBatch image's `train`,
                channels `dataset` and `model`, hyperparameters epochs/imgsz (parameters) + --hyperparameter
    Evaluate    ProcessingStep (Processor.run()): the same image's `evaluate`; inputs model (Train's
                model.tar.gz), dataset, baseline; output evaluation/ with evaluation.json (a PropertyFile)
    CheckGate   ConditionStep: JsonGet(pose_metrics.ap.value) >= MinAP and JsonGet(gate.passed) == true
                (gate.passed is false only when --must-beat-baseline and the AP is not above the baseline's)
    Register    ModelStep of a CreateModelPackage request (PendingManualApproval, the evaluation as the
                package's model-quality metrics, AP/dataset/base model as CustomerMetadataProperties)
    GateFailed  FailStep: its message names the AP, the bar and the baseline

`definition_json()` is what CreatePipeline/UpdatePipeline take, on AWS and on the local stand-in
(`batch/local/sagemaker/pipeline_service.py`, which runs exactly these step types and expressions).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from batch.registry.packages import AP, BASE_MODEL, CONTENT_TYPES, DATASET, INSTANCE_TYPES, PENDING, RESPONSE_TYPES

PIPELINE_NAME = "posebatch-training"
TRAIN, EVALUATE, CHECK, REGISTER, FAIL = "Train", "Evaluate", "CheckGate", "Register", "GateFailed"
EVALUATION_OUTPUT = "evaluation"
PROPERTY_FILE = "EvaluationReport"
EVALUATION_FILE = "evaluation.json"
AP_PATH, GATE_PATH, BASELINE_AP_PATH = "pose_metrics.ap.value", "gate.passed", "baseline.ap"
# name -> (kind, default): the pipeline's parameters (StartPipelineExecution's PipelineParameters).
PARAMETERS: dict[str, tuple[str, Any]] = {
    "DatasetUri": ("String", "s3://bucket/dataset/"),
    "BaseModelUri": ("String", "s3://bucket/model/yolo11n-pose.pt"),
    "BaselineModelUri": ("String", "s3://bucket/model/yolo11n-pose.pt"),
    "Epochs": ("Integer", 100),
    "ImageSize": ("Integer", 640),
    "TrainingInstanceType": ("String", "ml.g5.xlarge"),
    "EvaluationInstanceType": ("String", "ml.g5.xlarge"),
    "MinAP": ("Float", 0.5),
}
# The SDK's own config (instead of ~/.config/sagemaker/config.yaml): no telemetry calls from definitions.
_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@dataclass(frozen=True)
class PipelineSpec:
    """What is fixed in the definition (the rest are parameters, given per execution)."""

    image_uri: str
    role_arn: str
    output_path: str  # s3://bucket/prefix/: training/, evaluation/<execution>/ below it
    model_package_group: str
    region: str
    name: str = PIPELINE_NAME
    hyperparameters: dict[str, str] = field(default_factory=dict)  # --hyperparameter KEY=VALUE
    must_beat_baseline: bool = False
    max_runtime_s: int = 86400
    environment: dict[str, str] = field(default_factory=dict)  # both jobs' Environment (e.g. POSE_BACKEND)


@contextlib.contextmanager
def _sdk_environment(region: str) -> Iterator[None]:
    """The SDK creates a boto3 client at import (so it needs a region) and, when a ModelTrainer is built,
    simulates the role's IAM policies (a network call; SageMaker checks the role when the step runs)."""
    saved = {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "SAGEMAKER_VALIDATE_ROLE")}
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def definition_json(spec: PipelineSpec) -> str:
    """The pipeline definition (JSON) built with the SDK's classes."""
    logging.getLogger("sagemaker").setLevel(logging.ERROR)  # "Popping out 'TrainingJobName'...", config INFO
    with _sdk_environment(spec.region), warnings.catch_warnings():
        # The SDK 3.27's own imports use its deprecated shims (sagemaker.train.configs, ...), and it warns
        # that a PipelineSession starts no job: both are about the SDK, not about this code.
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, message=r"(sagemaker\.|Importing from sagemaker)"
        )
        warnings.filterwarnings("ignore", category=UserWarning, message="Running within a PipelineSession")
        return str(build(spec).definition())


def build(spec: PipelineSpec) -> Any:
    import boto3
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        CheckpointConfig,
        OutputDataConfig,
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )
    from sagemaker.core.training.configs import Compute, InputData, StoppingCondition
    from sagemaker.core.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
    from sagemaker.train.model_trainer import ModelTrainer

    kinds = {"String": ParameterString, "Integer": ParameterInteger, "Float": ParameterFloat}
    p = {name: kinds[kind](name=name, default_value=default) for name, (kind, default) in PARAMETERS.items()}
    # No credentials are needed to build a definition: the session only names a region and a bucket.
    boto = boto3.Session(region_name=spec.region)
    root = spec.output_path.rstrip("/")
    session = PipelineSession(boto_session=boto, default_bucket=root[5:].split("/")[0], sagemaker_config=_SDK_CONFIG)

    trainer = ModelTrainer(
        sagemaker_session=session,
        role=spec.role_arn,
        training_image=spec.image_uri,
        base_job_name="posebatch-pipeline-train",
        compute=Compute(instance_type=p["TrainingInstanceType"], instance_count=1, volume_size_in_gb=50),
        hyperparameters={
            **spec.hyperparameters,
            "epochs": p["Epochs"].to_string(),
            "imgsz": p["ImageSize"].to_string(),
        },
        environment=dict(spec.environment),
        output_data_config=OutputDataConfig(s3_output_path=f"{root}/training/"),
        checkpoint_config=CheckpointConfig(
            s3_uri=Join(on="/", values=[f"{root}/checkpoints", ExecutionVariables.PIPELINE_EXECUTION_ID]),
            local_path="/opt/ml/checkpoints",
        ),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.max_runtime_s),
    )
    train = TrainingStep(
        TRAIN,
        step_args=trainer.train(
            input_data_config=[
                InputData(channel_name="dataset", data_source=p["DatasetUri"]),
                InputData(channel_name="model", data_source=p["BaseModelUri"]),
            ],
            wait=False,
        ),
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    def processing_input(name: str, source: Any) -> Any:
        local = f"/opt/ml/processing/{name}"
        s3 = ProcessingS3Input(s3_uri=source, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File")
        return ProcessingInput(input_name=name, s3_input=s3)

    evaluation_uri = Join(on="/", values=[f"{root}/evaluation", ExecutionVariables.PIPELINE_EXECUTION_ID])
    processor = Processor(
        role=spec.role_arn,
        image_uri=spec.image_uri,
        instance_count=1,
        instance_type=p["EvaluationInstanceType"],
        env=dict(spec.environment) or None,
        sagemaker_session=session,
        base_job_name="posebatch-pipeline-evaluate",
    )
    arguments: list[Any] = ["evaluate", "--imgsz", p["ImageSize"].to_string()]
    if spec.must_beat_baseline:
        arguments.append("--must-beat-baseline")
    report = PropertyFile(name=PROPERTY_FILE, output_name=EVALUATION_OUTPUT, path=EVALUATION_FILE)
    evaluate = ProcessingStep(
        EVALUATE,
        step_args=processor.run(
            inputs=[
                processing_input("model", model_data),
                processing_input("dataset", p["DatasetUri"]),
                processing_input("baseline", p["BaselineModelUri"]),
            ],
            outputs=[
                ProcessingOutput(
                    output_name=EVALUATION_OUTPUT,
                    s3_output=ProcessingS3Output(
                        s3_uri=evaluation_uri, local_path="/opt/ml/processing/evaluation", s3_upload_mode="EndOfJob"
                    ),
                )
            ],
            arguments=arguments,
            wait=False,
            logs=False,
        ),
        property_files=[report],
    )
    ap = JsonGet(step_name=EVALUATE, property_file=report, json_path=AP_PATH)
    passed = JsonGet(step_name=EVALUATE, property_file=report, json_path=GATE_PATH)
    baseline_ap = JsonGet(step_name=EVALUATE, property_file=report, json_path=BASELINE_AP_PATH)

    register = ModelStep(REGISTER, step_args=_register_arguments(session, spec, p, model_data, evaluation_uri, ap))
    fail = FailStep(
        FAIL,
        error_message=Join(
            on="",
            values=[
                "the model's AP ",
                ap,
                " did not pass the gate: MinAP ",
                p["MinAP"],
                f"{', and it must beat the baseline' if spec.must_beat_baseline else ''} (baseline AP ",
                baseline_ap,
                ")",
            ],
        ),
    )
    check = ConditionStep(
        CHECK,
        conditions=[ConditionGreaterThanOrEqualTo(left=ap, right=p["MinAP"]), ConditionEquals(left=passed, right=True)],
        if_steps=[register],
        else_steps=[fail],
    )
    return Pipeline(
        name=spec.name,
        parameters=list(p.values()),
        steps=[train, evaluate, check],
        sagemaker_session=session,
        pipeline_experiment_config=None,
    )


def _register_arguments(
    session: Any, spec: PipelineSpec, p: dict[str, Any], model_data: Any, evaluation_uri: Any, ap: Any
) -> Any:
    """CreateModelPackage's request as a ModelStep's arguments: the shape `batch.registry.packages`
    registers (its model-quality metrics, its metadata), with pipeline expressions where values come
    from the run. `create_model_package_from_containers` under a PipelineSession is what
    `ModelBuilder.register()` calls; called directly, it needs only a holder of the session."""
    from sagemaker.core.model_registry import create_model_package_from_containers
    from sagemaker.core.workflow.functions import Join

    class _Holder:  # ModelStep reads `.sagemaker_session` of the model behind the arguments
        sagemaker_session = session

    session.init_model_step_arguments(_Holder())
    metrics_uri = Join(on="/", values=[evaluation_uri, EVALUATION_FILE])
    return create_model_package_from_containers(
        session,
        containers=[{"Image": spec.image_uri, "ModelDataUrl": model_data}],
        content_types=CONTENT_TYPES,
        response_types=RESPONSE_TYPES,
        inference_instances=INSTANCE_TYPES,
        transform_instances=INSTANCE_TYPES,
        model_package_group_name=spec.model_package_group,
        model_metrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        approval_status=PENDING,
        customer_metadata_properties={
            DATASET: p["DatasetUri"],
            BASE_MODEL: p["BaseModelUri"],
            AP: Join(on="", values=[ap]),
        },
    )


def parameters_request(values: dict[str, Any]) -> list[dict[str, str]]:
    """StartPipelineExecution's PipelineParameters (every value a string), unknown names refused."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"not parameters of the pipeline: {', '.join(unknown)}")
    return [{"Name": name, "Value": str(value)} for name, value in values.items() if value is not None]


def loads(definition: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(definition)
    return found
