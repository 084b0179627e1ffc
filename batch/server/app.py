"""The HTTP interface of the container: SageMaker's contract (`/ping`, `/invocations`,
`/execution-parameters`) over the invocation handler. Wiring: settings -> engine -> handler -> app.

The model loads on a background thread after the socket is bound, so `/ping` answers at once
(503 while loading, 200 once ready) and SageMaker's 250 ms connect deadline always holds.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from batch import content_types
from batch.custom_attributes import InferenceOptions, parse_custom_attributes
from batch.errors import ModelNotReady, PayloadTooLarge, PoseError, VideoNotAccepted, error_record
from batch.inference.engine import PoseEngine
from batch.schema import ErrorRecord
from batch.settings import Settings
from batch.transform_handler import InvocationHandler, Reply, S3Store

log = logging.getLogger(__name__)

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
EngineLoader = Callable[[Settings], PoseEngine]


@dataclass
class Runtime:
    settings: Settings
    store: S3Store
    handler: InvocationHandler | None = None
    load_error: str | None = None
    on_load_failure: Callable[[], None] = field(default=lambda: None)
    # /invocations being answered now, and the most at once since start (two ints: bounded telemetry
    # that shows whether the caller honours MaxConcurrentTransforms / MaxConcurrentInvocationsPerInstance).
    # Only the event loop touches them, so no lock.
    in_flight: int = 0
    peak_in_flight: int = 0

    def invocation_ended(self) -> None:
        self.in_flight -= 1


def create_app(settings: Settings, load_engine: EngineLoader = PoseEngine.load) -> FastAPI:
    runtime = Runtime(settings=settings, store=S3Store(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_load(runtime, load_engine))
        yield
        loading.cancel()
        if runtime.handler is not None:
            await runtime.handler.engine.close()
        runtime.store.close()

    app = FastAPI(
        title="PoseBatch inference container",
        description="SageMaker inference contract for Ultralytics YOLO pose models.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    @app.get("/ping", summary="Health check: 200 once the model is loaded")
    async def ping() -> Response:
        if runtime.handler is not None:
            return JSONResponse({"status": "ready", "model": runtime.handler.engine.info.name})
        if runtime.load_error is not None:
            return JSONResponse({"status": "failed", "error": runtime.load_error}, status_code=500)
        return JSONResponse({"status": "loading"}, status_code=503)

    @app.get("/execution-parameters", summary="Batch Transform tuning advertised to SageMaker")
    async def execution_parameters() -> dict[str, object]:
        if runtime.handler is not None:
            batch_size = runtime.handler.engine.max_batch_size
        else:  # asked before the model is loaded: guess the device the way the engine will choose it
            batch_size = settings.batch_size_for("cuda" if _cuda_available() else "cpu")
        concurrency = settings.advertised_concurrency(batch_size)
        # SageMaker requires MaxConcurrentTransforms x MaxPayloadInMB <= 100.
        payload_mb = max(1, min(6, 100 // concurrency))
        return {"MaxConcurrentTransforms": concurrency, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": payload_mb}

    @app.get("/metrics", summary="Batching and memory figures (for benchmarks and operators)")
    async def metrics() -> dict[str, object]:
        calls = {"invocations_in_flight": runtime.in_flight, "peak_invocations_in_flight": runtime.peak_in_flight}
        if runtime.handler is None:
            return {"ready": False, **calls}
        engine = runtime.handler.engine
        return {"ready": True, **calls, **engine.metrics()}

    @app.post(
        "/invocations",
        summary="Pose an image (image/* body), a video (video/* body, or sniffed) or a manifest of S3 inputs "
        "(application/jsonlines body)",
        responses={400: {"model": ErrorRecord}, 413: {"model": ErrorRecord}, 415: {"model": ErrorRecord}},
    )
    async def invocations(request: Request) -> Response:
        # Counted down before the answer is sent (a streamed one: before its end), so the caller never
        # sees more calls open than it has.
        runtime.in_flight += 1
        runtime.peak_in_flight = max(runtime.peak_in_flight, runtime.in_flight)
        streamed = False
        try:
            reply = await _invoke(runtime, request)
            if isinstance(reply.body, bytes):
                return Response(reply.body, media_type=reply.content_type)
            streamed = True
            return _Stream(reply.body, reply.content_type, on_end=runtime.invocation_ended)
        except PoseError as exc:
            return _error_response(runtime, exc)
        except Exception:
            log.exception("invocation failed")
            body = error_record("internal_error", "internal error; see the container log")
            return JSONResponse(body, status_code=500)
        finally:
            if not streamed:
                runtime.invocation_ended()

    return app


class _Stream(StreamingResponse):
    """A streamed answer (a manifest's lines as they finish) that always ends its call: sent whole, or the
    caller gone (its generator is closed at once, cancelling the lines still being posed)."""

    def __init__(self, chunks: AsyncIterator[bytes], media_type: str, on_end: Callable[[], None]) -> None:
        super().__init__(chunks, media_type=media_type)
        self._chunks = chunks
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_end()
            close = getattr(self._chunks, "aclose", None)
            if close is not None:
                await close()


async def _invoke(runtime: Runtime, request: Request) -> Reply:
    settings = runtime.settings
    if runtime.handler is None:
        raise ModelNotReady("the model is still loading; retry shortly")
    request_type = content_types.check_request_type(request.headers.get("content-type"))
    accept = content_types.negotiate_accept(request.headers.get("accept"))
    options = parse_custom_attributes(
        request.headers.get(CUSTOM_ATTRIBUTES), InferenceOptions.defaults(settings), max_imgsz=settings.max_imgsz
    )
    if content_types.is_json_lines(request_type):
        body = await _read_body(request, settings.max_payload_bytes)
        return await runtime.handler.handle_manifest(body, options)
    video_type = content_types.is_video(request_type)
    _check_declared(request, settings.max_video_bytes if video_type else settings.max_payload_bytes)
    chunks = request.stream().__aiter__()
    head = await _head(chunks)
    if not (video_type or content_types.looks_like_video(head)):
        body = await _rest(head, chunks, settings.max_payload_bytes)
        return await runtime.handler.handle_image(body, options, accept)
    if settings.embed_annotated:  # Batch Transform images mode: one image per request, a JPEG in the answer
        raise VideoNotAccepted("this is a video: Batch Transform images mode takes images only; use --mode manifest")
    # A video body (asynchronous inference carries up to 1 GB) goes to a file, never into memory whole.
    with tempfile.TemporaryDirectory(prefix="posebatch-request-") as work:
        video = Path(work) / "body"
        await _spool(head, chunks, video, settings.max_video_bytes)
        reply = await runtime.handler.handle_video(video, options)
    return reply


def _check_declared(request: Request, limit: int | None) -> None:
    declared = request.headers.get("content-length")
    if limit is not None and declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared):,} bytes; the limit is {limit:,}")


async def _head(chunks: AsyncIterator[bytes]) -> bytes:
    """The body's first bytes, enough to tell a video from an image (all of it, if shorter)."""
    head = b""
    while len(head) < content_types.SNIFF_BYTES:
        try:
            head += await chunks.__anext__()
        except StopAsyncIteration:
            break
    return head


async def _rest(head: bytes, chunks: AsyncIterator[bytes], limit: int | None) -> bytes:
    parts = [head]
    size = len(head)
    async for chunk in chunks:
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit:,} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _spool(head: bytes, chunks: AsyncIterator[bytes], path: Path, limit: int | None) -> None:
    """The body to `path`, written off the event loop in runs of a few MB."""
    loop = asyncio.get_running_loop()
    size = pending_size = len(head)
    pending = [head]
    with path.open("wb") as file:
        async for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                raise PayloadTooLarge(f"the video body exceeds the limit of {limit:,} bytes (POSE_MAX_VIDEO_MB)")
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _SPOOL_RUN:
                await loop.run_in_executor(None, file.write, b"".join(pending))
                pending, pending_size = [], 0
        await loop.run_in_executor(None, file.write, b"".join(pending))


_SPOOL_RUN = 4 * 1024 * 1024


async def _read_body(request: Request, limit: int | None) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (before reading it all, if possible)."""
    declared = request.headers.get("content-length")
    if limit is not None and declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_response(runtime: Runtime, exc: PoseError) -> Response:
    settings = runtime.settings
    # Under Batch Transform a bad input answers 200 + error record: SageMaker would otherwise retry it
    # and fail the whole job over one file. "Not ready" stays a 503 so that SageMaker retries it.
    as_record = settings.sagemaker_batch and settings.batch_error_records and not isinstance(exc, ModelNotReady)
    status = 200 if as_record else exc.status
    if not as_record:
        log.info("invocation refused (%d %s): %s", exc.status, exc.code, exc.message)
    return JSONResponse(exc.to_dict(), status_code=status)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


async def _load(runtime: Runtime, load_engine: EngineLoader) -> None:
    settings = runtime.settings
    try:
        engine = await asyncio.to_thread(load_engine, settings)
    except Exception as exc:
        runtime.load_error = str(exc)
        log.error("model load failed: %s", exc, exc_info=not isinstance(exc, ModuleNotFoundError))
        runtime.on_load_failure()
        return
    runtime.handler = InvocationHandler(settings, engine, runtime.store)
