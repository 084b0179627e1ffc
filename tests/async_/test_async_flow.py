"""Asynchronous inference end to end on the local stack, with the real container and weights on CPU:
an object dropped under the input prefix -> S3 notification -> SQS -> the S3-trigger handler ->
InvokeEndpointAsync on the stand-in -> the container -> outputs at the mirrored keys (written by the
container), SageMaker's response/failure objects under `_async/`, and SNS notifications."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batch.async_client import AsyncPoseClient
from batch.async_inference.layout import inference_id
from batch.errors import KeyTooLong
from batch.s3_listing import list_objects
from batch.schema import ErrorRecord, PoseResult

pytestmark = pytest.mark.slow

ASSETS = Path(str(__import__("ultralytics").__file__)).parent / "assets"
BUCKET = "posebatch-async-test"
IN, OUT = "async/input/", "async/output/"


class Notifications:
    """Every success/error notification, collected from an SQS queue subscribed to both topics."""

    def __init__(self, stack: Any, topics: list[str]) -> None:
        self._sqs = stack.client("sqs")
        self._url = self._sqs.create_queue(QueueName="test-notifications")["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns = stack.client("sns")
        for topic in topics:
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        self.by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def wait_for(self, ids: set[str], timeout_s: float = 180.0) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while not ids <= self.by_id.keys() and time.monotonic() < deadline:
            for message in self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                body = json.loads(message["Body"])
                self.by_id[body["inferenceId"]].append(body)
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        missing = ids - self.by_id.keys()
        assert not missing, f"{len(missing)} of {len(ids)} notifications missing after {timeout_s:.0f}s"
        return {i: self.by_id[i][-1] for i in ids}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Any]:
    from batch.local.sagemaker.async_deployment import deploy_local_endpoint
    from batch.local.stack import EmbeddedStack
    from batch.model_package import package_checkpoint

    home = tmp_path_factory.mktemp("async-stack")
    with EmbeddedStack(home, bucket=BUCKET) as started:
        running: Any = started  # carries the deployment and the notifications for the tests
        archive = package_checkpoint(model_path, home / "model.tar.gz")
        running.client("s3").upload_file(str(archive), BUCKET, "models/model.tar.gz")
        running.deployment = deploy_local_endpoint(
            running,
            model_data_url=f"s3://{BUCKET}/models/model.tar.gz",
            input_prefix=IN,
            output_prefix=OUT,
            startup_timeout_s=300,
        )
        running.notifications = Notifications(
            running, [running.deployment.success_topic_arn, running.deployment.error_topic_arn]
        )
        yield running


def put(stack: Any, key: str, body: bytes) -> str:
    """Upload; returns the inference id the trigger derives from the object's ETag."""
    etag = stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"]
    return inference_id(BUCKET, key, etag)


