"""The S3-trigger handler on recorded event shapes: direct S3, SQS, SNS (Lambda and SQS envelopes),
EventBridge, the S3 test event and malformed input. Where an AWS call happens, it goes to the real
moto server and the local SageMaker stand-in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote

import botocore.session
import pytest
from botocore.validate import validate_parameters

from batch.async_inference.layout import AsyncLayout, inference_id, output_root_of
from batch.async_inference.s3_notifications import ObjectCreated, object_events
from batch.async_inference.trigger import S3Trigger, build_handler
from batch.errors import KeyTooLong
from batch.orchestration_settings import TriggerConfig

BUCKET = "posebatch-test"
CONFIG = TriggerConfig(endpoint_name="pose-async", input_prefix="in/", output_uri=f"s3://{BUCKET}/out/")


# --- recorded shapes (AWS documentation and what moto delivers), as plain builders ------------
def s3_record(key: str, *, event_name: str = "ObjectCreated:Put", etag: str = "abc123") -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T12:00:00.000Z",
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
            "object": {"key": quote_plus(key), "size": 1024, "eTag": etag, "sequencer": "0062E99A88DC407460"},
        },
    }


def s3_event(*keys: str) -> dict[str, Any]:
    return {"Records": [s3_record(k) for k in keys]}


def s3_test_event() -> dict[str, Any]:
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-01T12:00:00.000Z",
        "Bucket": BUCKET,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }


def sns_envelope(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(message),
        "Timestamp": "2024-05-01T12:00:00.000Z",
    }


def sns_lambda_event(message: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": sns_envelope(message)}]}


def sqs_event(*bodies: Any) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def eventbridge_event(key: str, *, detail_type: str = "Object Created") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": quote_plus(key), "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def keys_of(event: Any) -> list[str]:
    return [created.key for _, created in object_events(event)]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (s3_event("in/a.jpg", "in/b/c.png"), ["in/a.jpg", "in/b/c.png"]),
        (sqs_event(s3_event("in/a.jpg"), s3_event("in/b.jpg")), ["in/a.jpg", "in/b.jpg"]),
        (sqs_event(sns_envelope(s3_event("in/a.jpg"))), ["in/a.jpg"]),
        (sns_lambda_event(s3_event("in/a.jpg")), ["in/a.jpg"]),
        (eventbridge_event("in/a b.jpg"), ["in/a b.jpg"]),
        (sqs_event(eventbridge_event("in/x.jpg")), ["in/x.jpg"]),
        (s3_test_event(), []),
        (sqs_event(s3_test_event()), []),
        (eventbridge_event("in/a.jpg", detail_type="Object Deleted"), []),
        ({"Records": [s3_record("in/a.jpg", event_name="ObjectRemoved:Delete")]}, []),
    ],
    ids=["s3", "sqs", "sqs-sns", "sns", "eventbridge", "sqs-eventbridge", "test", "sqs-test", "eb-deleted", "removed"],
)
def test_shapes(event: dict[str, Any], expected: list[str]) -> None:
    assert keys_of(event) == expected


@pytest.mark.parametrize("key", ["in/with space.jpg", "in/a+b.jpg", "in/ünï/日本 1+2.png", "in/semi;colon%41.jpeg"])
def test_keys_are_decoded(key: str) -> None:
    assert keys_of(sqs_event(s3_event(key))) == [key]


@pytest.mark.parametrize(
    "event",
    [None, "text", [], {}, {"Records": "x"}, {"Records": [1, {"s3": {}}]}, sqs_event("not json", "[1]")],
    ids=["none", "str", "list", "empty", "records-str", "bad-records", "sqs-garbage"],
)
def test_malformed_events_are_skipped(event: Any) -> None:
    assert object_events(event) == []
    assert S3Trigger(CONFIG, runtime=None)(event) in ({"submitted": 0, "rejected": 0}, {"batchItemFailures": []})


def request_for(key: str, etag: str = "abc123") -> dict[str, Any] | None:
    return S3Trigger(CONFIG, runtime=None).request_for(ObjectCreated(BUCKET, key, etag))


def attributes_of(request: dict[str, Any]) -> dict[str, str]:
    pairs = (pair.partition("=") for pair in request["CustomAttributes"].split(";"))
    return {name: unquote(value) for name, _, value in pairs}


def test_request_mirrors_the_key() -> None:
    request = request_for("in/shop/day 1/cam+2.JPG")
    assert request is not None
    assert request["EndpointName"] == "pose-async"
    assert request["InputLocation"] == f"s3://{BUCKET}/in/shop/day 1/cam+2.JPG"
    assert request["ContentType"] == "image/jpeg"
    assert request["Accept"] == "application/json"
    # SageMaker's own response keeps its default name: the container writes the mirrored outputs.
    assert "S3OutputPathExtension" not in request and "Filename" not in request
    assert request["CustomAttributes"].isascii() and len(request["CustomAttributes"]) <= 1024
    assert attributes_of(request) == {
        "keypoints_output": f"s3://{BUCKET}/out/keypoints/shop/day 1/cam+2.JPG.json",
        "annotated_output": f"s3://{BUCKET}/out/annotated/shop/day 1/cam+2.JPG",
        "source": f"s3://{BUCKET}/in/shop/day 1/cam+2.JPG",  # for the record's `source`
    }


@pytest.mark.parametrize(
    "key",
    ["in/a.webp", "in/x/two.dots.jpg", "in/ünï/日本 1+2.png", "in/semi;colon=%41.jpeg", "in/" + "d/" * 100 + "x.jpg"],
    ids=["root", "dots", "unicode", "separators", "deep"],
)
def test_requests_pass_the_service_model(key: str) -> None:
    """What botocore (and so AWS) accepts: `Filename`/`S3OutputPathExtension` would fail most keys."""
    request = request_for(key)
    assert request is not None
    shape = botocore.session.get_session().get_service_model("sagemaker-runtime").operation_model("InvokeEndpointAsync")
    assert shape.input_shape is not None
    validate_parameters(request, shape.input_shape)  # raises ParamValidationError
    assert attributes_of(request)["keypoints_output"] == f"s3://{BUCKET}/out/keypoints/{key[3:]}.json"


@pytest.mark.parametrize(
    "key",
    ["in/notes.txt", "in/noext", "in/folder/", "out/keypoints/a.jpg", "out/_async/responses/a.jpg", "elsewhere/a.jpg"],
)
def test_non_inputs_are_skipped(key: str) -> None:
    assert request_for(key) is None


def test_outputs_never_trigger_when_they_share_the_input_prefix() -> None:
    layout = AsyncLayout.create(f"s3://{BUCKET}/", f"s3://{BUCKET}/")
    assert layout.place(BUCKET, "keypoints/a.jpg") is None
    assert layout.place(BUCKET, "annotated/a.jpg") is None
    assert layout.place(BUCKET, "_async/responses/a.jpg") is None
    assert layout.place(BUCKET, "_async/failures/a.jpg") is None
    assert layout.place(BUCKET, "a.jpg") is not None
    assert layout.s3_output_path == f"s3://{BUCKET}/_async/responses"


@pytest.mark.parametrize(
    ("path", "root"),
    [
        (f"s3://{BUCKET}/out/_async/responses", f"s3://{BUCKET}/out/"),
        (f"s3://{BUCKET}/_async/responses/", f"s3://{BUCKET}/"),
        (f"s3://{BUCKET}/out/keypoints", None),
        ("out/_async/responses", None),
    ],
)
def test_output_root_from_the_endpoints_output_path(path: str, root: str | None) -> None:
    if root is None:
        with pytest.raises(ValueError, match="_async/responses"):
            output_root_of(path)
    else:
        assert output_root_of(path) == root


def test_inference_id_is_deterministic_per_object_version() -> None:
    first = request_for("in/a.jpg", etag="e1")
    again = request_for("in/a.jpg", etag='"e1"')
    changed = request_for("in/a.jpg", etag="e2")
    assert first and again and changed
    assert first["InferenceId"] == again["InferenceId"] == inference_id(BUCKET, "in/a.jpg", "e1")
    assert first["InferenceId"] != changed["InferenceId"]
    assert len(first["InferenceId"]) <= 64


def test_config_from_env() -> None:
    config = TriggerConfig.from_env(
        {"POSEBATCH_ENDPOINT_NAME": "e", "POSEBATCH_INPUT_PREFIX": "/uploads", "POSEBATCH_INVOCATION_TIMEOUT_S": "60"}
    )
    assert (config.endpoint_name, config.input_prefix, config.output_uri) == ("e", "uploads/", None)
    assert config.invocation_timeout_s == 60
    with pytest.raises(RuntimeError, match="POSEBATCH_ENDPOINT_NAME"):
        TriggerConfig.from_env({})


# --- with AWS calls: the real moto server and the local SageMaker stand-in --------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from batch.local.stack import EmbeddedStack

    with EmbeddedStack(Path(tmp_path_factory.mktemp("stack")), bucket=BUCKET) as running:
        yield running


def test_failed_invocations_are_reported_per_sqs_message(stack: Any) -> None:
    # No such endpoint: the stand-in answers ValidationError, as SageMaker does.
    handler = build_handler(
        TriggerConfig(endpoint_name="missing", input_prefix="in/", output_uri=f"s3://{BUCKET}/out/"),
        stack.client("sagemaker-runtime"),
    )
    event = sqs_event(s3_event("in/a.jpg"), s3_test_event(), s3_event("in/notes.txt"), s3_event("in/b.png"))
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m3"}]}


def test_failed_direct_invocation_raises_for_lambda_retry(stack: Any) -> None:
    handler = build_handler(
        TriggerConfig(endpoint_name="missing", input_prefix="in/", output_uri=f"s3://{BUCKET}/out/"),
        stack.client("sagemaker-runtime"),
    )
    with pytest.raises(RuntimeError, match="1 invocation"):
        handler(s3_event("in/a.jpg"), None)


def test_moto_delivers_the_shapes_the_handler_reads(stack: Any) -> None:
    """What moto's S3 -> SQS notification really sends, for keys that need decoding."""
    sqs, s3 = stack.client("sqs"), stack.client("s3")
    url = sqs.create_queue(QueueName="shape-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    key = "in/ü dir/a+b 1.jpg"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    bodies: list[str] = []
    for _ in range(5):  # moto delivers synchronously; a few receives collect both messages
        bodies += [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
        if len(bodies) >= 2:
            break
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    assert keys_of(sqs_event(*[json.loads(b) for b in bodies])) == [key]


def test_a_key_too_long_for_custom_attributes_is_rejected_once_with_an_error_record(stack: Any) -> None:
    """It can never succeed: no retry (no batchItemFailures), an error record at the mirrored key."""
    key = "in/" + "ü" * 300 + ".jpg"  # 600 bytes in S3; 1,800 characters once percent-encoded
    handler = build_handler(CONFIG, stack.client("sagemaker-runtime"), s3=stack.client("s3"))
    event = sqs_event(s3_event(key))

    assert handler(event, None) == {"batchItemFailures": []}
    assert handler(s3_event(key), None) == {"submitted": 0, "rejected": 1}
    body = stack.client("s3").get_object(Bucket=BUCKET, Key=f"out/keypoints/{key[3:]}.json")["Body"].read()
    error = json.loads(body)["error"]
    assert error["code"] == KeyTooLong.code and "CustomAttributes" in error["message"]


def test_an_image_whose_annotated_name_another_input_keeps_is_not_submitted(stack: Any) -> None:
    """`a.png` and `a.png.jpg` both map to `annotated/a.png.jpg`: the trigger sees one key at a time and
    asks S3 for the other. In either order, a.png.jpg keeps the name and a.png gets the error record."""
    s3 = stack.client("s3")
    for key in ("in/n/a.png", "in/n/a.png.jpg", "in/n/b.png", "in/n/b.png.jpg"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    handler = build_handler(
        TriggerConfig(endpoint_name="missing", input_prefix="in/", output_uri=f"s3://{BUCKET}/out/"),
        stack.client("sagemaker-runtime"),  # no such endpoint: an invocation fails, so none may happen
        s3=s3,
    )

    def record(rel: str) -> dict[str, str]:
        body = s3.get_object(Bucket=BUCKET, Key=f"out/keypoints/{rel}.json")["Body"].read()
        return dict(json.loads(body)["error"])

    # The partner's event after the owner is there: refused, never invoked, its record says why.
    assert handler(s3_event("in/n/a.png"), None) == {"submitted": 0, "rejected": 1}
    taken = record("n/a.png")
    assert taken["code"] == "annotated_name_taken" and "annotated/n/a.png.jpg" in taken["message"]
    # The owner's event after its partner was posed: the owner is invoked (and fails here, no endpoint),
    # and the partner's record becomes the error record, its annotated image about to be replaced.
    s3.put_object(Bucket=BUCKET, Key="out/keypoints/n/b.png.json", Body=b'{"persons": []}')
    with pytest.raises(RuntimeError, match="1 invocation"):
        handler(s3_event("in/n/b.png.jpg"), None)
    assert record("n/b.png")["code"] == "annotated_name_taken"
    # A plain JPEG or PNG without a partner is submitted as before (and fails here, no endpoint).
    for lone in ("in/n/c.jpg", "in/n/c.png"):
        with pytest.raises(RuntimeError, match="1 invocation"):
            handler(s3_event(lone), None)


def test_submit_refuses_the_same_inputs(stack: Any) -> None:
    """`pose-batch submit` (batch.async_client): a prefix's listing holds both inputs of a pair; one object
    submitted alone is checked against S3 as the trigger does."""
    from batch.async_client import AsyncPoseClient, Outcome, run_sync

    s3 = stack.client("s3")
    for key in ("in/s/a.png", "in/s/a.png.jpg", "in/t/b.png", "in/t/b.png.jpg"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    client = AsyncPoseClient("missing", output_uri=f"s3://{BUCKET}/out/", clients=stack.client)

    listed = run_sync(client.submit(f"s3://{BUCKET}/in/s/", input_root=f"s3://{BUCKET}/in/"))
    alone = run_sync(client.submit(f"s3://{BUCKET}/in/t/b.png", input_root=f"s3://{BUCKET}/in/"))

    codes = {o.input_uri: o.error.code for o in listed + alone if isinstance(o, Outcome) and o.error}
    assert codes == {
        f"s3://{BUCKET}/in/s/a.png": "annotated_name_taken",
        f"s3://{BUCKET}/in/s/a.png.jpg": "submit_failed",  # kept its name; no endpoint here
        f"s3://{BUCKET}/in/t/b.png": "annotated_name_taken",
    }
    for rel in ("s/a.png", "t/b.png"):
        body = s3.get_object(Bucket=BUCKET, Key=f"out/keypoints/{rel}.json")["Body"].read()
        assert json.loads(body)["error"]["code"] == "annotated_name_taken"
