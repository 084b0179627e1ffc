"""The completion handler's event parsing and message (the full path runs in tests/transform)."""

from __future__ import annotations

import json

import pytest

from batch.transform.completion import escape, format_notification
from events.transform_completion import handler

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
