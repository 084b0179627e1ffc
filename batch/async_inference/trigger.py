"""The S3 trigger: one asynchronous inference per image (or video) dropped under the input prefix. The Lambda
entry point is `events/s3_trigger.py`; the local stack's SQS poller calls `build_handler` directly.

Accepts S3 notifications directly, wrapped in SQS, wrapped in SNS (enveloped or raw), and EventBridge
"Object Created" events, also nested (S3 -> SNS -> SQS): see `s3_notifications`. Plain Python
(stdlib and boto3; no inference stack), so it deploys as a plain Lambda zip.

Outputs are named by the container (custom attributes `keypoints_output`, `annotated_output`), not by
`Filename`/`S3OutputPathExtension`, which cannot spell most keys. A key whose two percent-encoded
output URIs exceed CustomAttributes' 1024 characters can never succeed: it is not retried (no
`batchItemFailures` entry, no raise); the handler logs an error and writes the error record
`{"error": {"code": "key_too_long", ...}}` at the mirrored keypoints key itself, so the image still
ends with a record. A submission that fails (throttling, the endpoint gone) is reported in
`batchItemFailures` and retried by SQS; on the queue's last delivery (`max_receive_count`) the image's
`submission_failed` record is written before the message goes to the dead-letter queue
(`pose-batch dlq`). Messages the invocation has no time left for are reported failed, not attempted
(`lambda_clients`). Configuration: `batch.orchestration_settings.TriggerConfig`.

An image whose annotated name another input keeps (`a.png` beside `a.png.jpg`) is not submitted: it gets
the `annotated_name_taken` error record; the input that keeps the name gives its partner that record when
it arrives second (`annotated_names`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from batch.async_inference.annotated_names import check_annotated_name
from batch.async_inference.lambda_clients import has_time_for_a_call
from batch.async_inference.layout import AsyncLayout, Placement, inference_id, output_root_of
from batch.async_inference.records import write_error_record
from batch.async_inference.s3_notifications import ObjectCreated, is_sqs_event, object_events, receive_counts
from batch.errors import AnnotatedNameTaken, KeyTooLong
from batch.orchestration_settings import OUTPUT_URI, TriggerConfig

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)


class S3Trigger:
    """The handler's logic with its clients injected (Lambda builds them from the environment)."""

    def __init__(self, config: TriggerConfig, runtime: Any, sagemaker: Any = None, s3: Any = None) -> None:
        self.config = config
        self._runtime = runtime
        self._sagemaker = sagemaker
        self._s3 = s3  # for the error record of a key that can never be submitted
        self._output_uri = config.output_uri

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        submitted: set[str] = set()
        rejected: set[str] = set()
        failed: set[str | None] = set()
        receives = receive_counts(event)
        for message_id, created in object_events(event):
            if message_id in failed:
                continue  # the message will be redelivered whole
            if not has_time_for_a_call(context):
                # Time runs low: this message comes back on its own; the handled ones are not re-sent.
                failed.add(message_id)
                continue
            try:
                self._submit(created, submitted, rejected)
            except Exception as exc:
                log.exception("invoke_endpoint_async failed for s3://%s/%s", created.bucket, created.key)
                failed.add(message_id)
                self._record_if_last_receive(created, receives.get(message_id or "", 0), exc)
        if is_sqs_event(event):
            return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(f for f in failed if f)]}
        if failed:
            # Lambda retries a failed asynchronous invocation; repeated submissions land on the same keys.
            raise RuntimeError(f"{len(failed)} invocation(s) failed; see the log")
        return {"submitted": len(submitted), "rejected": len(rejected)}

    def request_for(self, created: ObjectCreated) -> dict[str, Any] | None:
        """The `invoke_endpoint_async` arguments; None when the object is not an input image."""
        placement = self.layout_for(created.bucket).place(created.bucket, created.key)
        if placement is None:
            return None
        return invocation_request(self.config, placement, inference_id(created.bucket, created.key, created.version))

    def layout_for(self, bucket: str) -> AsyncLayout:
        return AsyncLayout.create(f"s3://{bucket}/{self.config.input_prefix}", self._output_root())

    def _submit(self, created: ObjectCreated, submitted: set[str], rejected: set[str]) -> None:
        try:
            request = self.request_for(created)
        except KeyTooLong as exc:
            self._reject(created, exc)
            rejected.add(f"s3://{created.bucket}/{created.key}")
            return
        if request is None:
            log.info("skipping s3://%s/%s: not an image or video under the input prefix", created.bucket, created.key)
            return
        if request["InferenceId"] in submitted:
            return  # the same object twice in one batch (multipart uploads: Put + CompleteMultipartUpload)
        if self._annotated_name_taken(created):
            rejected.add(f"s3://{created.bucket}/{created.key}")
            return
        response = self._runtime.invoke_endpoint_async(**request)
        submitted.add(request["InferenceId"])
        log.info(
            "submitted %s as %s -> %s",
            request["InputLocation"],
            request["InferenceId"],
            response.get("OutputLocation"),
        )

    def _annotated_name_taken(self, created: ObjectCreated) -> bool:
        """True when another input keeps this image's annotated name (its error record is written); when
        this image keeps the name of a partner already there, the partner's record becomes the error."""
        layout = self.layout_for(created.bucket)
        placement = layout.place(created.bucket, created.key)
        if placement is None or self._s3 is None:
            return False
        names = check_annotated_name(self._s3, layout, placement)
        refusal = names.refusal(placement)
        if refusal is not None:
            log.error("not submitted: %s: %s", placement.input_uri, refusal)
            write_error_record(self._s3, placement.keypoints_uri, AnnotatedNameTaken.code, refusal)
            return True
        displaced = names.displaced_message(placement)
        if names.displaced is not None and displaced is not None:
            log.warning("%s: %s", names.displaced.input_uri, displaced)
            write_error_record(self._s3, names.displaced.keypoints_uri, AnnotatedNameTaken.code, displaced)
        return False

    def _reject(self, created: ObjectCreated, exc: KeyTooLong) -> None:
        """Never retried (it cannot succeed): logged, and its error record written where the result
        would have been. A failing write raises, so the event is retried for the record's sake."""
        log.error("not submitted: %s", exc)
        placement = self.layout_for(created.bucket).place(created.bucket, created.key)
        if placement is None or self._s3 is None:
            return
        write_error_record(self._s3, placement.keypoints_uri, exc.code, exc.message)

    def _record_if_last_receive(self, created: ObjectCreated, receive_count: int, exc: Exception) -> None:
        """On the queue's last delivery the message goes to the dead-letter queue next: the image gets
        its error record now (a later re-drive that succeeds overwrites it with the result)."""
        limit = self.config.max_receive_count
        if not limit or receive_count < limit or self._s3 is None:
            return
        placement = self.layout_for(created.bucket).place(created.bucket, created.key)
        if placement is None:
            return
        message = (
            f"{placement.input_uri} could not be submitted to endpoint {self.config.endpoint_name} in "
            f"{receive_count} attempts (last: {type(exc).__name__}: {str(exc)[:300]}); its event is in the "
            f"trigger's dead-letter queue: `pose-batch dlq redrive` re-submits it once the cause is fixed."
        )
        try:
            write_error_record(self._s3, placement.keypoints_uri, "submission_failed", message)
        except Exception:
            log.exception("could not write the error record of %s", placement.input_uri)

    def _output_root(self) -> str:
        if self._output_uri is None:
            self._output_uri = endpoint_output_root(self._sagemaker, self.config.endpoint_name)
        return self._output_uri