def read(stack: Any, key: str) -> bytes:
    return bytes(stack.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def keys_under(stack: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in list_objects(stack.client("s3"), BUCKET, prefix)]


def small_jpeg(name: str = "bus.jpg", width: int = 160) -> bytes:
    image = Image.open(ASSETS / name).convert("RGB")
    image.thumbnail((width, width * 2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "relative",
    ["good/bus.jpg", "good/sub dir/zidane.jpg", "odd/with space+plus ü日本.jpg"],
    ids=["plain", "space", "odd"],
)
def test_dropped_image_gets_keypoints_annotated_and_success(stack: Any, relative: str) -> None:
    name = "zidane.jpg" if "zidane" in relative else "bus.jpg"
    request_id = put(stack, IN + relative, (ASSETS / name).read_bytes())
    message = stack.notifications.wait_for({request_id})[request_id]

    assert message["invocationStatus"] == "Completed"
    assert message["eventName"] == "InferenceResult" and message["eventSource"] == "aws:sagemaker"
    assert message["requestParameters"]["inputLocation"] == f"s3://{BUCKET}/{IN}{relative}"
    # SageMaker's own response object keeps its default name; it holds the same record.
    response_key = f"{OUT}_async/responses/{request_id}.out"
    assert message["responseParameters"]["outputLocation"] == f"s3://{BUCKET}/{response_key}"
    result = PoseResult.model_validate_json(read(stack, f"{OUT}keypoints/{relative}.json"))
    assert result.persons and len(result.persons[0].keypoints) == 17
    assert result.source == f"s3://{BUCKET}/{IN}{relative}"  # the record names its image
    assert PoseResult.model_validate_json(read(stack, response_key)) == result
    assert read(stack, f"{OUT}annotated/{relative}")[:2] == b"\xff\xd8"  # a JPEG


def test_corrupt_file_gets_failure_object_and_error(stack: Any) -> None:
    request_id = put(stack, IN + "bad/corrupt.jpg", b"this is not an image")
    message = stack.notifications.wait_for({request_id})[request_id]

    assert message["invocationStatus"] == "Failed" and "400" in message["failureReason"]
    failure_key = f"{OUT}_async/failures/{request_id}-error.out"
    assert message["failureLocation"] == f"s3://{BUCKET}/{failure_key}"
    assert ErrorRecord.model_validate_json(read(stack, failure_key)).error.code == "invalid_image"
    # The mirrored key still ends with a record: the image's error, written by the container.
    error = ErrorRecord.model_validate_json(read(stack, f"{OUT}keypoints/bad/corrupt.jpg.json")).error
    assert error.code == "invalid_image"
    assert keys_under(stack, f"{OUT}annotated/bad/") == []


def test_duplicate_event_and_multipart_give_one_output(stack: Any) -> None:
    s3, sqs = stack.client("s3"), stack.client("sqs")
    body = small_jpeg()
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=IN + "dup/multipart.jpg")
    part = s3.upload_part(
        Bucket=BUCKET, Key=IN + "dup/multipart.jpg", UploadId=upload["UploadId"], PartNumber=1, Body=body
    )
    etag = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=IN + "dup/multipart.jpg",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )["ETag"]
    multipart_id = inference_id(BUCKET, IN + "dup/multipart.jpg", etag)
    # The same S3 event delivered twice to the trigger's queue.
    single_id = put(stack, IN + "dup/twice.jpg", body)
    queue_url = sqs.get_queue_url(QueueName=f"{stack.deployment.endpoint_name}-s3-events")["QueueUrl"]
    twice_etag = s3.head_object(Bucket=BUCKET, Key=IN + "dup/twice.jpg")["ETag"]
    record = {"bucket": {"name": BUCKET}, "object": {"key": "async/input/dup/twice.jpg", "eTag": twice_etag}}
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": record}]}
    for _ in range(2):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))

    stack.notifications.wait_for({multipart_id, single_id})
    responses = keys_under(stack, f"{OUT}_async/responses/")
    assert f"{OUT}_async/responses/{multipart_id}.out" in responses
    assert f"{OUT}_async/responses/{single_id}.out" in responses
    assert sorted(keys_under(stack, f"{OUT}keypoints/dup/")) == [
        f"{OUT}keypoints/dup/multipart.jpg.json",
        f"{OUT}keypoints/dup/twice.jpg.json",
    ]
    assert sorted(keys_under(stack, f"{OUT}annotated/dup/")) == [
        f"{OUT}annotated/dup/multipart.jpg",
        f"{OUT}annotated/dup/twice.jpg",
    ]


def test_fifty_images_at_once_give_fifty_results(stack: Any) -> None:
    body = small_jpeg("zidane.jpg", width=128)
    keys = [f"{IN}many/img-{i:02d}.jpg" for i in range(50)]
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda key: put(stack, key, body), keys))
    messages = stack.notifications.wait_for(ids, timeout_s=300)

    assert {m["invocationStatus"] for m in messages.values()} == {"Completed"}
    assert len(keys_under(stack, f"{OUT}keypoints/many/")) == 50
    assert len(keys_under(stack, f"{OUT}annotated/many/")) == 50
    # MaxConcurrentInvocationsPerInstance (4, one instance): the backlog never opened more calls at
    # once to the container, and 50 queued requests did fill the slots. The container counts them.
    from batch.local.sagemaker.async_endpoint_service import endpoints_of

    runner = endpoints_of(stack).runner(stack.deployment.endpoint_name)
    assert runner is not None and runner.max_concurrent_per_instance == 4
    [instance] = runner.instances
    status, metrics = instance.container.get_json("/metrics")
    assert status == 200 and instance.replacements == 0  # one container saw all 50 (its count is its own)
    assert 2 <= metrics["peak_invocations_in_flight"] <= 4


