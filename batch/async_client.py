"""Client of the asynchronous endpoint: submit one image or a whole prefix through
`InvokeEndpointAsync` (the same key -> output mapping as the S3-event handler), then wait for the
outcomes through the success/error SNS topics (a temporary SQS subscription), with S3 as a fallback.
The outcome is read from the mirrored keypoints key, which the container fills with the result record
or the image's error record; when it holds nothing new (a timeout, a dead container), SageMaker's
failure object and the error notification's reason make the error. One asyncio core with bounded
concurrency; `run_sync` wraps it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from batch import aws
from batch.async_inference.annotated_names import check_annotated_name
from batch.async_inference.layout import AsyncLayout, Placement, inference_id
from batch.async_inference.outcome_notifications import OutcomeNotifications
from batch.async_inference.records import write_error_record
from batch.async_inference.retry import classify
from batch.async_inference.trigger import endpoint_output_root, invocation_request
from batch.content_types import input_type_for
from batch.errors import AnnotatedNameTaken, KeyTooLong
from batch.orchestration_settings import DEFAULT_INPUT_PREFIX, TriggerConfig
from batch.output_layout import annotated_name_owners, annotated_name_taken_message, as_prefix, is_video
from batch.s3_uri import S3Uri
from batch.schema import ErrorDetail, ErrorRecord, PoseResult
from batch.video.records import VideoHeader

log = logging.getLogger(__name__)
T = TypeVar("T")
NOT_AN_IMAGE = "not_an_image"
HEADER_BYTES = 1024 * 1024  # a video's header line is read alone, never its frames
OnOutcome = Callable[["Outcome"], None]


@dataclass(frozen=True)
class Submission:
    placement: Placement
    inference_id: str
    output_location: str
    failure_location: str
    submitted_at: float


@dataclass(frozen=True)
class Outcome:
    """The result of one image (or video: its header record), or why there is none."""

    input_uri: str
    inference_id: str | None
    result: PoseResult | None = None
    error: ErrorDetail | None = None
    keypoints_uri: str | None = None
    annotated_uri: str | None = None
    video: VideoHeader | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None or self.video is not None

    @property
    def status(self) -> str:
        """ok | error | skipped (not an image or video) | queued (submitted, not waited for)."""
        if self.ok:
            return "ok"
        if self.error is None:
            return "queued"
        return "skipped" if self.error.code == NOT_AN_IMAGE else "error"

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input_uri,
            "status": self.status,
            "inference_id": self.inference_id,
            "keypoints": self.keypoints_uri if self.ok else None,
            "annotated": self.annotated_uri if self.ok else None,
            "persons": len(self.result.persons) if self.result else None,
            "error": self.error.model_dump() if self.error else None,
            **({"video": _video_summary(self.video)} if self.video else {}),
        }


class AsyncPoseClient:
    def __init__(
        self,
        endpoint_name: str,
        *,
        output_uri: str | None = None,
        concurrency: int = 16,
        clients: Callable[[str], Any] = aws.client,
        options: str = "",
    ) -> None:
        """`options`: per-request custom attributes sent with every request (`conf=0.4;fps=5`)."""
        self.endpoint_name = endpoint_name
        self._options = options
        self._clients = {name: clients(name) for name in ("s3", "sns", "sqs", "sagemaker", "sagemaker-runtime")}
        self._output_uri = output_uri
        self._limit = asyncio.Semaphore(concurrency)
        self._notifications = OutcomeNotifications(endpoint_name, self._clients)

    @property
    def output_root(self) -> str | None:
        """The output root, once known (given, or read from the endpoint when submitting)."""
        return self._output_uri

    # --- submitting ------------------------------------------------------------------------------
    async def submit(self, uri: str, *, input_root: str | None = None) -> list[Submission | Outcome]:
        """One image, or every image under a prefix (a URI ending in '/' or naming no object)."""
        target = S3Uri.parse(uri, allow_empty_key=True)
        keys = await self._keys(target)
        layout = AsyncLayout.create(input_root or default_input_root(target), await self._output_root())
        skipped: list[Submission | Outcome] = [
            _failed(
                f"s3://{target.bucket}/{key}",
                None,
                NOT_AN_IMAGE,
                "not an image or video file (by its extension): skipped",
            )
            for key in keys
            if not input_type_for(key)
        ]
        images = [key for key in keys if input_type_for(key)]
        taken = await self._annotated_names_taken(layout, target, images)
        submitted = [self._submit_one(layout, target.bucket, key, taken.get(key)) for key in images]
        return skipped + list(await asyncio.gather(*submitted))

    async def _annotated_names_taken(self, layout: AsyncLayout, target: S3Uri, images: list[str]) -> dict[str, str]:
        """key -> the error record's message, for each image whose annotated name another input keeps
        (`batch.output_layout`): found in the listing of a prefix (both inputs share a folder), asked of S3
        for one object (which, keeping a partner's name, also gives the partner its record)."""
        placements = {key: p for key in images if (p := layout.place(target.bucket, key)) is not None}
        if len(images) != 1 or images[0] != target.key:
            by_rel = {p.relative_key: key for key, p in placements.items()}
            return {
                by_rel[rel]: annotated_name_taken_message(rel, owner)
                for rel, owner in annotated_name_owners(by_rel).items()
            }
        if not placements:
            return {}
        ((key, placement),) = placements.items()
        s3 = self._clients["s3"]
        names = await self._call(lambda: check_annotated_name(s3, layout, placement))
        refusal, displaced = names.refusal(placement), names.displaced_message(placement)
        if names.displaced is not None and displaced is not None:
            where = names.displaced.keypoints_uri
            await self._call(lambda: write_error_record(s3, where, AnnotatedNameTaken.code, displaced))
        return {key: refusal} if refusal is not None else {}

    async def _keys(self, target: S3Uri) -> list[str]:
        """The object itself, or every object under the prefix (images and others: others are reported)."""
        s3 = self._clients["s3"]
        if target.key and not target.key.endswith("/"):
            try:
                await self._call(lambda: s3.head_object(Bucket=target.bucket, Key=target.key))
                return [target.key]
            except Exception:
                log.debug("%s is not an object; listing it as a prefix", target)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=as_prefix(target.key))
        objects = await self._call(lambda: [o["Key"] for page in pages for o in page.get("Contents", [])])
        return [key for key in objects if not key.endswith("/")]  # "folder" markers are not files

    async def _submit_one(
        self, layout: AsyncLayout, bucket: str, key: str, name_taken: str | None = None
    ) -> Submission | Outcome:
        placement = layout.place(bucket, key)
        if placement is None:
            return _failed(f"s3://{bucket}/{key}", None, "not_an_input", "not an image or video under the input root")
        s3 = self._clients["s3"]
        if name_taken is not None:  # not posed: its record says why, as the trigger's would
            where = placement.keypoints_uri
            await self._call(lambda: write_error_record(s3, where, AnnotatedNameTaken.code, name_taken))
            return _failed(placement.input_uri, None, AnnotatedNameTaken.code, name_taken)
        try:
            head = await self._call(lambda: s3.head_object(Bucket=bucket, Key=key))
            request_id = inference_id(bucket, key, head.get("VersionId") or head.get("ETag"))
            request = invocation_request(TriggerConfig(self.endpoint_name), placement, request_id, self._options)
            await self._keep_options(layout, request_id)
            submitted_at = time.time()
            answer = await self._call(lambda: self._clients["sagemaker-runtime"].invoke_endpoint_async(**request))
        except KeyTooLong as exc:
            return _failed(placement.input_uri, None, exc.code, str(exc))
        except Exception as exc:
            return _failed(placement.input_uri, None, "submit_failed", str(exc))
        return Submission(
            placement,
            request_id,
            _header_text(answer.get("OutputLocation") or ""),
            _header_text(answer.get("FailureLocation") or ""),
            submitted_at,
        )

    async def _keep_options(self, layout: AsyncLayout, request_id: str) -> None:
        """The options of this request where the async error handler finds them for a retry (the failure
        notification does not carry CustomAttributes); none: any left by an earlier submit are removed."""
        s3, key = self._clients["s3"], layout.options_key(request_id)
        if self._options:
            body = json.dumps({"options": self._options}).encode()
            await self._call(
                lambda: s3.put_object(Bucket=layout.output_bucket, Key=key, Body=body, ContentType="application/json")
            )
        else:
            await self._call(lambda: s3.delete_object(Bucket=layout.output_bucket, Key=key))

    # --- waiting -------------------------------------------------------------------------------
    async def wait(
        self, submissions: list[Submission], *, timeout_s: float = 900.0, on_outcome: OnOutcome | None = None
    ) -> list[Outcome]:
        """Every submission's outcome, each also given to `on_outcome` as it arrives (so an interrupted wait
        keeps what finished); those still unfinished at the deadline are `timeout` errors."""
        pending = {s.inference_id: s for s in submissions}
        # Failures the error handler retries under the same inference id: not final until its record lands
        # at the mirrored key (a result, or the error record written after the last retry).
        retrying: dict[str, Outcome] = {}
        outcomes = _Outcomes(on_outcome)
        deadline = time.monotonic() + timeout_s
        next_s3_check = 0.0
        while pending and time.monotonic() < deadline:
            for message in await self._call(self._notifications.receive):
                submission = pending.get(str(message.get("inferenceId")))
                if submission is None:
                    continue
                outcome, final = await self._outcome(submission, message)
                if final:
                    outcomes[pending.pop(submission.inference_id).inference_id] = outcome
                else:
                    retrying[submission.inference_id] = outcome
            if time.monotonic() >= next_s3_check:  # no topics, or a notification that came before we listened
                for submission in list(pending.values()):
                    found = await self._outcome_from_s3(submission)
                    if found is not None:
                        outcomes[pending.pop(submission.inference_id).inference_id] = found
                next_s3_check = time.monotonic() + (10.0 if self._notifications.listening else 1.0)
        for submission in list(pending.values()):
            last_failure = retrying.get(submission.inference_id)
            outcomes[submission.inference_id] = last_failure or _failed(
                submission.placement.input_uri, submission.inference_id, "timeout", f"no outcome in {timeout_s:.0f}s"
            )
        return [outcomes[s.inference_id] for s in submissions]

    async def run(
        self,
        uri: str,
        *,
        wait: bool,
        timeout_s: float = 900.0,
        input_root: str | None = None,
        on_submitted: Callable[[list[Submission | Outcome]], None] | None = None,
        on_outcome: OnOutcome | None = None,
    ) -> list[Outcome]:
        """Submit, and with `wait` listen for the outcomes (subscribed before submitting, so none is missed).
        `on_submitted` sees what was submitted; `on_outcome` every outcome as it is known (queued ones
        without `wait`)."""
        if wait:
            await self._call(self._notifications.subscribe)
        try:
            submitted = await self.submit(uri, input_root=input_root)
            if on_submitted is not None:
                on_submitted(submitted)
            done = [s for s in submitted if isinstance(s, Outcome)]
            accepted = [s for s in submitted if isinstance(s, Submission)]
            for outcome in done:
                if on_outcome is not None:
                    on_outcome(outcome)
            if not wait:
                queued = [Outcome(s.placement.input_uri, s.inference_id) for s in accepted]
                for outcome in queued:
                    if on_outcome is not None:
                        on_outcome(outcome)
                return done + queued
            return done + await self.wait(accepted, timeout_s=timeout_s, on_outcome=on_outcome)
        finally:
            await self._call(self._notifications.unsubscribe)

    async def _outcome(self, submission: Submission, message: dict[str, Any]) -> tuple[Outcome, bool]:
        """The outcome a notification announces, and whether it is final."""
        if message.get("invocationStatus") == "Completed":
            return await self._read_record(submission), True
        # A bad image's error record is at the keypoints key; other failures only in SageMaker's object.
        if await self._fresh(submission.placement.keypoints_uri, submission.submitted_at):
            return await self._read_record(submission), True
        reason = str(message.get("failureReason") or "inference failed")
        location = str(message.get("failureLocation") or submission.failure_location)
        _, retried = classify(reason)  # a dead container or a timeout: the error handler tries again
        return await self._read_failure(submission, location, reason), not retried

    async def _outcome_from_s3(self, submission: Submission) -> Outcome | None:
        """The record at the mirrored key is the final word. Without topics (so no error handler retrying
        either), SageMaker's failure object is final too; with them, the error notification says more."""
        if await self._fresh(submission.placement.keypoints_uri, submission.submitted_at):
            return await self._read_record(submission)
        if (
            not self._notifications.listening
            and submission.failure_location
            and await self._fresh(submission.failure_location, submission.submitted_at)
        ):
            return await self._read_failure(submission, submission.failure_location, "inference failed")
        return None

    async def _fresh(self, location: str, since: float) -> bool:
        uri = S3Uri.parse(location)
        try:
            head = await self._call(lambda: self._clients["s3"].head_object(Bucket=uri.bucket, Key=uri.key))
        except Exception:
            return False
        return bool(head["LastModified"].timestamp() >= since - 2.0)  # clock skew between us and S3

    async def _read_record(self, submission: Submission) -> Outcome:
        """The mirrored keypoints key: a `PoseResult`, or the image's `{"error": ...}` record."""
        placement, request_id = submission.placement, submission.inference_id
        location = placement.keypoints_uri
        video = is_video(placement.relative_key)
        try:
            body = await self._read(location, first_line=video)
        except Exception as exc:
            return _failed(placement.input_uri, request_id, "output_unreadable", f"{location}: {exc}")
        try:
            error = ErrorRecord.model_validate_json(body).error
        except ValueError:
            pass  # not an error record: a result, or garbage
        else:
            return Outcome(placement.input_uri, request_id, None, error, location)
        if video:
            try:
                header = VideoHeader.model_validate_json(body)
            except ValueError as exc:
                return _failed(placement.input_uri, request_id, "invalid_output", f"{location}: {exc}")
            return Outcome(placement.input_uri, request_id, None, None, location, placement.annotated_uri, header)
        try:
            result = PoseResult.model_validate_json(body)
        except ValueError as exc:
            return _failed(placement.input_uri, request_id, "invalid_output", f"{location}: {exc}")
        return Outcome(placement.input_uri, request_id, result, None, location, placement.annotated_uri)

    async def _read_failure(self, submission: Submission, location: str, reason: str) -> Outcome:
        """SageMaker's failure object holds the container's answer when it answered at all."""
        try:
            error = ErrorRecord.model_validate_json(await self._read(location)).error
        except Exception:
            error = ErrorDetail(code="inference_failed", message=reason)
        return Outcome(submission.placement.input_uri, submission.inference_id, None, error)

    async def _read(self, location: str, *, first_line: bool = False) -> bytes:
        """The object, or (a video's JSON Lines) its first line only."""
        uri = S3Uri.parse(location)
        extra = {"Range": f"bytes=0-{HEADER_BYTES - 1}"} if first_line else {}
        s3 = self._clients["s3"]
        response = await self._call(lambda: s3.get_object(Bucket=uri.bucket, Key=uri.key, **extra))
        body = bytes(await self._call(response["Body"].read))
        return body.split(b"\n", 1)[0] if first_line else body

    async def _output_root(self) -> str:
        if self._output_uri is None:
            self._output_uri = await self._call(
                lambda: endpoint_output_root(self._clients["sagemaker"], self.endpoint_name)
            )
        return self._output_uri

    async def _call(self, function: Callable[[], T]) -> T:
        async with self._limit:
            return await asyncio.to_thread(function)


