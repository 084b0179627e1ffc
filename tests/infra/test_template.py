"""The CloudFormation template: `cfn-lint` passes, every IAM statement is least-privilege (no wildcard
action, and a `*` resource only for the few actions that have no resource-level permissions), and the
pieces of the async flow are wired to each other."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
# Actions AWS only grants on "*" (no resource-level permissions); each needs a reason in the template.
STAR_RESOURCE_ACTIONS = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "sagemaker:ListEndpoints"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if "PolicyDocument" in properties:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for statement in document["Statement"]:
                yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    completed = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_iam_is_least_privilege(template: dict[str, Any]) -> None:
    found = list(statements(template))
    assert len(found) > 10
    for name, statement in found:
        if statement["Effect"] == "Deny":
            continue  # a Deny (the bucket's TLS-only rule) is meant to be as wide as possible
        actions = as_list(statement["Action"])
        assert all(isinstance(a, str) and "*" not in a for a in actions), f"{name}: wildcard action {actions}"
        if "*" in as_list(statement.get("Resource")):
            assert set(actions) <= STAR_RESOURCE_ACTIONS, f"{name}: {actions} on Resource '*'"


def test_async_flow_is_wired(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    types = {r["Type"] for r in resources.values()}
    assert {
        "AWS::S3::Bucket",
        "AWS::SNS::Topic",
        "AWS::Lambda::Function",
        "AWS::Events::Rule",
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::CloudWatch::Alarm",
    } <= types
    assert sum(r["Type"] == "AWS::SNS::Topic" for r in resources.values()) == 4  # + the alarm topic
    trigger = resources["S3TriggerFunction"]["Properties"]
    assert trigger["Handler"] == "events.s3_trigger.handler"
    assert {"POSEBATCH_ENDPOINT_NAME", "POSEBATCH_INPUT_PREFIX", "POSEBATCH_OUTPUT_URI"} <= set(
        trigger["Environment"]["Variables"]
    )
    assert resources["S3TriggerEventSource"]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    completion = resources["TransformCompletionFunction"]["Properties"]
    assert completion["Handler"] == "events.transform_completion.handler"
    assert "POSEBATCH_TRANSFORM_TOPIC_ARN" in completion["Environment"]["Variables"]
    pattern = resources["TransformStateRule"]["Properties"]["EventPattern"]
    assert pattern["detail"]["TransformJobStatus"] == ["Completed", "Failed", "Stopped"]
    async_config = resources["AsyncEndpointConfig"]["Properties"]["AsyncInferenceConfig"]
    assert set(async_config["OutputConfig"]["NotificationConfig"]) == {"SuccessTopic", "ErrorTopic"}
    assert "MaxConcurrentInvocationsPerInstance" in async_config["ClientConfig"]
    assert resources["ScalableTarget"]["Properties"]["MinCapacity"] == 0
    model_env = resources["PoseModel"]["Properties"]["PrimaryContainer"]["Environment"]
    assert "POSE_ALLOWED_BUCKETS" in model_env


def put_object_resources(template: dict[str, Any], role: str) -> set[str]:
    """The `Fn::Sub` strings of the role's s3:PutObject resources."""
    found: set[str] = set()
    for name, statement in statements(template):
        if name == role and "s3:PutObject" in as_list(statement["Action"]):
            found |= {resource["Fn::Sub"] for resource in as_list(statement["Resource"])}
    return found


def test_outputs_are_written_where_the_roles_allow(template: dict[str, Any]) -> None:
    output = template["Resources"]["AsyncEndpointConfig"]["Properties"]["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"]["Fn::Sub"].endswith("${OutputPrefix}_async/responses")
    assert output["S3FailurePath"]["Fn::Sub"].endswith("${OutputPrefix}_async/failures")
    # The container writes the mirrored outputs, SageMaker its own objects: nothing else.
    assert put_object_resources(template, "SageMakerExecutionRole") == {
        "${DataBucket.Arn}/${OutputPrefix}keypoints/*",
        "${DataBucket.Arn}/${OutputPrefix}annotated/*",
        "${DataBucket.Arn}/${OutputPrefix}_async/*",
        "${DataBucket.Arn}/${OutputPrefix}_transform/*",  # Batch Transform's `.out` files
    }
    # The trigger only writes the error record of a key it can never submit.
    assert put_object_resources(template, "S3TriggerRole") == {"${DataBucket.Arn}/${OutputPrefix}keypoints/*"}