def test_async_client_submits_a_prefix_and_waits(stack: Any) -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=BUCKET, Key="client/a.jpg", Body=small_jpeg())
    s3.put_object(Bucket=BUCKET, Key="client/deep/b.png", Body=_png())
    s3.put_object(Bucket=BUCKET, Key="client/broken.jpg", Body=b"\xff\xd8 truncated")
    s3.put_object(Bucket=BUCKET, Key="client/readme.txt", Body=b"skipped")
    client = AsyncPoseClient(stack.deployment.endpoint_name, clients=stack.client)

    import asyncio

    outcomes = {o.input_uri: o for o in asyncio.run(client.run(f"s3://{BUCKET}/client/", wait=True, timeout_s=180))}

    assert sorted(outcomes) == [
        f"s3://{BUCKET}/client/{k}" for k in ("a.jpg", "broken.jpg", "deep/b.png", "readme.txt")
    ]
    assert outcomes[f"s3://{BUCKET}/client/readme.txt"].status == "skipped"  # non-images get a line
    ok = outcomes[f"s3://{BUCKET}/client/deep/b.png"]
    # Outside the trigger's input prefix the whole key is mirrored: another prefix's b.png cannot collide.
    assert ok.result is not None and ok.keypoints_uri == f"s3://{BUCKET}/{OUT}keypoints/client/deep/b.png.json"
    assert ok.result.source == ok.input_uri  # `submit`'s records name their image too
    assert ok.annotated_uri == f"s3://{BUCKET}/{OUT}annotated/client/deep/b.png.jpg"
    broken = outcomes[f"s3://{BUCKET}/client/broken.jpg"]
    assert broken.result is None and broken.error is not None and broken.error.code == "invalid_image"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(small_jpeg("zidane.jpg"))).save(buffer, "PNG")
    return buffer.getvalue()


def pose_batch(*args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    """The real console script, in another process, against this stack (its state file)."""
    command = [str(Path(sys.executable).parent / "pose-batch"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)


def test_cli_submit_local_waits_for_results_and_errors(stack: Any) -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=BUCKET, Key="cli/person.jpg", Body=small_jpeg())
    s3.put_object(Bucket=BUCKET, Key="cli/garbage.png", Body=b"not an image")
    s3.put_object(Bucket=BUCKET, Key="cli/" + "ü" * 300 + ".jpg", Body=small_jpeg())

    done = pose_batch(
        "submit", f"s3://{BUCKET}/cli/", "--local", "--home", str(stack.home), "--wait", "--timeout", "180"
    )

    assert done.returncode == 1, done.stderr  # one image failed, one can never be submitted
    lines = {line["input"].rpartition("/")[2]: line for line in map(json.loads, done.stdout.splitlines())}
    assert lines["person.jpg"]["status"] == "ok" and lines["person.jpg"]["persons"] >= 1
    assert lines["person.jpg"]["keypoints"] == f"s3://{BUCKET}/{OUT}keypoints/cli/person.jpg.json"  # folder kept
    assert lines["garbage.png"]["status"] == "error" and lines["garbage.png"]["error"]["code"] == "invalid_image"
    assert lines["ü" * 300 + ".jpg"]["error"]["code"] == KeyTooLong.code
    # The job report over the output root, announced on stderr (stdout holds only the JSON lines).
    assert f"report:   s3://{BUCKET}/{OUT}_REPORT.html" in done.stderr
    report = s3.get_object(Bucket=BUCKET, Key=f"{OUT}_REPORT.html")["Body"].read().decode()
    assert "PoseBatch job report" in report


def test_cli_deploy_local_keeps_the_running_endpoint(stack: Any) -> None:
    deployment = stack.deployment
    done = pose_batch(
        "deploy",
        "--local",
        "--home",
        str(stack.home),
        "--endpoint",
        deployment.endpoint_name,
        "--input",
        f"s3://{BUCKET}/{IN}",
        "--output",
        f"s3://{BUCKET}/{OUT}",
        "--model-data",
        f"s3://{BUCKET}/models/model.tar.gz",
        "--no-autoscaling",
        timeout_s=120,
    )

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[0])
    assert summary["status"] == "InService"
    assert summary["responses"] == f"s3://{BUCKET}/{OUT}_async/responses"
    assert summary["keypoints"] == f"s3://{BUCKET}/{OUT}keypoints/"