def run_sync(coroutine: Awaitable[T]) -> T:
    """The thin synchronous wrapper (CLI, scripts)."""

    async def _run() -> T:
        return await coroutine

    return asyncio.run(_run())


def _failed(input_uri: str, request_id: str | None, code: str, message: str) -> Outcome:
    return Outcome(input_uri, request_id, None, ErrorDetail(code=code, message=message))


class _Outcomes(dict[str, Outcome]):
    """Outcomes by inference id; each one stored is also passed on at once."""

    def __init__(self, on_outcome: OnOutcome | None) -> None:
        super().__init__()
        self._on_outcome = on_outcome

    def __setitem__(self, key: str, value: Outcome) -> None:
        super().__setitem__(key, value)
        if self._on_outcome is not None:
            self._on_outcome(value)


def default_input_root(target: S3Uri) -> str:
    """The prefix whose layout outputs mirror, by the S3 trigger's rule: the trigger's input prefix when the
    target is under it (`input/site-a/x.jpg` -> `keypoints/site-a/x.jpg.json`, as an S3 event gives), else
    the bucket root (the whole key is kept). Never the submitted prefix itself: two prefixes holding `x.jpg`
    must not write the same output."""
    prefix = DEFAULT_INPUT_PREFIX
    return f"s3://{target.bucket}/{prefix if target.key.startswith(prefix) else ''}"


def _video_summary(header: VideoHeader) -> dict[str, Any]:
    """What `submit` prints for a video."""
    return {
        "frames_posed": header.frames_posed,
        "duration": header.duration,
        "tracks": header.tracking.tracks,
        "truncated": header.truncated,
        "stopped": header.stopped,
    }


def _header_text(value: str) -> str:
    """botocore decodes response headers as latin-1; S3 locations of non-ASCII keys are UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value