def test_failed_async_inferences_reach_the_error_handler(template: dict[str, Any]) -> None:
    """Error topic -> AsyncErrorFunction (bounded retries, then the record), with its own DLQ, alarm,
    concurrency limit and a role that writes only records and retry counts."""
    resources = template["Resources"]
    function = resources["AsyncErrorFunction"]["Properties"]
    assert function["Handler"] == "events.async_error.handler"
    assert function["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": ["AsyncErrorDeadLetterQueue", "Arn"]}
    assert "ReservedConcurrentExecutions" in function
    assert {
        "POSEBATCH_ENDPOINT_NAME",
        "POSEBATCH_INPUT_PREFIX",
        "POSEBATCH_OUTPUT_URI",
        "POSEBATCH_RETRY_ATTEMPTS",
        "POSEBATCH_RETRY_BACKOFF_S",
    } <= set(function["Environment"]["Variables"])
    subscription = resources["AsyncErrorSubscription"]["Properties"]
    assert (subscription["TopicArn"], subscription["Protocol"]) == ({"Ref": "AsyncErrorTopic"}, "lambda")
    permission = resources["AsyncErrorInvokePermission"]["Properties"]
    assert (permission["Principal"], permission["SourceArn"]) == ("sns.amazonaws.com", {"Ref": "AsyncErrorTopic"})
    alarmed = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert "AsyncErrorDeadLetterQueue" in alarmed
    assert put_object_resources(template, "AsyncErrorRole") == {
        "${DataBucket.Arn}/${OutputPrefix}_async/attempts/*",
        "${DataBucket.Arn}/${OutputPrefix}keypoints/*",
    }
    # The trigger writes the record on the queue's last delivery: the two numbers must agree.
    trigger = resources["S3TriggerFunction"]["Properties"]["Environment"]["Variables"]
    redrive = resources["InputEventsQueue"]["Properties"]["RedrivePolicy"]
    assert int(trigger["POSEBATCH_MAX_RECEIVE_COUNT"]) == redrive["maxReceiveCount"]
    assert {"InputEventsQueueUrl", "InputEventsDeadLetterQueueUrl"} <= set(template["Outputs"])


def test_approvals_of_the_stack_group_deploy(template: dict[str, Any]) -> None:
    """Model package group -> rule (approved, this group) -> ModelApprovalFunction, which may update only the
    endpoints tagged to follow the group (the stack's async endpoint is), pass only the stack's SageMaker role,
    and write only the group's default-model parameter."""
    resources = template["Resources"]
    assert resources["ModelPackageGroup"]["Properties"]["ModelPackageGroupName"] == {"Ref": "AWS::StackName"}
    pattern = resources["ModelApprovalRule"]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["SageMaker Model Package State Change"]
    assert pattern["detail"] == {
        "ModelPackageGroupName": [{"Ref": "AWS::StackName"}],
        "ModelApprovalStatus": ["Approved"],
    }
    (target,) = resources["ModelApprovalRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ModelApprovalFunction", "Arn"]}
    function = resources["ModelApprovalFunction"]["Properties"]
    assert function["Handler"] == "events.model_approval.handler"
    assert function["Environment"]["Variables"]["POSEBATCH_MODEL_PACKAGE_GROUP"] == {"Ref": "AWS::StackName"}
    assert function["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": ["ModelApprovalDeadLetterQueue", "Arn"]}
    tags = resources["AsyncEndpoint"]["Properties"]["Tags"]
    assert {"Key": "posebatch:follows-model-package-group", "Value": {"Ref": "AWS::StackName"}} in tags
    role = [s for name, s in statements(template) if name == "ModelApprovalRole"]
    (update,) = [s for s in role if s["Action"] == "sagemaker:UpdateEndpoint" and "Condition" in s]
    assert update["Condition"] == {
        "StringEquals": {"aws:ResourceTag/posebatch:follows-model-package-group": {"Ref": "AWS::StackName"}}
    }
    (passing,) = [s for s in role if s["Action"] == "iam:PassRole"]
    assert passing["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (parameter,) = [s for s in role if "ssm:PutParameter" in as_list(s["Action"])]
    assert parameter["Resource"]["Fn::Sub"].endswith(
        ":parameter/posebatch/model-registry/${AWS::StackName}/default-model"
    )
    assert {"ModelPackageGroupName", "DefaultModelParameter"} <= set(template["Outputs"])