def test_cli_submit_without_wait_reports_queued_images_and_skipped_files(stack: Any) -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=BUCKET, Key="queued/site-a/x.jpg", Body=small_jpeg())
    s3.put_object(Bucket=BUCKET, Key="queued/notes.txt", Body=b"not an image")

    done = pose_batch("submit", f"s3://{BUCKET}/queued/", "--local", "--home", str(stack.home))

    assert done.returncode == 0, done.stderr
    lines = {line["input"].rpartition("/")[2]: line for line in map(json.loads, done.stdout.splitlines())}
    assert lines["x.jpg"]["status"] == "queued" and lines["x.jpg"]["error"] is None
    assert lines["x.jpg"]["inference_id"]
    assert lines["notes.txt"]["status"] == "skipped"


def test_ctrl_c_on_submit_wait_keeps_what_finished_and_says_what_runs_on(stack: Any, tmp_path: Path) -> None:
    import signal

    from batch.polling import poll

    s3 = stack.client("s3")
    for index in range(24):  # enough work that the wait is still going when Ctrl-C comes
        s3.put_object(Bucket=BUCKET, Key=f"interrupted/{index:02d}.jpg", Body=small_jpeg())
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    command = [str(Path(sys.executable).parent / "pose-batch"), "submit", f"s3://{BUCKET}/interrupted/", "--local",
               "--home", str(stack.home), "--wait"]  # fmt: skip
    with out.open("w") as stdout, err.open("w") as stderr:
        waiting = subprocess.Popen(command, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        poll(lambda: "waiting" in err.read_text() or None, timeout_s=120, interval_s=0.1,
             on_timeout=lambda: f"no progress bar: {err.read_text()}")  # fmt: skip
        waiting.send_signal(signal.SIGINT)
        code = waiting.wait(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    said = err.read_text()
    assert code == 130, said
    assert "stopped waiting" in said and "still being processed by endpoint" in said
    assert "Traceback" not in said
    lines = [json.loads(line) for line in out.read_text().splitlines()]  # every printed line is whole JSON
    assert all(line["status"] in ("ok", "error") for line in lines)


@pytest.mark.parametrize(
    ("reason", "final"),
    [
        ("ServerError: the model container did not answer: Connection refused", False),  # retried: wait on
        ("The invocation timed out", False),
        ("ClientError: Received client error (400) from primary", True),  # the container refused it: final
    ],
)
def test_a_failure_the_error_handler_retries_is_not_the_final_outcome(stack: Any, reason: str, final: bool) -> None:
    """`submit --wait` must not report a dead container's failure while the error handler retries the
    request under the same id: only the record at the mirrored key (or a non-retried failure) is final."""
    import asyncio

    from batch.async_client import Submission
    from batch.async_inference.layout import AsyncLayout

    s3 = stack.client("s3")
    placement = AsyncLayout.create(f"s3://{BUCKET}/", f"s3://{BUCKET}/{OUT}").place(BUCKET, "retried/p.jpg")
    assert placement is not None
    failure = f"s3://{BUCKET}/{OUT}_async/failures/retried.out"
    s3.put_object(Bucket=BUCKET, Key=failure.split("/", 3)[3], Body=reason.encode())
    submission = Submission(placement, "retried-id", f"s3://{BUCKET}/{OUT}_async/r.out", failure, time.time())
    client = AsyncPoseClient(stack.deployment.endpoint_name, clients=stack.client)
    message = {"inferenceId": "retried-id", "invocationStatus": "Failed", "failureReason": reason}
    outcome, is_final = asyncio.run(client._outcome(submission, message))
    assert outcome.error is not None and is_final is final
