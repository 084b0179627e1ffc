"""A failed deployment names its first failing resource and reason. moto's CloudFormation never fails
a resource (nor emits per-resource events), so this replays DescribeStackEvents as AWS returns them
for a real failure, through botocore's Stubber (which validates each call against the service model)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from batch.stack.cloudformation import StackError, deploy_stack, first_failure, format_event, wait_for_stack

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/posebatch/1"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def event(n: int, logical: str, status: str, reason: str = "", rtype: str = "AWS::Lambda::Function") -> dict[str, Any]:
    return {
        "StackId": STACK_ID,
        "EventId": f"e{n}",
        "StackName": "posebatch",
        "LogicalResourceId": logical,
        "ResourceType": rtype,
        "Timestamp": T0 + timedelta(seconds=n),
        "ResourceStatus": status,
        **({"ResourceStatusReason": reason} if reason else {}),
    }


# Newest first, as the API returns them: the root cause is the oldest failure.
RECORDED = [
    event(5, "posebatch", "ROLLBACK_COMPLETE", rtype="AWS::CloudFormation::Stack"),
    event(4, "AsyncEndpoint", "CREATE_FAILED", "Resource creation cancelled", "AWS::SageMaker::Endpoint"),
    event(
        3,
        "S3TriggerFunction",
        "CREATE_FAILED",
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
        "below its minimum value of [10].",
    ),
    event(2, "S3TriggerFunction", "CREATE_IN_PROGRESS"),
    event(1, "posebatch", "CREATE_IN_PROGRESS", "User Initiated", "AWS::CloudFormation::Stack"),
    event(0, "OldResource", "CREATE_FAILED", "an earlier deployment's failure"),
]


def test_first_failure_is_the_root_cause_of_this_operation() -> None:
    # e1 is the newest event before the change set ran: e0 belongs to an earlier deployment.
    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(cfn) as stub:
        stub.add_response("describe_stack_events", {"StackEvents": RECORDED}, {"StackName": "posebatch"})
        reason = first_failure(cfn, "posebatch", after="e1")
    assert reason.startswith("S3TriggerFunction (AWS::Lambda::Function): Specified ReservedConcurrentExecutions")


def test_a_stack_left_in_rollback_complete_is_explained_not_updated() -> None:
    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stack = {"StackName": "posebatch", "StackId": STACK_ID, "CreationTime": T0, "StackStatus": "ROLLBACK_COMPLETE"}
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "posebatch"})
        with pytest.raises(StackError, match="pose-batch stack delete"):
            deploy_stack(cfn, "posebatch", "Resources: {}", {}, on_event=print)


def test_progress_lines_name_status_resource_type_and_reason() -> None:
    line = format_event(RECORDED[2])
    assert "CREATE_FAILED" in line and "S3TriggerFunction (AWS::Lambda::Function)" in line and "[10]" in line


def test_waiting_shows_each_new_event_once_oldest_first() -> None:
    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stack = {"StackName": "posebatch", "StackId": STACK_ID, "CreationTime": T0}
    seen: list[str] = []
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "StackStatus": "CREATE_IN_PROGRESS"}]})
        stub.add_response("describe_stack_events", {"StackEvents": RECORDED[3:]})
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "StackStatus": "ROLLBACK_COMPLETE"}]})
        stub.add_response("describe_stack_events", {"StackEvents": RECORDED})
        final = wait_for_stack(
            cfn, "posebatch", "e1", on_event=lambda e: seen.append(e["EventId"]), poll_s=0, timeout_s=60
        )
    assert final == "ROLLBACK_COMPLETE"
    assert seen == ["e2", "e3", "e4", "e5"]
