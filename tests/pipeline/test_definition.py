"""The pipeline definition as the SageMaker SDK's workflow classes write it (no jobs, no stack): the steps
in order, the parameters, the gate (JsonGet on the evaluation's PropertyFile against MinAP), the register
and fail branches, and what the steps pass to each other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batch.pipeline.definition import PARAMETERS, PipelineSpec, definition_json, parameters_request

ROLE = "arn:aws:iam::000000000000:role/posebatch-training"
SPEC = PipelineSpec(
    image_uri="000000000000.dkr.ecr.us-east-1.amazonaws.com/posebatch:latest",
    role_arn=ROLE,
    output_path="s3://posebatch-data/pipeline/",
    model_package_group="posebatch-dogs",
    region="us-east-1",
    hyperparameters={"lr0": "0.002", "mosaic": "0"},
    must_beat_baseline=True,
)
REPORT = {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(definition_json(SPEC))
    return found


def json_get(path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": REPORT, "Path": path}}


def test_the_parameters(definition: dict[str, Any]) -> None:
    declared = {p["Name"]: p["Type"] for p in definition["Parameters"]}
    assert declared == {name: kind for name, (kind, _) in PARAMETERS.items()}
    assert {"DatasetUri", "BaseModelUri", "Epochs", "ImageSize", "TrainingInstanceType", "MinAP"} <= set(declared)
    assert declared["MinAP"] == "Float" and declared["Epochs"] == "Integer"


def test_train_then_evaluate_then_the_gate(definition: dict[str, Any]) -> None:
    train, evaluate, check = definition["Steps"]
    assert [train["Type"], evaluate["Type"], check["Type"]] == ["Training", "Processing", "Condition"]
    args = train["Arguments"]
    assert args["AlgorithmSpecification"]["TrainingImage"] == SPEC.image_uri and args["RoleArn"] == ROLE
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in args["InputDataConfig"]}
    assert channels == {"dataset": {"Get": "Parameters.DatasetUri"}, "model": {"Get": "Parameters.BaseModelUri"}}
    assert args["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    hyper = args["HyperParameters"]
    assert hyper["lr0"] == "0.002" and hyper["mosaic"] == "0"
    assert "Parameters.Epochs" in json.dumps(hyper["epochs"]) and "Parameters.ImageSize" in json.dumps(hyper["imgsz"])

    processing = evaluate["Arguments"]
    assert processing["AppSpecification"]["ContainerArguments"][0] == "evaluate"
    assert "--must-beat-baseline" in processing["AppSpecification"]["ContainerArguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in processing["ProcessingInputs"]}
    assert inputs["model"]["S3Uri"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert inputs["dataset"]["S3Uri"] == {"Get": "Parameters.DatasetUri"}
    assert inputs["baseline"]["S3Uri"] == {"Get": "Parameters.BaselineModelUri"}
    assert {i["LocalPath"] for i in inputs.values()} == {f"/opt/ml/processing/{n}" for n in inputs}
    assert evaluate["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    (output,) = processing["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "evaluation" and "Execution.PipelineExecutionId" in json.dumps(output)


def test_the_gate_reads_the_evaluation_and_branches(definition: dict[str, Any]) -> None:
    check = definition["Steps"][2]
    conditions = check["Arguments"]["Conditions"]
    assert {"Type": "GreaterThanOrEqualTo", "LeftValue": json_get("pose_metrics.ap.value"),
            "RightValue": {"Get": "Parameters.MinAP"}} in conditions  # fmt: skip
    assert {"Type": "Equals", "LeftValue": json_get("gate.passed"), "RightValue": True} in conditions
    (register,) = check["Arguments"]["IfSteps"]
    (fail,) = check["Arguments"]["ElseSteps"]
    assert register["Type"] == "RegisterModel" and fail["Type"] == "Fail"
    package = register["Arguments"]
    assert package["ModelPackageGroupName"] == "posebatch-dogs"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container == {
        "Image": SPEC.image_uri,
        "ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
    }
    metadata = package["CustomerMetadataProperties"]
    assert json_get("pose_metrics.ap.value") in metadata["ap"]["Std:Join"]["Values"]
    assert metadata["dataset"] == {"Get": "Parameters.DatasetUri"}
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json" and "evaluation.json" in json.dumps(statistics["S3Uri"])
    message = fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert json_get("pose_metrics.ap.value") in message and {"Get": "Parameters.MinAP"} in message
    assert json_get("baseline.ap") in message


def test_execution_parameters_are_strings_and_known() -> None:
    assert parameters_request({"MinAP": 0.5, "Epochs": 1, "ImageSize": None}) == [
        {"Name": "MinAP", "Value": "0.5"},
        {"Name": "Epochs", "Value": "1"},
    ]
    with pytest.raises(ValueError, match="MinAp"):
        parameters_request({"MinAp": 0.5})
