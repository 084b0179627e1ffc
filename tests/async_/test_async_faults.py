"""Faults on the asynchronous path, on the local stack with the real container and weights (issue 14):
the container killed mid-burst, an invocation that times out, an endpoint scaled to zero, and the S3
trigger's dead-letter queue. Whatever fails, every dropped image ends with a result or an error record
at its mirrored keypoints key."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batch.async_inference.layout import inference_id
from batch.orchestration_settings import LOCAL_HOME, RetryPolicy
from batch.polling import poll
from batch.s3_listing import list_objects

pytestmark = pytest.mark.slow

ASSETS = Path(str(__import__("ultralytics").__file__)).parent / "assets"
BUCKET = "posebatch-faults"
IN, OUT = "async/input/", "async/output/"
SLOW_IN, SLOW_OUT = "slow/input/", "slow/output/"
RETRIES = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Any]:
    from batch.local.sagemaker.async_deployment import deploy_local_endpoint
    from batch.local.stack import EmbeddedStack
    from batch.model_package import package_checkpoint

    home = tmp_path_factory.mktemp("faults-stack")
    with EmbeddedStack(home, bucket=BUCKET) as started:
        running: Any = started
        archive = package_checkpoint(model_path, home / "model.tar.gz")
        running.client("s3").upload_file(str(archive), BUCKET, "models/model.tar.gz")
        retry = RetryPolicy(attempts=RETRIES, backoff_s=1.0)
        running.deployment = deploy_local_endpoint(
            running,
            model_data_url=f"s3://{BUCKET}/models/model.tar.gz",
            input_prefix=IN,
            output_prefix=OUT,
            retry=retry,
            startup_timeout_s=300,
        )
        # A second endpoint whose invocations time out after 1 s (its container is frozen in the test).
        running.slow = deploy_local_endpoint(
            running,
            model_data_url=f"s3://{BUCKET}/models/model.tar.gz",
            endpoint_name="posebatch-slow",
            input_prefix=SLOW_IN,
            output_prefix=SLOW_OUT,
            max_concurrent_invocations=1,
            invocation_timeout_s=1,
            retry=RetryPolicy(attempts=RETRIES, backoff_s=0.5),
            write_state_file=False,
            startup_timeout_s=300,
        )
        yield running


def small_jpeg(name: str = "zidane.jpg", width: int = 128) -> bytes:
    image = Image.open(ASSETS / name).convert("RGB")
    image.thumbnail((width, width * 2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def records_under(stack: Any, prefix: str) -> dict[str, dict[str, Any]]:
    s3 = stack.client("s3")
    return {
        o["Key"]: json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
        for o in list_objects(s3, BUCKET, prefix)
    }


def wait_for_records(stack: Any, prefix: str, count: int, timeout_s: float = 300) -> dict[str, dict[str, Any]]:
    s3 = stack.client("s3")
    poll(
        lambda: True if len(list(list_objects(s3, BUCKET, prefix))) >= count else None,
        timeout_s=timeout_s,
        interval_s=0.5,
        on_timeout=lambda: f"{len(list(list_objects(s3, BUCKET, prefix)))} of {count} records under {prefix}",
    )
    return records_under(stack, prefix)


def keys(stack: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in list_objects(stack.client("s3"), BUCKET, prefix)]


def runner(stack: Any, name: str) -> Any:
    from batch.local.sagemaker.async_endpoint_service import endpoints_of

    found = endpoints_of(stack).runner(name)
    assert found is not None
    return found


def test_killed_container_is_replaced_and_every_image_ends_with_a_record(stack: Any) -> None:
    s3, count = stack.client("s3"), 40
    body = small_jpeg()
    endpoint = runner(stack, stack.deployment.endpoint_name)
    instance = endpoint.instances[0]

    def put(index: int) -> str:
        return str(s3.put_object(Bucket=BUCKET, Key=f"{IN}burst/{index:03d}.jpg", Body=body)["ETag"])

    with ThreadPoolExecutor(8) as pool:
        etags = list(pool.map(put, range(count)))
    # inference id -> the record's key (the trigger's deterministic id of each upload)
    record_of = {
        inference_id(BUCKET, f"{IN}burst/{i:03d}.jpg", etag): f"{OUT}keypoints/burst/{i:03d}.jpg.json"
        for i, etag in enumerate(etags)
    }
    wait_for_records(stack, f"{OUT}keypoints/burst/", 8)
    killed_at = time.monotonic()
    instance.container.kill()  # SIGKILL mid-burst

    records = wait_for_records(stack, f"{OUT}keypoints/burst/", count)
    results = [r for r in records.values() if "persons" in r]
    errors = [r["error"] for r in records.values() if "error" in r]
    assert len(results) + len(errors) == count  # nothing missing
    assert len(results) >= count - 4  # at most the in-flight ones fail for good
    assert {e["code"] for e in errors} <= {"container_failed", "resubmit_failed"}
    assert instance.replacements == 1 and instance.replaced_at[-1] > killed_at

    # The requests in flight at the kill failed on the endpoint (failure objects) and were retried. A
    # retry's record is written by the container before the stand-in stores its response object: wait
    # for the response objects to settle rather than read them the moment the last record lands.
    def unanswered() -> set[str]:
        failed = {k.rpartition("/")[2].removesuffix("-error.out") for k in keys(stack, f"{OUT}_async/failures/")}
        answered = {k.rpartition("/")[2].removesuffix(".out") for k in keys(stack, f"{OUT}_async/responses/")}
        return failed - answered

    errored = {request for request, key in record_of.items() if "error" in records[key]}
    # Every error record is a request that failed on the endpoint and was never answered. An unanswered
    # request may also hold its result: the container wrote the record, then was killed before answering
    # (the error handler then leaves it be: "finished after its invocation failed").
    with contextlib.suppress(TimeoutError):
        poll(lambda: True if errored <= unanswered() else None, timeout_s=30, interval_s=0.5,
             on_timeout=lambda: "")  # fmt: skip
    assert errored <= unanswered()
    assert all("persons" in records[record_of[request]] for request in unanswered() - errored)
    print(
        f"burst {count}: {len(results)} results, {len(errors)} error records, recovered in "
        f"{instance.replaced_at[-1] - killed_at:.1f}s"
    )

    # A drop after the fault gets its result from the replacement.
    s3.put_object(Bucket=BUCKET, Key=f"{IN}after/person.jpg", Body=small_jpeg("bus.jpg", 160))
    after = wait_for_records(stack, f"{OUT}keypoints/after/", 1, timeout_s=120)
    assert "persons" in after[f"{OUT}keypoints/after/person.jpg.json"]


def test_an_invocation_that_times_out_gets_its_error_record_after_the_retries(stack: Any) -> None:
    s3, sqs, sns = stack.client("s3"), stack.client("sqs"), stack.client("sns")
    url = sqs.create_queue(QueueName="slow-errors")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.slow.error_topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    container = runner(stack, stack.slow.endpoint_name).instances[0].container
    # SIGSTOP: the container accepts connections and never answers, so every attempt times out. The
    # stand-in replaces it after three failed pings (15 s or more): longer than the retries take.
    os.kill(container.pid, signal.SIGSTOP)
    key = f"{SLOW_IN}big/person.jpg"
    try:
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=small_jpeg("bus.jpg", 160))["ETag"]
        record = wait_for_records(stack, f"{SLOW_OUT}keypoints/big/", 1, timeout_s=120)
    finally:
        if container.alive():
            os.kill(container.pid, signal.SIGCONT)
        stack.client("sagemaker").delete_endpoint(EndpointName=stack.slow.endpoint_name)
    error = record[f"{SLOW_OUT}keypoints/big/person.jpg.json"]["error"]
    assert error["code"] == "invocation_timeout"
    assert f"{RETRIES + 1} time(s) ({RETRIES} retries)" in error["message"] and "pose-batch submit" in error["message"]
    # Every attempt ran under the same inference id and failed on the endpoint: one notification each.
    request_id = inference_id(BUCKET, key, etag)
    notices: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        notices += [json.loads(m["Body"]) for m in batch]
    assert [n["inferenceId"] for n in notices] == [request_id] * (RETRIES + 1)
    assert all("timed out" in n["failureReason"] for n in notices)


def test_a_drop_while_scaled_to_zero_waits_for_the_scale_up(stack: Any) -> None:
    sagemaker, name = stack.client("sagemaker"), stack.deployment.endpoint_name
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}]
    )
    poll(
        lambda: (
            True
            if sagemaker.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"] == 0
            else None
        ),
        timeout_s=60,
        interval_s=0.5,
        on_timeout=lambda: "the endpoint did not scale in to zero",
    )
    stack.client("s3").put_object(Bucket=BUCKET, Key=f"{IN}zero/person.jpg", Body=small_jpeg("bus.jpg", 160))

    record = wait_for_records(stack, f"{OUT}keypoints/zero/", 1, timeout_s=240)
    assert "persons" in record[f"{OUT}keypoints/zero/person.jpg.json"]
    variant = sagemaker.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert (variant["DesiredInstanceCount"], variant["CurrentInstanceCount"]) == (1, 1)


def pose_batch(
    *args: str, timeout_s: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "pose-batch"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)


@pytest.mark.parametrize(("action", "expected"), [("redrive", "persons"), ("fail", "dead_lettered")])
def test_dead_letters_are_redriven_or_failed_by_the_command(stack: Any, action: str, expected: str) -> None:
    """An image whose event is in the trigger's dead-letter queue (put there directly: making the
    trigger fail five times would take minutes of visibility timeouts)."""
    s3, sqs = stack.client("s3"), stack.client("sqs")
    key = f"{IN}dlq/{action}.jpg"
    # The image is stored without an event (notifications paused), as if its event had been lost.
    saved = s3.get_bucket_notification_configuration(Bucket=BUCKET)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    try:
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=small_jpeg())["ETag"]
    finally:
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=saved)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "eTag": etag}},
            }
        ]
    }
    sqs.send_message(QueueUrl=stack.deployment.dead_letter_url, MessageBody=json.dumps(event))

    done = pose_batch("dlq", action, "--local", "--home", str(stack.home))

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert (report["action"], report["messages"], report["inputs"]) == (action, 1, [f"s3://{BUCKET}/{key}"])
    record = wait_for_records(stack, f"{OUT}keypoints/dlq/{action}", 1, timeout_s=120)
    body = record[f"{OUT}keypoints/dlq/{action}.jpg.json"]
    assert expected in body or body.get("error", {}).get("code") == expected
    # Without --home, from another folder: the per-user home that `local up` and every --local command use.
    shown = pose_batch("dlq", "show", "--local", env={**os.environ, LOCAL_HOME: str(stack.home)})
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["messages"] == 0
