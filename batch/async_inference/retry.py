"""The async error handler: what happens after SageMaker publishes a failed inference on the
endpoint's error topic. The Lambda entry point is `events/async_error.py` (subscribed to the topic);
the local stack runs the same handler through SNS -> SQS -> its poller.

- A failure the container answered with a 4xx (a bad image) is final: the container wrote the image's
  error record already; if it did not (e.g. the input could not be read), the record is written here.
- A request whose container still wrote the image's record after the endpoint gave up on it (a late
  finish after a timeout) is done: not retried, no error record.
- Anything else (the container died or timed out, the request's TTL expired, a 5xx) is retried: the
  same request, under the same deterministic inference id (duplicates still collapse onto the same
  keys), after a backoff, at most `RetryPolicy.attempts` times. After that, the error record is
  written at the mirrored key, saying what failed and how to retry.

Only failures of requests this stack made are handled: the notification must name this endpoint, an input
under the input prefix, and that input's inference id as it is now (the trigger's deterministic id of
its current version, from a HEAD of the input). Anything else is logged and ignored, never retried or
recorded: a forged notification (or one for an image replaced since, whose new version has its own
request) must not re-invoke the endpoint or overwrite a good record. The topic policy keeps other
publishers out in the first place (infra/template.yaml).

The retry count lives in S3, next to SageMaker's own objects: `<output root>/_async/attempts/<id>.json`.
The error notification does not echo CustomAttributes, so a count carried in the request could not
come back; S3 needs no new service, and the marker is deleted once the final record is written, so a
later manual re-submission starts with a fresh budget. Standard library and boto3 only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batch.async_inference.failure_notifications import FailedInference, failed_inferences
from batch.async_inference.lambda_clients import has_time_for_a_call
from batch.async_inference.layout import AsyncLayout, Placement, inference_id
from batch.async_inference.records import (
    is_missing,
    record_exists,
    write_error_record,
    written_by_container_since,
)
from batch.async_inference.trigger import invocation_request
from batch.orchestration_settings import RetryPolicy, TriggerConfig
from batch.s3_uri import S3Uri

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)


def classify(reason: str) -> tuple[str, bool]:
    """(error code, retryable) of a `failureReason`, SageMaker's wording and the stand-in's."""
    text = reason.lower()
    if "received client error" in text:
        return "inference_rejected", False
    if "unable to read the input location" in text:
        return "input_unreadable", False
    if "timed out" in text or "timeout" in text:
        return "invocation_timeout", True
    if "expired" in text:
        return "request_expired", True
    if "did not answer" in text or "server error" in text or "servererror" in text:
        return "container_failed", True
    return "inference_failed", True


@dataclass(frozen=True)
class _Retry:
    failure: FailedInference
    placement: Placement
    code: str
    delay_s: float
    request: dict[str, Any]


class AsyncErrorHandler:
    def __init__(
        self,
        config: TriggerConfig,
        policy: RetryPolicy,
        runtime: Any,
        s3: Any,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not config.output_uri:
            raise RuntimeError("the async error handler needs the output root (POSEBATCH_OUTPUT_URI)")
        self.config = config
        self.policy = policy
        self._runtime = runtime
        self._s3 = s3
        self._sleep = sleep

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        failures, is_sqs = failed_inferences(event)
        failed: set[str | None] = set()
        retries: list[_Retry] = []
        recorded = 0
        for failure in failures:
            try:
                retry = self._decide(failure)
            except Exception:
                log.exception("could not handle the failure of %s", failure.inference_id)
                failed.add(failure.message_id)
                continue
            if retry is None:
                recorded += 1
            else:
                retries.append(retry)
        failed |= self._retry_all(retries, context)
        if is_sqs:
            return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(f for f in failed if f)]}
        if failed:
            raise RuntimeError(f"{len(failed)} failure notification(s) not handled; see the log")
        return {"retried": len(retries), "final": recorded}

    def layout_for(self, bucket: str) -> AsyncLayout:
        return AsyncLayout.create(f"s3://{bucket}/{self.config.input_prefix}", str(self.config.output_uri))

    def _decide(self, failure: FailedInference) -> _Retry | None:
        """None when the failure is final (its record written, or left to the container's own)."""
        try:
            source = S3Uri.parse(failure.input_location)
        except ValueError:
            log.warning("ignored, not ours: a failure of %r", failure.input_location[:300])
            return None
        layout = self.layout_for(source.bucket)
        placement = layout.place(source.bucket, source.key)
        if placement is None or failure.endpoint_name != self.config.endpoint_name:
            log.warning("ignored, not ours: failed %s on endpoint %r", failure.input_location, failure.endpoint_name)
            return None
        if not self._is_current_request(source, failure.inference_id):
            log.warning(
                "ignored: %s is not the inference id of %s as it is now (forged, or the image changed since)",
                failure.inference_id[:100], failure.input_location,
            )  # fmt: skip
            return None
        if record_exists(self._s3, f"{layout.s3_output_path}/{failure.inference_id}.out"):
            log.info("%s already succeeded (a duplicate failed): nothing to do", failure.inference_id)
            return None
        if failure.received_at and written_by_container_since(self._s3, placement.keypoints_uri, failure.received_at):
            log.info("%s finished after its invocation failed: nothing to do", failure.inference_id)
            return None
        code, retryable = classify(failure.reason)
        if not retryable:
            if not record_exists(self._s3, placement.keypoints_uri):
                write_error_record(self._s3, placement.keypoints_uri, code, f"{failure.reason} {_how(placement)}")
            return None
        marker = S3Uri(layout.output_bucket, layout.attempts_key(failure.inference_id))
        done = self._retries_done(marker)
        if done >= self.policy.attempts:
            message = (
                f"the asynchronous inference failed {done + 1} time(s) ({done} retries); last failure: "
                f"{failure.reason} {_how(placement)}"
            )
            write_error_record(self._s3, placement.keypoints_uri, code, message)
            self._s3.delete_object(Bucket=marker.bucket, Key=marker.key)
            return None
        body = {"inference_id": failure.inference_id, "input": failure.input_location, "retries": done + 1}
        self._s3.put_object(
            Bucket=marker.bucket, Key=marker.key, Body=json.dumps(body).encode(), ContentType="application/json"
        )
        options = self._options_sent(S3Uri(layout.output_bucket, layout.options_key(failure.inference_id)))
        request = invocation_request(self.config, placement, failure.inference_id, options)
        log.info("retry %d of %s after %s", done + 1, failure.input_location, failure.reason[:200])
        return _Retry(failure, placement, code, self.policy.delay_s(done + 1), request)

    def _is_current_request(self, source: S3Uri, request_id: str) -> bool:
        """Whether `request_id` is what the trigger (or `submit`) names a request for `source` as it is
        now; an input that is gone has no request to retry. Other errors raise: the notification is
        then retried and dead-lettered (alarmed), never silently dropped."""
        try:
            head = self._s3.head_object(Bucket=source.bucket, Key=source.key)
        except Exception as exc:
            if is_missing(exc):
                return False
            raise
        return inference_id(source.bucket, source.key, head.get("VersionId") or head.get("ETag")) == request_id

    def _options_sent(self, where: S3Uri) -> str:
        """The per-request options `pose-batch submit` sent with this inference ("" for the trigger's own
        requests, which send none), so that a retry poses with the same thresholds and frame sampling."""
        body = self._object_or_none(where)  # other errors raise: the notification is retried, then
        if body is None:  # dead-lettered; never a retry with other options
            return ""
        try:
            return str(json.loads(body)["options"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"unreadable options s3://{where.bucket}/{where.key}") from None

    def _retries_done(self, marker: S3Uri) -> int:
        body = self._object_or_none(marker)
        if body is None:
            return 0
        try:
            return int(json.loads(body)["retries"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable retry marker s3://%s/%s; counting from zero", marker.bucket, marker.key)
            return 0

    def _object_or_none(self, where: S3Uri) -> bytes | None:
        """The object's bytes; None when it does not exist, other errors raised."""
        try:
            return bytes(self._s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read())
        except Exception as exc:
            if is_missing(exc):
                return None
            raise

    def _retry_all(self, retries: list[_Retry], context: Any) -> set[str | None]:
        """Re-invoke each after its backoff (one wait for the batch, shortest first); the ones this
        invocation has no time left for are reported failed and come back."""
        failed: set[str | None] = set()
        started = time.monotonic()
        for retry in sorted(retries, key=lambda r: r.delay_s):
            wait = retry.delay_s - (time.monotonic() - started)
            if not has_time_for_a_call(context, waiting_s=max(0.0, wait)):
                failed.add(retry.failure.message_id)
                continue
            if wait > 0:
                self._sleep(wait)
            try:
                self._runtime.invoke_endpoint_async(**retry.request)
            except Exception as exc:
                # Throttled or refused even after botocore's retries: the image still ends with a record.
                log.exception("re-invocation of %s failed", retry.failure.inference_id)
                message = (
                    f"the inference failed ({retry.failure.reason}) and could not be re-submitted: "
                    f"{type(exc).__name__}: {str(exc)[:300]}. {_how(retry.placement)}"
                )
                write_error_record(self._s3, retry.placement.keypoints_uri, "resubmit_failed", message)
        return failed


def _how(placement: Placement) -> str:
    return (
        f"To retry: `pose-batch submit {placement.input_uri}` (or upload the image again under the "
        f"input prefix); see the endpoint's CloudWatch logs for the cause."
    )
