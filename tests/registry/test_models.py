"""The registry on the local stack: packages as the training pipeline registers them (stored by moto behind the
stand-in), `pose-batch models list/approve/reject` and their mistakes, and the state-change event the
stand-in emits. A group of its own, which no endpoint follows: nothing here starts a container."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batch.polling import poll
from batch.registry.approval import DETAIL_TYPE
from tests.registry.conftest import RegistryStack

GROUP = "cli-models"


@pytest.fixture(scope="module")
def events(registry_stack: RegistryStack) -> Any:
    """Every model package event of GROUP, caught by an EventBridge rule into an SQS queue."""
    sqs, rules = registry_stack.client("sqs"), registry_stack.client("events")
    url = sqs.create_queue(QueueName="cli-models-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["aws.sagemaker"], "detail-type": [DETAIL_TYPE], "detail": {"ModelPackageGroupName": [GROUP]}}
    rules.put_rule(Name="cli-models-events", EventPattern=json.dumps(pattern))
    rules.put_targets(Rule="cli-models-events", Targets=[{"Id": "q", "Arn": arn}])

    def received(count: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []

        def enough() -> list[dict[str, Any]] | None:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                got.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return got if len(got) >= count else None

        return poll(enough, timeout_s=30, interval_s=0.2, on_timeout=lambda: f"{len(got)} of {count} events")

    return received


def test_register_list_approve_reject(registry_stack: RegistryStack, events: Any) -> None:
    first = registry_stack.register("run-1.pt", group=GROUP, ap=0.441)
    second = registry_stack.register("run-2.pt", group=GROUP, ap=0.452)
    described = registry_stack.client("sagemaker").describe_model_package(ModelPackageName=second.arn)
    specification = described["InferenceSpecification"]
    assert specification["Containers"][0]["ModelDataUrl"].endswith("/run-2/model.tar.gz")
    assert "image/jpeg" in specification["SupportedContentTypes"]
    assert "application/json" in specification["SupportedResponseMIMETypes"]
    assert specification["SupportedRealtimeInferenceInstanceTypes"] and specification["SupportedTransformInstanceTypes"]
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("/run-2/evaluation.json")
    assert described["CustomerMetadataProperties"] == {
        "dataset": "s3://posebatch-registry-test/datasets/coco-val-mini/",
        "base_model": "yolo11n-pose.pt",
        "ap": "0.4520",
    }
    assert (first.status, second.status, second.version) == ("PendingManualApproval", "PendingManualApproval", 2)
    created = events(2)
    assert {e["detail"]["ModelApprovalStatus"] for e in created} == {"PendingManualApproval"}

    listed = registry_stack.cli("models", "list", "--group", GROUP, "--local", "--json").json()
    assert [(p["version"], p["status"], p["ap"]) for p in listed["packages"]] == [
        (1, "PendingManualApproval", 0.441),
        (2, "PendingManualApproval", 0.452),
    ]
    assert listed["default_model"] is None
    table = registry_stack.cli("models", "list", "--group", GROUP, "--local")
    assert table.code == 0 and second.arn in table.out and "0.452" in table.out

    approved = registry_stack.cli("models", "approve", "latest", "--group", GROUP, "--local", "--description", "ok")
    assert approved.code == 0, approved.err
    assert approved.json() == {"model_package": second.arn, "name": f"{GROUP}/2", "status": "Approved"}
    rejected = registry_stack.cli("models", "reject", first.arn, "--local")
    assert rejected.code == 0 and rejected.json()["status"] == "Rejected"

    (approval, rejection) = sorted(events(2), key=lambda e: e["detail"]["ModelPackageVersion"], reverse=True)
    assert approval["source"] == "aws.sagemaker" and approval["detail-type"] == DETAIL_TYPE
    assert approval["detail"]["ModelPackageArn"] == second.arn and approval["resources"] == [second.arn]
    assert (approval["detail"]["ModelApprovalStatus"], rejection["detail"]["ModelApprovalStatus"]) == (
        "Approved",
        "Rejected",
    )
    after = registry_stack.cli("models", "list", "--group", GROUP, "--local", "--json").json()["packages"]
    assert [p["status"] for p in after] == ["Rejected", "Approved"]
    # An approval keeps what the package carries (moto alone would drop it), and says why.
    assert after[1]["ap"] == 0.452 and after[1]["dataset"] and after[1]["approval_description"] == "ok"
    # No endpoint follows this group and its approvals make no default model: only the stack's group deploys.
    assert registry_stack.cli("models", "list", "--group", GROUP, "--local", "--json").json()["default_model"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["approve", "arn:aws:sagemaker:us-east-1:123456789012:model-package/cli-models/99"], "no model package"),
        (["approve", "my-model"], "is not a model package ARN or `latest`"),
        (["reject", "latest"], "reject names the package by its ARN"),
        (["approve", "latest", "--group", "no-such-group"], "no model package group 'no-such-group'"),
        (["list", "--group", "no-such-group"], "no model package group 'no-such-group'"),
    ],
    ids=["unknown-arn", "not-an-arn", "reject-latest", "empty-group", "list-unknown-group"],
)
def test_mistakes_exit_2_with_one_message(registry_stack: RegistryStack, arguments: list[str], message: str) -> None:
    ran = registry_stack.cli("models", *arguments, "--local")
    assert ran.code == 2 and message in ran.err and "Traceback" not in ran.err
    assert ran.out == ""
