"""What the container does with one `/invocations` request, whoever sent it (Batch Transform, async
inference, a real-time caller): an image body, or a manifest body of S3 references (one per line).
(Named by the product's design card, which calls the container's request handler the transform handler.)
`batch.server.app` (the HTTP contract) hands each request's body and options to `InvocationHandler`.

- Image body: one `PoseResult` (JSON), or the annotated JPEG when `Accept: image/jpeg`, or both in a
  transport envelope when `Accept: application/x-posebatch-envelope+json`. The annotated
  JPEG and the result record are also written to S3 when the caller names locations (`annotated_output`,
  `keypoints_output` custom attributes; async inference); a bad image's error record goes to
  `keypoints_output` too. With `POSE_EMBED_ANNOTATED=true` (Batch Transform images mode, where the
  container is not told the input's key) the answer is a transport envelope of record and JPEG
  (`batch.transport_envelope`).
- Video body (asynchronous inference: the dropped video is the body; spooled to a file by the app):
  `batch.video.flows.pose_video_request` poses it and writes its JSON Lines and MP4 where the caller says.
- Manifest body (`application/jsonlines`, Batch Transform `SplitType=Line` + `MultiRecord`): at most
  `POSE_MAX_MANIFEST_LINES` lines (counted before anything else; more is a 413), each fetched from S3
  (each object up to `POSE_MAX_S3_OBJECT_MB`), posed through the same batcher, its outputs written where
  the line says, and answered by one JSON line, in order. A bad line is an error line, never a failed
  request. Lines go through a bounded pool (`POSE_MANIFEST_CONCURRENCY` posed at once, at most twice that
  many started ahead of the line answered next) and the answer is streamed as lines finish, so neither
  the images nor the answers of a long manifest are ever held whole, and the event loop (`/ping`) stays
  free. `_manifest_line` is the one function the pool calls per line; a line naming a video is handled
  there by `batch.video.flows.pose_manifest_video`.

Every S3 read and write goes through `S3Store`: on its own thread pool, so it never blocks inference,
and only to the buckets the container is allowed (`POSE_ALLOWED_BUCKETS`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from batch import aws, content_types, transport_envelope
from batch.custom_attributes import InferenceOptions
from batch.errors import BucketNotAllowed, PayloadTooLarge, PoseError, S3ObjectError
from batch.inference.engine import PoseEngine, Prediction
from batch.manifest_line import ManifestLine, split_manifest
from batch.output_layout import is_video
from batch.s3_uri import S3Uri
from batch.schema import ErrorDetail, ManifestLineResult
from batch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    body: bytes | AsyncIterator[bytes]  # whole, or streamed as it is made (a manifest's answer)
    content_type: str


class InvocationHandler:
    def __init__(self, settings: Settings, engine: PoseEngine, store: S3Store) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store

    async def handle_image(self, body: bytes, options: InferenceOptions, accept: str) -> Reply:
        outputs = [uri for uri in (options.annotated_output, options.keypoints_output) if uri is not None]
        for uri in outputs:
            self.store.check_allowed(uri)  # refuse before spending inference on it
        want_jpeg = (
            accept in (content_types.JPEG, content_types.ENVELOPE)
            or options.annotated_output is not None
            or self.settings.embed_annotated
        )
        try:
            prediction = await self.engine.predict(body, options, annotate=want_jpeg)
        except PoseError as exc:
            if options.keypoints_output is not None:
                # The mirrored key still ends with a record: this image's error.
                await self.store.put(options.keypoints_output, json.dumps(exc.to_dict()).encode(), content_types.JSON)
            raise
        if options.source is not None:
            prediction.result.source = options.source  # the record names its image (async callers)
        jpeg = prediction.annotated
        record = prediction.result.model_dump_json(exclude_none=True).encode()
        writes = []
        if options.annotated_output is not None and jpeg is not None:
            writes.append(self.store.put(options.annotated_output, jpeg, content_types.JPEG))
        if options.keypoints_output is not None:
            writes.append(self.store.put(options.keypoints_output, record, content_types.JSON))
        await asyncio.gather(*writes)
        if accept == content_types.JPEG and jpeg is not None:
            return Reply(jpeg, content_types.JPEG)
        if accept == content_types.ENVELOPE:  # a caller that wants both (`pose-batch invoke --annotated`)
            return Reply(transport_envelope.encode(record, jpeg), content_types.ENVELOPE)
        if self.settings.embed_annotated:
            # Batch Transform images mode: the record and its JPEG, for the finaliser to unpack.
            return Reply(transport_envelope.encode(record, jpeg), content_types.JSON)
        return Reply(record, content_types.JSON)

    async def handle_video(self, video: Path, options: InferenceOptions) -> Reply:
        """A video body, spooled to `video` (the app decides by content type or by sniffing the body)."""
        from batch.video.flows import pose_video_request  # PyAV loads with the first video, not for images

        body, content_type = await pose_video_request(self.engine, self.store, video, options, video.parent)
        return Reply(body, content_type)

    async def handle_manifest(self, body: bytes, options: InferenceOptions) -> Reply:
        lines = split_manifest(body, self.settings.max_manifest_lines)  # refused here, before any work
        # No output locations for a whole manifest: each line names its own.
        options = replace(options, annotated_output=None, keypoints_output=None, source=None)
        return Reply(self._answer_lines(lines, options), content_types.JSON_LINES)

    async def _answer_lines(self, lines: list[str], options: InferenceOptions) -> AsyncIterator[bytes]:
        """One JSON line per input line, in order, each sent as soon as it and the lines before it are done.

        A bounded pool: at most `manifest_concurrency` lines posed at once (their images fetched and held),
        and at most twice that many started ahead of the line answered next (their answers held), so one
        slow line does not idle the pool and a long manifest never holds all its images or answers. The
        caller's pace bounds it too: nothing more is started while an answer waits to be sent."""
        slots = asyncio.Semaphore(self.settings.manifest_concurrency)
        window = 2 * self.settings.manifest_concurrency

        async def bounded(text: str) -> ManifestLineResult:
            async with slots:
                return await self._manifest_line(text, options)

        started: deque[asyncio.Task[ManifestLineResult]] = deque()
        try:
            for text in lines:
                started.append(asyncio.create_task(bounded(text)))
                if len(started) >= window:
                    yield await _answered(started)
            while started:
                yield await _answered(started)
        finally:  # the caller went away (or the stream ended): nothing keeps running for nobody
            for task in started:
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)

    async def _manifest_line(self, text: str, options: InferenceOptions) -> ManifestLineResult:
        reference = text.strip()[:1024]
        try:
            line = ManifestLine.parse(text)
            reference = str(line.image)
            if is_video(line.image.key):
                from batch.video.flows import pose_manifest_video  # PyAV loads with the first video

                return await pose_manifest_video(self.engine, self.store, line, options)
            for output in (line.keypoints, line.annotated):
                if output is not None:
                    self.store.check_allowed(output)
            data = await self.store.get(line.image)
            prediction = await self.engine.predict(data, options, annotate=line.annotated is not None)
            del data
            prediction.result.source = str(line.image)  # the record names its image
            outputs = await self._write_outputs(line, prediction)
            return ManifestLineResult(image=reference, status="ok", result=prediction.result, outputs=outputs)
        except PoseError as exc:
            return ManifestLineResult(
                image=reference, status="error", error=ErrorDetail(code=exc.code, message=exc.message)
            )
        except Exception:
            log.exception("manifest line failed: %s", reference)
            detail = ErrorDetail(code="internal_error", message="internal error; see the container log")
            return ManifestLineResult(image=reference, status="error", error=detail)

    async def _write_outputs(self, line: ManifestLine, prediction: Prediction) -> dict[str, str]:
        writes = []
        outputs: dict[str, str] = {}
        if line.keypoints is not None:
            record = prediction.result.model_dump_json(exclude_none=True).encode()
            writes.append(self.store.put(line.keypoints, record, content_types.JSON))
            outputs["keypoints"] = str(line.keypoints)
        if line.annotated is not None and prediction.annotated is not None:
            writes.append(self.store.put(line.annotated, prediction.annotated, content_types.JPEG))
            outputs["annotated"] = str(line.annotated)
        await asyncio.gather(*writes)
        return outputs


