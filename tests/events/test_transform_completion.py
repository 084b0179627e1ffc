"""The completion handler's event parsing and message (the full path runs in tests/transform)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from batch.local.moto_server import MotoServer
from batch.orchestration_settings import FINALIZE_RESERVE_S, CompletionConfig
from batch.transform.completion import (
    CONTINUE_DETAIL_TYPE,
    CONTINUE_PATTERN,
    CONTINUE_SOURCE,
    DETAIL_TYPE,
    EVENT_PATTERN,
    JOB_NAME_PREFIX,
    handle_event,
)
from batch.transform.notification import escape, format_notification
from batch.transform.plan import PLAN_ENV, JobPlan
from events.transform_completion import handler

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
SUMMARY = {
    "output": "s3://bkt/out/",
    "images": 3,
    "done": 2,
    "failed": 1,
    "persons": 5,
    "images_with_persons": 2,
    "failures": [{"key": "in/x.jpg", "error": {"code": "invalid_image", "message": "not an image"}}],
    "timings": {"transform_seconds": 4.0, "images_per_second": 0.75},
}


def test_events_it_does_not_handle_are_ignored() -> None:
    running = {"detail-type": "SageMaker Transform Job State Change", "detail": {"TransformJobStatus": "InProgress"}}
    assert handler(running, None) == {"batchItemFailures": []}
    assert handler({"detail-type": "Something Else"}, None) == {"batchItemFailures": []}


def test_a_bad_sqs_record_is_reported_not_raised() -> None:
    event = {"Records": [{"messageId": "m1", "body": "not json"}]}
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def test_notification_is_human_readable() -> None:
    job = {"TransformJobName": "job-1", "TransformJobStatus": "Failed", "FailureReason": "ClientError: x"}
    subject, message = format_notification(job, SUMMARY)
    assert subject == "PoseBatch transform job-1: Failed"
    for text in (
        "3 in total, 2 done, 1 failed",
        "Persons: 5 found, in 2 image(s).",
        "s3://bkt/out/_SUMMARY.json",
        "in/x.jpg: invalid_image",
        "Failure reason: ClientError: x",
        "0.75 images/s",
    ):
        assert text in message
    assert json.dumps(message)  # plain text, serialisable as an SNS message


@pytest.mark.parametrize(
    "key",
    [
        "in/evil.jpg\nImages: 0 in total, 0 done, 0 failed.",
        "in/evil.jpg\r\nFailure reason: none",
        "in/a\u2028b\u2029c\x85d.jpg",
        "in/tab\there.jpg",
    ],
)
def test_keys_cannot_forge_lines_in_the_notification(key: str) -> None:
    summary = {**SUMMARY, "failures": [{"key": key, "error": {"code": "invalid_image", "message": f"bad {key}"}}]}
    job = {"TransformJobName": "job-1", "TransformJobStatus": "Completed", "FailureReason": f"ClientError: {key}"}
    _, message = format_notification(job, summary)
    lines = message.split("\n")
    assert len(lines) == len(format_notification(job, SUMMARY)[1].split("\n"))
    assert sum(line.startswith("Images:") for line in lines) == 1
    assert all(len(line.splitlines()) == 1 for line in lines)  # no other line separator left inside a line
    assert escape(key) in message


def test_escaping_is_visible_and_unambiguous() -> None:
    assert escape("a\nb") == "a\\nb"
    assert escape("a\\nb") == "a\\\\nb"  # a literal backslash-n is not confused with a newline
    assert escape("ünï cødé/x.jpg") == "ünï cødé/x.jpg"
    assert escape("\u2028") == "\\u2028"


def test_the_template_routes_the_same_events_as_the_code() -> None:
    """The state rule filters on the launcher's job-name prefix; continuation events have their own rule
    to the same Lambda, which may put them and gets the time to use its budget."""
    resources = cfn_yaml.load(str(TEMPLATE))["Resources"]
    state = resources["TransformStateRule"]["Properties"]["EventPattern"]
    assert state["detail"]["TransformJobName"] == [{"prefix": {"Ref": "TransformJobPrefix"}}]
    assert cfn_yaml.load(str(TEMPLATE))["Parameters"]["TransformJobPrefix"]["Default"] == JOB_NAME_PREFIX
    assert EVENT_PATTERN["detail"]["TransformJobName"] == [{"prefix": JOB_NAME_PREFIX}]
    continued = resources["TransformFinalizeContinueRule"]["Properties"]
    assert continued["EventPattern"] == CONTINUE_PATTERN
    assert continued["Targets"][0]["Arn"] == {"Fn::GetAtt": ["TransformCompletionFunction", "Arn"]}
    function = resources["TransformCompletionFunction"]["Properties"]
    assert function["Timeout"] - FINALIZE_RESERVE_S > 0
    actions = [
        s["Action"]
        for policy in resources["TransformCompletionRole"]["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]
    assert "events:PutEvents" in actions


# --- who may make the handler act: forged events (issue 26, item 9) --------------------------------
@dataclass
class Account:
    """One moto server as the account: a bucket, the completion topic with a queue on it, and a record of
    which services the handler asked for (to see whether it described a job at all)."""

    moto: MotoServer
    topic_arn: str
    queue_url: str
    asked: list[str] = field(default_factory=list)

    @property
    def config(self) -> CompletionConfig:
        return CompletionConfig(topic_arn=self.topic_arn)

    def clients(self, service: str) -> Any:
        self.asked.append(service)
        return self.moto.client(service)

    def job(self, name: str, environment: dict[str, str] | None = None) -> None:
        self.moto.client("sagemaker").create_transform_job(
            TransformJobName=name,
            ModelName="m",
            Environment=environment or {},
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bkt/in/"}}},
            TransformOutput={"S3OutputPath": "s3://bkt/out/"},
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        )

    def notifications(self) -> list[dict[str, Any]]:
        sqs = self.moto.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    with MotoServer() as moto:
        moto.client("s3").create_bucket(Bucket="bkt")
        moto.client("sagemaker").create_model(
            ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
        )
        topic = moto.client("sns").create_topic(Name="done")["TopicArn"]
        sqs = moto.client("sqs")
        url = sqs.create_queue(QueueName="done")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        moto.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        yield Account(moto, topic, url)


def state_change(name: str) -> dict[str, Any]:
    return {"detail-type": DETAIL_TYPE, "detail": {"TransformJobName": name, "TransformJobStatus": "Completed"}}


def continuation(name: str) -> dict[str, Any]:
    detail = {"TransformJobName": name, "TransformJobStatus": "Completed", "next_page": 0}
    return {"source": CONTINUE_SOURCE, "detail-type": CONTINUE_DETAIL_TYPE, "detail": detail}


@pytest.mark.parametrize("forge", [continuation, state_change], ids=["continuation", "state-change"])
def test_an_event_for_another_teams_job_is_ignored_before_any_call(
    account: Account, forge: Callable[[str], dict[str, Any]]
) -> None:
    """Anyone in the account may put a `posebatch.transform` event on the default bus (the rule accepts
    the source): a job outside the prefix is never described, finalised or announced."""
    account.job(f"other-team-{forge.__name__}")
    account.asked.clear()
    event = forge(f"other-team-{forge.__name__}")
    assert handle_event(event, account.config, clients=account.clients) is None
    assert account.asked == [] and account.notifications() == []


@pytest.mark.parametrize("forge", [continuation, state_change], ids=["continuation", "state-change"])
def test_a_prefixed_job_without_a_plan_is_not_announced(
    account: Account, forge: Callable[[str], dict[str, Any]]
) -> None:
    """A job that carries the prefix but was not launched by PoseBatch (no plan in its environment)."""
    name = f"{JOB_NAME_PREFIX}foreign-{forge.__name__}"
    account.job(name)
    assert handle_event(forge(name), account.config, clients=account.clients) is None
    assert account.notifications() == []


def test_a_job_pointing_at_another_jobs_plan_is_not_announced(account: Account) -> None:
    plan = JobPlan(f"{JOB_NAME_PREFIX}owner", "images", "s3://bkt/in/", "s3://bkt/out/", keys=["a.jpg"])
    plan.save(account.moto.client("s3"))
    name = f"{JOB_NAME_PREFIX}borrower"
    account.job(name, {PLAN_ENV: str(plan.plan_uri)})
    assert handle_event(continuation(name), account.config, clients=account.clients) is None
    assert account.notifications() == []


def test_the_prefix_is_the_stacks_setting() -> None:
    """The handler reads the template's TransformJobPrefix from its environment."""
    resources = cfn_yaml.load(str(TEMPLATE))["Resources"]
    variables = resources["TransformCompletionFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["POSEBATCH_TRANSFORM_JOB_PREFIX"] == {"Ref": "TransformJobPrefix"}


def role_statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for p in resources[role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_the_roles_describe_only_the_stacks_jobs_and_list_only_its_output_prefix() -> None:
    resources = cfn_yaml.load(str(TEMPLATE))["Resources"]
    completion = role_statements(resources, "TransformCompletionRole")
    (describe,) = [s for s in completion if s["Action"] == "sagemaker:DescribeTransformJob"]
    assert describe["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
        "transform-job/${TransformJobPrefix}*"
    }
    for role in ("TransformCompletionRole", "TransformPagesRole"):
        (listing,) = [s for s in role_statements(resources, role) if s["Action"] == "s3:ListBucket"]
        assert listing["Condition"] == {"StringLike": {"s3:prefix": [{"Fn::Sub": "${OutputPrefix}*"}]}}
    assert not [s for s in role_statements(resources, "TransformPagesRole") if "sagemaker" in str(s["Action"])]


def test_the_template_fans_the_pages_out_as_the_local_stack_does() -> None:
    """Completion handler -> pages queue -> page function, at most FinalizeConcurrency at once (well
    within the account's default 1,000 concurrent executions); a task that keeps failing is dead-lettered
    beside the failed completion events."""
    template = cfn_yaml.load(str(TEMPLATE))
    resources = template["Resources"]
    completion = resources["TransformCompletionFunction"]["Properties"]["Environment"]["Variables"]
    assert completion["POSEBATCH_FINALIZE_QUEUE_URL"] == {"Ref": "TransformPagesQueue"}
    source = resources["TransformPagesEventSource"]["Properties"]
    assert source["EventSourceArn"] == {"Fn::GetAtt": ["TransformPagesQueue", "Arn"]}
    assert source["FunctionName"] == {"Ref": "TransformPagesFunction"}
    assert source["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "FinalizeConcurrency"}}
    concurrency = template["Parameters"]["FinalizeConcurrency"]
    assert concurrency["Default"] <= 100 and concurrency["MaxValue"] <= 1000
    pages = resources["TransformPagesFunction"]["Properties"]
    assert pages["Handler"] == "events.transform_finalize_pages.handler"
    queue = resources["TransformPagesQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * pages["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["CompletionDeadLetterQueue", "Arn"]}
    sends = [s for s in role_statements(resources, "TransformCompletionRole") if s["Action"] == "sqs:SendMessage"]
    assert {"Fn::GetAtt": ["TransformPagesQueue", "Arn"]} in [s["Resource"] for s in sends]
