"""`pose-batch stack deploy|delete` against moto's CloudFormation: create, "up to date", update, delete,
through the CLI as a user runs it. moto creates every resource type of the template except the ones
listed in MOTO_SKIPS (docs/aws-deploy.md says the same)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from batch.cli import build_parser, main
from batch.stack.artifacts import ensure_bucket
from batch.stack.deploy import TEMPLATE

STACK = "pbtest"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/posebatch:v1"
# Types moto 5.2's CloudFormation skips with a warning ("No Moto CloudFormation support").
MOTO_SKIPS = {
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::TopicPolicy",  # who may publish to the topics (issue 26)
    "AWS::SNS::Subscription",  # the async error Lambda's subscription to the error topic
    "AWS::SageMaker::ModelPackageGroup",  # the model registry's group
}


def deploy_args(model: Path, artifacts: str, *extra: str) -> list[str]:
    # moto refuses ml.g5 instance types (an older list): the instance type is a parameter.
    return [
        "stack", "deploy", "--stack", STACK, "--model", str(model), "--image", IMAGE,
        "--instance-type", "ml.m5.xlarge", "--artifacts-bucket", artifacts, *extra,
    ]  # fmt: skip


def resources(aws: Any) -> dict[str, dict[str, Any]]:
    pages = aws("cloudformation").get_paginator("list_stack_resources").paginate(StackName=STACK)
    # moto also lists a blank summary (no id, no type) for the resources it skipped.
    return {
        r["LogicalResourceId"]: r for page in pages for r in page["StackResourceSummaries"] if r.get("ResourceType")
    }


def test_artifacts_bucket_is_private_encrypted_and_tls_only(aws: Any) -> None:
    s3 = aws("s3")
    assert ensure_bucket(s3, "arts-new", "us-east-1") is True
    assert ensure_bucket(s3, "arts-new", "us-east-1") is False
    policy = json.loads(s3.get_bucket_policy(Bucket="arts-new")["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert s3.get_public_access_block(Bucket="arts-new")["PublicAccessBlockConfiguration"]["BlockPublicPolicy"]


# moto warns once per skipped type; the test asserts that list itself.
@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")
def test_deploy_update_delete(aws: Any, model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # moto evaluates the TLS-only policy's Deny without its Condition (it would refuse every upload
    # over its plain-HTTP endpoint): the artifacts bucket is pre-created without it here.
    aws("s3").create_bucket(Bucket="arts")

    assert main(deploy_args(model_path, "arts", "--notify-email", "ops@example.com")) == 0
    out = capsys.readouterr().out
    assert f"stack {STACK}: created" in out
    assert "change: Add      DataBucket (AWS::S3::Bucket)" in out
    assert "CREATE_COMPLETE" in out
    found = resources(aws)
    template_types = {r["Type"] for r in cfn_yaml.load(str(TEMPLATE))["Resources"].values()}
    created_types = {r["ResourceType"] for r in found.values()}
    assert created_types == template_types - MOTO_SKIPS
    # The template is over CloudFormation's inline limit (51,200 bytes): it went by TemplateURL.
    arts = [o["Key"] for o in aws("s3").list_objects_v2(Bucket="arts")["Contents"]]
    assert TEMPLATE.stat().st_size > 51_200 and any(k.startswith("posebatch/template-") for k in arts)
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in aws("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    }
    bucket = outputs["DataBucketName"]
    for line in (f"s3://{bucket}/input/", f"s3://{bucket}/batch-input/", outputs["TransformCompletionTopicArn"],
                 f"export POSEBATCH_ROLE_ARN={outputs['SageMakerExecutionRoleArn']}", "pbtest-async"):  # fmt: skip
        assert line in out
    # The printed next step is a valid `pose-batch transform` command line for this stack.
    (command,) = [line.strip() for line in out.splitlines() if line.strip().startswith("pose-batch transform ")]
    parsed = build_parser().parse_args(shlex.split(command)[1:])
    assert (parsed.input, parsed.output) == (f"s3://{bucket}/batch-input/", f"s3://{bucket}/output/")
    assert parsed.role_arn == outputs["SageMakerExecutionRoleArn"] and parsed.image_uri == IMAGE
    # The resources really exist, configured from the parameters.
    aws("s3").head_bucket(Bucket=bucket)
    trigger = aws("lambda").get_function(FunctionName=f"{STACK}-s3-trigger")
    assert trigger["Configuration"]["Runtime"] == "python3.12"
    assert trigger["Configuration"]["Handler"] == "events.s3_trigger.handler"
    model_name = found["PoseModel"]["PhysicalResourceId"].rsplit("/", 1)[-1]
    model = aws("sagemaker").describe_model(ModelName=model_name)
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"].startswith("s3://arts/posebatch/model-yolo11n-pose-")
    subs = aws("sns").list_subscriptions_by_topic(TopicArn=outputs["TransformCompletionTopicArn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "ops@example.com")]

    # Same inputs: the change set has nothing to do; the e-mail is not subscribed twice.
    assert main(deploy_args(model_path, "arts", "--notify-email", "ops@example.com")) == 0
    assert f"stack {STACK}: up-to-date" in capsys.readouterr().out
    assert (
        len(aws("sns").list_subscriptions_by_topic(TopicArn=outputs["TransformCompletionTopicArn"])["Subscriptions"])
        == 1
    )

    # A changed parameter: an UPDATE change set.
    assert main(deploy_args(model_path, "arts", "--max-instances", "3", "--finalize-concurrency", "50")) == 0
    assert f"stack {STACK}: updated" in capsys.readouterr().out
    parameters = aws("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    assert {"ParameterKey": "MaxInstances", "ParameterValue": "3"} in parameters
    assert {"ParameterKey": "FinalizeConcurrency", "ParameterValue": "50"} in parameters

    # Delete: the stack goes, the data bucket stays (DeletionPolicy Retain), and the user is told.
    assert main(["stack", "delete", "--stack", STACK]) == 0
    out = capsys.readouterr().out
    assert f"deleted stack {STACK}" in out and f"kept: the data bucket s3://{bucket}" in out
    aws("s3").head_bucket(Bucket=bucket)
    assert (
        aws("cloudformation").list_stacks(StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])["StackSummaries"]
        == []
    )
    assert main(["stack", "delete", "--stack", STACK]) == 0
    assert f"no stack named {STACK}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing.pt"], "neither an s3:// URI nor a file"),
        (["--model", "s3://arts/m.tar.gz", "--stack", "PoseBatch"], "lower-case stack name"),
        (["--model", "s3://arts/m.tar.gz", "--finalize-concurrency", "5000"], "--finalize-concurrency must be 2-1000"),
    ],
)
def test_bad_input_gets_a_clear_error(
    aws: Any, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI contract (README, "Exit codes"): a mistake the user can fix is exit 2, one message on stderr.
    aws("s3").create_bucket(Bucket="arts")
    assert main(["stack", "deploy", "--artifacts-bucket", "arts", "--image", IMAGE, *args]) == 2
    out, err = capsys.readouterr()
    assert "error" not in out
    assert err.startswith("pose-batch stack: error: ") and err.count("\n") == 1
    assert message in err
    stacks = aws("cloudformation").list_stacks()["StackSummaries"]
    assert [s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"] == []


def test_a_failed_deployment_exits_1_with_its_reason_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not a user mistake: the deployment ran and failed (moto never fails a resource, so the flow is
    # replaced by one that fails as AWS does; tests/stack/test_stack_failures.py covers the flow itself).
    from batch.stack import deploy
    from batch.stack.cloudformation import StackError

    def failing(options: Any, say: Any) -> None:
        say(f"deploying stack {options.stack_name} ...")
        raise StackError(f"stack {options.stack_name} ended ROLLBACK_COMPLETE: S3TriggerFunction: quota")

    monkeypatch.setattr(deploy, "deploy", failing)
    assert main(["stack", "deploy", "--stack", STACK, "--model", "s3://arts/m.tar.gz", "--image", IMAGE]) == 1
    out, err = capsys.readouterr()
    assert out == f"deploying stack {STACK} ...\n"
    assert err == f"pose-batch stack: error: stack {STACK} ended ROLLBACK_COMPLETE: S3TriggerFunction: quota\n"