def invocation_request(
    config: TriggerConfig, placement: Placement, request_id: str, options: str = ""
) -> dict[str, Any]:
    """`options`: the caller's per-request custom attributes (`conf=0.4;fps=5`); the trigger sends none."""
    request: dict[str, Any] = {
        "EndpointName": config.endpoint_name,
        "InputLocation": placement.input_uri,
        "ContentType": placement.content_type,
        "Accept": "application/json",
        "InferenceId": request_id,
        # Both mirrored outputs are written by the container; SageMaker's own response object keeps
        # its default name under S3OutputPath (no Filename / S3OutputPathExtension: see layout.py).
        "CustomAttributes": placement.custom_attributes_with(options),
    }
    if config.invocation_timeout_s:
        request["InvocationTimeoutSeconds"] = config.invocation_timeout_s
    if config.request_ttl_s:
        request["RequestTTLSeconds"] = config.request_ttl_s
    return request


def endpoint_output_root(sagemaker: Any, endpoint_name: str) -> str:
    """`s3://bucket/prefix/` from the endpoint's S3OutputPath `s3://bucket/prefix/_async/responses`."""
    if sagemaker is None:
        raise RuntimeError(f"{OUTPUT_URI} is not set and no SageMaker client to look it up")
    config_name = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    described = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    output_path = str(described["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"])
    try:
        return output_root_of(output_path)
    except ValueError as exc:
        raise RuntimeError(f"endpoint {endpoint_name}: {exc}") from None


def build_handler(
    config: TriggerConfig, runtime: Any, sagemaker: Any = None, s3: Any = None
) -> Callable[..., dict[str, Any]]:
    """A Lambda-style handler with injected clients (the local stack's SQS poller calls this one)."""
    return S3Trigger(config, runtime, sagemaker, s3)
