"""The async error handler (`batch.async_inference.retry`) and the trigger's failure paths, on recorded
notification shapes, against the real moto server and the local SageMaker stand-in (no container:
re-invocations of an endpoint that does not exist fail as on AWS; the end-to-end retries with the real
container are in tests/async_/test_async_faults.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batch.async_inference.failure_notifications import failed_inferences
from batch.async_inference.layout import inference_id
from batch.async_inference.retry import AsyncErrorHandler, classify
from batch.async_inference.trigger import build_handler
from batch.orchestration_settings import RetryPolicy, TriggerConfig

BUCKET = "posebatch-errors"
CONFIG = TriggerConfig(endpoint_name="gone", input_prefix="in/", output_uri=f"s3://{BUCKET}/out/", max_receive_count=3)


def notification(key: str, reason: str, *, status: str = "Failed", s3: Any = None) -> dict[str, Any]:
    """SageMaker's async error notification (the shape the stand-in publishes, as documented). With `s3`,
    the input is uploaded first and the id is the one the trigger gives it (the handler checks it)."""
    version = "etag"
    if s3 is not None:
        version = s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())["ETag"]
    return {
        "awsRegion": "us-east-1",
        "invocationStatus": status,
        "failureReason": reason,
        "inferenceId": inference_id(BUCKET, key, version),
        "requestParameters": {"endpointName": "gone", "inputLocation": f"s3://{BUCKET}/{key}"},
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }


def sns_event(message: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(message)}}]}


def sqs_event(*bodies: str, receives: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receives)},
                "eventSource": "aws:sqs",
            }
            for i, body in enumerate(bodies)
        ]
    }


@pytest.mark.parametrize(
    ("reason", "code", "retryable"),
    [
        ('ClientError: Received client error (400) from primary with message "bad"', "inference_rejected", False),
        ("ClientError: Unable to read the input location s3://b/k", "input_unreadable", False),
        ("Inference timed out after 1s (InvocationTimeoutSeconds)", "invocation_timeout", True),
        ("Request expired: it waited longer than RequestTTLSeconds", "request_expired", True),
        ("ServerError: the model container did not answer: reset", "container_failed", True),
        ("ClientError: Received server error (500) from primary", "container_failed", True),
        ("something new", "inference_failed", True),
    ],
)
def test_failure_reasons_are_classified(reason: str, code: str, retryable: bool) -> None:
    assert classify(reason) == (code, retryable)


def test_notification_shapes() -> None:
    message = notification("in/a.jpg", "timed out")
    envelope = json.dumps({"Type": "Notification", "Message": json.dumps(message)})
    succeeded = json.dumps(notification("in/b.jpg", "", status="Completed"))
    for event, is_sqs in [
        (sns_event(message), False),
        (sqs_event(json.dumps(message)), True),
        (sqs_event(envelope, succeeded, "not json"), True),
    ]:
        found, sqs = failed_inferences(event)
        assert sqs is is_sqs and [f.input_location for f in found] == [f"s3://{BUCKET}/in/a.jpg"]


@dataclass
class LambdaContext:
    """Lambda's context object: only the remaining time matters here."""

    left_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.left_ms


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from batch.local.stack import EmbeddedStack

    with EmbeddedStack(Path(tmp_path_factory.mktemp("errors")), bucket=BUCKET) as running:
        yield running


def record(stack: Any, key: str) -> dict[str, Any]:
    body = stack.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return dict(json.loads(body)["error"])


def test_retries_are_bounded_and_backed_off_then_the_record_is_written(stack: Any) -> None:
    delays: list[float] = []
    handler = AsyncErrorHandler(
        CONFIG,
        RetryPolicy(attempts=2, backoff_s=1.0),
        stack.client("sagemaker-runtime"),
        stack.client("s3"),
        sleep=delays.append,
    )
    s3 = stack.client("s3")
    failure = notification("in/t/a.jpg", "Inference timed out after 1s (InvocationTimeoutSeconds)", s3=s3)
    marker = f"out/_async/attempts/{failure['inferenceId']}.json"
    for retry in (1, 2):
        assert handler(sns_event(failure)) == {"retried": 1, "final": 0}
        assert json.loads(s3.get_object(Bucket=BUCKET, Key=marker)["Body"].read())["retries"] == retry
        # The endpoint is gone: the re-invocation itself fails, and the image has a record meanwhile.
        assert record(stack, "out/keypoints/t/a.jpg.json")["code"] == "resubmit_failed"
    assert delays == pytest.approx([1.0, 2.0], abs=0.2)
    assert handler(sns_event(failure)) == {"retried": 0, "final": 1}
    final = record(stack, "out/keypoints/t/a.jpg.json")
    assert final["code"] == "invocation_timeout" and "3 time(s) (2 retries)" in final["message"]
    assert "pose-batch submit s3://posebatch-errors/in/t/a.jpg" in final["message"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=marker)["KeyCount"] == 0  # a fresh budget next time


