"""The completion handler's event parsing and message (the full path runs in tests/transform)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from batch.orchestration_settings import FINALIZE_RESERVE_S
from batch.transform.completion import (
    CONTINUE_PATTERN,
    EVENT_PATTERN,
    JOB_NAME_PREFIX,
    escape,
    format_notification,
)
from events.transform_completion import handler

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
SUMMARY = {
    "output": "s3://bkt/out/",
    "images": 3,
    "done": 2,
    "failed": 1,
    "failures": [{"key": "in/x.jpg", "error": {"code": "invalid_image", "message": "not an image"}}],
    "timings": {"transform_seconds": 4.0, "images_per_second": 0.75},
}


def test_events_it_does_not_handle_are_ignored() -> None:
    running = {"detail-type": "SageMaker Transform Job State Change", "detail": {"TransformJobStatus": "InProgress"}}
    assert handler(running, None, topic_arn="arn") == {"batchItemFailures": []}
    assert handler({"detail-type": "Something Else"}, None) == {"batchItemFailures": []}


def test_a_bad_sqs_record_is_reported_not_raised() -> None:
    event = {"Records": [{"messageId": "m1", "body": "not json"}]}
    assert handler(event, None, topic_arn="arn") == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def test_notification_is_human_readable() -> None:
    job = {"TransformJobName": "job-1", "TransformJobStatus": "Failed", "FailureReason": "ClientError: x"}
    subject, message = format_notification(job, SUMMARY)
    assert subject == "PoseBatch transform job-1: Failed"
    for text in (
        "3 in total, 2 done, 1 failed",
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