async def _answered(started: deque[asyncio.Task[ManifestLineResult]]) -> bytes:
    """The next line's answer, with those after it that are done already (fewer, larger writes)."""
    answers = [await started[0]]
    started.popleft()
    while started and started[0].done():
        answers.append(started.popleft().result())
    return "".join(answer.model_dump_json(exclude_none=True) + "\n" for answer in answers).encode()


class S3Store:
    def __init__(self, settings: Settings) -> None:
        self._allowed = frozenset(settings.allowed_buckets)
        # What the container reads from S3 has its own limit: the request payload limit is for bodies.
        self._max_bytes = settings.max_s3_object_bytes
        self._pool = ThreadPoolExecutor(max_workers=settings.s3_concurrency, thread_name_prefix="s3")
        self._client: Any = None

    def check_allowed(self, uri: S3Uri) -> None:
        if uri.bucket not in self._allowed:
            allowed = ", ".join(sorted(self._allowed)) or "none (POSE_ALLOWED_BUCKETS is empty)"
            raise BucketNotAllowed(f"bucket {uri.bucket!r} is not allowed for this container; allowed: {allowed}")

    async def get(self, uri: S3Uri) -> bytes:
        self.check_allowed(uri)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._get, uri)

    async def put(self, uri: S3Uri, data: bytes, content_type: str) -> None:
        self.check_allowed(uri)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._put, uri, data, content_type)

    async def download(self, uri: S3Uri, path: Path, max_bytes: int | None) -> None:
        """An object to a local file, streamed (videos: up to `max_bytes`, never held in memory)."""
        self.check_allowed(uri)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._download, uri, path, max_bytes)

    async def upload(self, path: Path, uri: S3Uri, content_type: str) -> None:
        """A local file to S3, streamed (multipart when large)."""
        self.check_allowed(uri)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._upload, path, uri, content_type)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _s3(self) -> Any:
        if self._client is None:  # created lazily: the container starts without touching AWS
            self._client = aws.client("s3", max_pool=64)
        return self._client

    def _get(self, uri: S3Uri) -> bytes:
        try:
            response = self._s3().get_object(Bucket=uri.bucket, Key=uri.key)
            if self._max_bytes is not None and response.get("ContentLength", 0) > self._max_bytes:
                response["Body"].close()
                raise PayloadTooLarge(
                    f"{uri} is {response['ContentLength']:,} bytes; the limit is {self._max_bytes:,}"
                    " (POSE_MAX_S3_OBJECT_MB)"
                )
            return bytes(response["Body"].read())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise S3ObjectError(f"could not read {uri}: {code}") from None
        except BotoCoreError as exc:
            raise S3ObjectError(f"could not read {uri}: {exc}") from None

    def _download(self, uri: S3Uri, path: Path, max_bytes: int | None) -> None:
        try:
            response = self._s3().get_object(Bucket=uri.bucket, Key=uri.key)
            size = int(response.get("ContentLength", 0))
            if max_bytes is not None and size > max_bytes:
                response["Body"].close()
                raise PayloadTooLarge(f"{uri} is {size:,} bytes; the limit is {max_bytes:,} (POSE_MAX_VIDEO_MB)")
            with path.open("wb") as file:
                for chunk in response["Body"].iter_chunks(1024 * 1024):
                    file.write(chunk)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise S3ObjectError(f"could not read {uri}: {code}") from None
        except BotoCoreError as exc:
            raise S3ObjectError(f"could not read {uri}: {exc}") from None

    def _upload(self, path: Path, uri: S3Uri, content_type: str) -> None:
        try:
            self._s3().upload_file(str(path), uri.bucket, uri.key, ExtraArgs={"ContentType": content_type})
        except (ClientError, BotoCoreError) as exc:
            raise S3ObjectError(f"could not write {uri}: {exc}") from None
        except Exception as exc:  # boto3's S3UploadFailedError wraps the ClientError
            raise S3ObjectError(f"could not write {uri}: {exc}") from None

    def _put(self, uri: S3Uri, data: bytes, content_type: str) -> None:
        try:
            self._s3().put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise S3ObjectError(f"could not write {uri}: {code}") from None
        except BotoCoreError as exc:
            raise S3ObjectError(f"could not write {uri}: {exc}") from None