def test_final_failures_keep_the_containers_record_or_get_one(stack: Any) -> None:
    s3 = stack.client("s3")
    handler = AsyncErrorHandler(CONFIG, RetryPolicy(), stack.client("sagemaker-runtime"), s3)
    s3.put_object(Bucket=BUCKET, Key="out/keypoints/c/own.jpg.json", Body=b'{"error": {"code": "invalid_image"}}')
    rejected = "ClientError: Received client error (400) from primary"
    event = sqs_event(
        json.dumps(notification("in/c/own.jpg", rejected, s3=s3)),
        json.dumps(notification("in/c/unread.jpg", "ClientError: Unable to read the input location", s3=s3)),
        json.dumps(notification("elsewhere/x.jpg", rejected, s3=s3)),
    )
    assert handler(event) == {"batchItemFailures": []}
    assert record(stack, "out/keypoints/c/own.jpg.json")["code"] == "invalid_image"
    assert record(stack, "out/keypoints/c/unread.jpg.json")["code"] == "input_unreadable"


def test_a_duplicate_that_succeeded_is_not_retried(stack: Any) -> None:
    s3 = stack.client("s3")
    failure = notification("in/d/ok.jpg", "ServerError: the model container did not answer", s3=s3)
    s3.put_object(Bucket=BUCKET, Key=f"out/_async/responses/{failure['inferenceId']}.out", Body=b"{}")
    handler = AsyncErrorHandler(CONFIG, RetryPolicy(), stack.client("sagemaker-runtime"), s3)
    assert handler(sns_event(failure)) == {"retried": 0, "final": 1}
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="out/keypoints/d/")["KeyCount"] == 0


def s3_message(key: str) -> str:
    created = {"bucket": {"name": BUCKET}, "object": {"key": key, "eTag": "etag"}}
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": created}]})


@pytest.mark.parametrize(("receives", "recorded"), [(2, False), (3, True)])
def test_trigger_writes_the_record_on_the_last_delivery_only(stack: Any, receives: int, recorded: bool) -> None:
    trigger = build_handler(CONFIG, stack.client("sagemaker-runtime"), s3=stack.client("s3"))
    key = f"in/dlq/r{receives}.jpg"
    assert trigger(sqs_event(s3_message(key), receives=receives)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    listed = stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"out/keypoints/dlq/r{receives}")
    assert listed["KeyCount"] == int(recorded)
    if recorded:
        error = record(stack, f"out/keypoints/dlq/r{receives}.jpg.json")
        assert error["code"] == "submission_failed" and "pose-batch dlq redrive" in error["message"]


def test_trigger_reports_what_it_has_no_time_for_without_trying(stack: Any) -> None:
    trigger = build_handler(CONFIG, stack.client("sagemaker-runtime"), s3=stack.client("s3"))
    event = sqs_event(s3_message("in/late/a.jpg"), s3_message("in/late/b.jpg"), receives=3)
    result = trigger(event, LambdaContext(left_ms=5_000))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    # Not attempted, so not a failed attempt: no record yet, the messages simply come back.
    assert stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="out/keypoints/late/")["KeyCount"] == 0


@pytest.mark.parametrize(("received_offset_s", "retried"), [(-60, 0), (60, 1)], ids=["late-finish", "older-result"])
def test_a_result_the_container_wrote_after_the_request_was_received_ends_it(
    stack: Any, received_offset_s: int, retried: int
) -> None:
    """A timed-out request whose container still wrote the result: done. A result older than the
    failed request (an earlier version's) does not count."""
    from datetime import datetime, timedelta, timezone

    s3 = stack.client("s3")
    key = f"in/late-{received_offset_s}/a.jpg"
    s3.put_object(Bucket=BUCKET, Key=f"out/keypoints/late-{received_offset_s}/a.jpg.json", Body=b'{"persons": []}')
    failure = notification(key, "Inference timed out after 1s (InvocationTimeoutSeconds)", s3=s3)
    received = datetime.now(timezone.utc) + timedelta(seconds=received_offset_s)
    failure["receivedTime"] = received.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    handler = AsyncErrorHandler(
        CONFIG, RetryPolicy(attempts=1, backoff_s=0), stack.client("sagemaker-runtime"), s3, sleep=lambda _: None
    )
    assert handler(sns_event(failure))["retried"] == retried


