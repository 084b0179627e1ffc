"""Where each flow hands a video over, one call each, and where its outputs go:

- `pose_video_files`: `pose-batch predict` (local files in, local files out);
- `pose_video_request`: an `/invocations` body that is a video (asynchronous inference: the S3 object is the
  body; outputs at the `keypoints_output` / `annotated_output` custom attributes);
- `pose_manifest_video`: a Batch Transform manifest line naming a video (fetched from S3 by the container).

Every flow gives the same JSON Lines for the same file and options: the same pipeline (`pipeline.py`) runs
under each, on a local copy of the video (PyAV reads files; a video is never held in memory whole).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from batch import content_types
from batch.custom_attributes import InferenceOptions
from batch.errors import PoseError, error_record
from batch.manifest_line import ManifestLine
from batch.s3_uri import S3Uri
from batch.schema import ErrorDetail, ManifestLineResult
from batch.video.pipeline import PosedVideo, pose_video
from batch.video.records import VideoHeader

if TYPE_CHECKING:
    from batch.inference.engine import PoseEngine


class VideoStore(Protocol):
    """What the videos need of the container's S3 access (`transform_handler.S3Store`)."""

    def check_allowed(self, uri: S3Uri) -> None: ...
    async def put(self, uri: S3Uri, data: bytes, content_type: str) -> None: ...
    async def download(self, uri: S3Uri, path: Path, max_bytes: int | None) -> None: ...
    async def upload(self, path: Path, uri: S3Uri, content_type: str) -> None: ...


def error_lines(code: str, message: str) -> bytes:
    """A video's record when it could not be posed at all: its error record, as the file's one line."""
    return (json.dumps(error_record(code, message)) + "\n").encode()


async def pose_video_files(
    engine: PoseEngine, video: Path, options: InferenceOptions, *, source: str, keypoints: Path, annotated: Path
) -> VideoHeader:
    """`predict`: pose a local video; its JSON Lines and MP4 land at `keypoints` and `annotated`. PoseError
    for a file that cannot be posed (the caller writes its error record)."""
    keypoints.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".posebatch-video-", dir=keypoints.parent) as work:
        posed = await pose_video(engine, video, options, Path(work), source=source, annotate=True)
        shutil.move(posed.keypoints, keypoints)
        if posed.annotated is not None:
            annotated.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(posed.annotated, annotated)
    return posed.header


async def pose_video_request(
    engine: PoseEngine, store: VideoStore, video: Path, options: InferenceOptions, work_dir: Path
) -> tuple[bytes, str]:
    """An `/invocations` video body (already spooled to `video`). With `keypoints_output` (async inference),
    both outputs are written to S3 and the answer is the header line; without, the answer is the whole JSON
    Lines. A video that cannot be posed gets its error record at `keypoints_output` and raises."""
    for uri in (options.keypoints_output, options.annotated_output):
        if uri is not None:
            store.check_allowed(uri)  # refused before any decoding
    try:
        posed = await pose_video(
            engine,
            video,
            options,
            work_dir,
            source=options.source,
            annotate=options.annotated_output is not None,
            time_limit_s=engine.settings.video_time_limit_s,
        )
    except PoseError as exc:
        if options.keypoints_output is not None:
            await store.put(options.keypoints_output, error_lines(exc.code, exc.message), content_types.JSON_LINES)
        raise
    if options.keypoints_output is None:
        return posed.keypoints.read_bytes(), content_types.JSON_LINES
    await _upload(store, posed, options.keypoints_output, options.annotated_output)
    return posed.header.model_dump_json(exclude_none=True).encode(), content_types.JSON


async def pose_manifest_video(
    engine: PoseEngine, store: VideoStore, line: ManifestLine, options: InferenceOptions
) -> ManifestLineResult:
    """A manifest line naming a video: fetched to a local file, posed, both outputs written where the line
    says. A video that cannot be posed answers an error line (the finaliser writes its record)."""
    reference = str(line.image)
    started = time.monotonic()
    try:
        for output in (line.keypoints, line.annotated):
            if output is not None:
                store.check_allowed(output)
        with tempfile.TemporaryDirectory(prefix="posebatch-video-") as work:
            local = Path(work) / "input"
            await store.download(line.image, local, engine.settings.max_video_bytes)
            remaining = engine.settings.video_time_limit_s - (time.monotonic() - started)
            posed = await pose_video(
                engine,
                local,
                options,
                Path(work),
                source=reference,
                annotate=line.annotated is not None,
                time_limit_s=max(remaining, 1.0),
            )
            outputs = await _upload(store, posed, line.keypoints, line.annotated)
    except PoseError as exc:
        return ManifestLineResult(
            image=reference, status="error", error=ErrorDetail(code=exc.code, message=exc.message)
        )
    return ManifestLineResult(image=reference, status="ok", video=posed.header, outputs=outputs)


async def _upload(
    store: VideoStore, posed: PosedVideo, keypoints: S3Uri | None, annotated: S3Uri | None
) -> dict[str, str]:
    outputs: dict[str, str] = {}
    if annotated is not None and posed.annotated is not None:
        await store.upload(posed.annotated, annotated, content_types.MP4)
        outputs["annotated"] = str(annotated)
    if keypoints is not None:  # last: a record at the mirrored key means the video is done
        await store.upload(posed.keypoints, keypoints, content_types.JSON_LINES)
        outputs["keypoints"] = str(keypoints)
    return outputs