def test_notifications_it_cannot_match_to_a_request_are_ignored(stack: Any) -> None:
    """Anyone who could publish on the error topic once made the handler re-invoke the endpoint and, after
    the retries, overwrite a good record. A notification must name this endpoint and the input's current
    inference id (the trigger's, from its ETag); anything else changes nothing."""
    s3 = stack.client("s3")
    key, good = "in/forged/a.jpg", b'{"persons": []}'
    s3.put_object(Bucket=BUCKET, Key="out/keypoints/forged/a.jpg.json", Body=good)
    real = notification(key, "Inference timed out after 1s (InvocationTimeoutSeconds)", s3=s3)
    forged = [
        {**real, "inferenceId": "f" * 64},  # an id the trigger never gave it
        {**real, "inferenceId": notification(key, "")["inferenceId"]},  # the id of another version
        {**real, "requestParameters": {**real["requestParameters"], "endpointName": ""}},
        {**real, "requestParameters": {**real["requestParameters"], "endpointName": "someone-else"}},
        {**real, "requestParameters": {**real["requestParameters"], "inputLocation": f"s3://{BUCKET}/in/none.jpg"}},
        {**real, "requestParameters": {**real["requestParameters"], "inputLocation": "http://evil/in/a.jpg"}},
    ]
    delays: list[float] = []
    handler = AsyncErrorHandler(
        CONFIG, RetryPolicy(attempts=2, backoff_s=0), stack.client("sagemaker-runtime"), s3, sleep=delays.append
    )

    def attempts() -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/_async/attempts/").get("Contents", [])]

    before = attempts()
    for _ in range(4):  # more than the retries: the last would have written the error record
        assert handler(sqs_event(*map(json.dumps, forged))) == {"batchItemFailures": []}

    assert delays == []  # nothing was re-invoked
    assert s3.get_object(Bucket=BUCKET, Key="out/keypoints/forged/a.jpg.json")["Body"].read() == good
    assert attempts() == before  # no retry was counted either
    assert handler(sns_event(real)) == {"retried": 1, "final": 0}  # the real one is still handled


class RecordingRuntime:
    """The stand-in's sagemaker-runtime client, keeping each InvokeEndpointAsync request it is given."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint_async(self, **request: Any) -> Any:
        self.requests.append(request)
        return self.client.invoke_endpoint_async(**request)


def test_a_retry_sends_the_options_submit_sent(stack: Any) -> None:
    """`pose-batch submit --fps 2 --no-track` sends its options as custom attributes; the error notification
    does not echo them, so a retry after a container failure must find them, or it would pose the video
    with the endpoint's defaults. A later submit without options leaves none behind for its retries."""
    import asyncio

    from batch.async_client import AsyncPoseClient

    s3 = stack.client("s3")
    key = "in/options/clip.mp4"
    failure = notification(key, "Inference timed out after 1s (InvocationTimeoutSeconds)", s3=s3)

    def submit(options: str) -> None:
        runtime = RecordingRuntime(stack.client("sagemaker-runtime"))
        clients = {"sagemaker-runtime": runtime}
        client = AsyncPoseClient(
            "gone", output_uri=CONFIG.output_uri, clients=lambda n: clients.get(n) or stack.client(n), options=options
        )
        (outcome,) = asyncio.run(client.submit(f"s3://{BUCKET}/{key}", input_root=f"s3://{BUCKET}/in/"))
        assert outcome.status == "error"  # the endpoint is gone: the request itself is refused
        (sent,) = runtime.requests
        assert sent["InferenceId"] == failure["inferenceId"]
        assert ("fps=2.0;track=false" in sent["CustomAttributes"]) == bool(options)

    def retried() -> str:
        runtime = RecordingRuntime(stack.client("sagemaker-runtime"))
        handler = AsyncErrorHandler(CONFIG, RetryPolicy(attempts=9, backoff_s=0), runtime, s3, sleep=lambda _: None)
        assert handler(sns_event(failure)) == {"retried": 1, "final": 0}
        (request,) = runtime.requests
        return str(request["CustomAttributes"])

    submit("fps=2.0;track=false")
    attributes = retried()
    assert "fps=2.0;track=false" in attributes and "keypoints_output=s3" in attributes
    submit("")
    assert "fps=" not in retried() and "track=" not in retried()
