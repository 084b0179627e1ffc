"""What a video's container header says, read once before any frame is decoded, and the limits checked
on it: a video too long, or with too many pixels per second, is refused here at no decoding cost.

`open_video` turns every way a file can fail to be a video (0 bytes, not a container FFmpeg knows, no
video stream, a codec without a decoder) into one `invalid_video` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from batch.errors import InvalidVideo, VideoTooLarge
from batch.settings import Settings

FFMPEG_ERRORS = (av.FFmpegError, OSError, ValueError, EOFError)


@dataclass(frozen=True)
class VideoLimits:
    max_duration_s: float
    max_pixels_per_s: float
    max_frame_pixels: int

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoLimits:
        return cls(settings.video_max_duration_s, settings.video_max_mpix_per_s * 1e6, settings.max_image_pixels)


@dataclass(frozen=True)
class VideoInfo:
    """The header's account of the video stream (audio and other streams are ignored)."""

    container: str  # FFmpeg's demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"
    codec: str  # h264, hevc, vp9, av1...
    width: int  # stored frame size, before any rotation
    height: int
    fps: float | None  # average frame rate (None: the header does not say)
    duration_s: float | None  # None: the header does not say (checked while decoding instead)
    frames: int | None  # frames the header lists (None: not listed, as in Matroska)
    time_base: Fraction

    @property
    def frame_interval_s(self) -> float | None:
        return 1.0 / self.fps if self.fps else None


def open_video(path: Path) -> Any:
    """The opened container; `InvalidVideo` when the file is not a video FFmpeg can read."""
    if path.stat().st_size == 0:
        raise InvalidVideo("the video is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except FFMPEG_ERRORS as exc:
        raise InvalidVideo(
            f"not a video in a container FFmpeg reads (MP4, MOV, MKV, WebM, AVI): {_short(exc)}"
        ) from None
    if not container.streams.video:
        container.close()
        raise InvalidVideo("the file holds no video stream")
    return container


def read_info(container: Any) -> VideoInfo:
    """The video stream's header fields; `InvalidVideo` when its codec cannot be decoded here."""
    stream = container.streams.video[0]
    context = stream.codec_context
    if context is None or not context.name:
        raise InvalidVideo("the video's codec has no decoder here")
    width, height = int(context.width or 0), int(context.height or 0)
    if width <= 0 or height <= 0:
        raise InvalidVideo(f"the video stream has no pixels ({width}x{height})")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    time_base = stream.time_base or Fraction(1, 90_000)
    duration: float | None = None
    if stream.duration:
        duration = float(stream.duration * time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    return VideoInfo(
        container=str(container.format.name),
        codec=str(context.codec.canonical_name),  # the codec (av1), not the decoder chosen (libdav1d)
        width=width,
        height=height,
        fps=fps if fps and 0 < fps < 10_000 else None,
        duration_s=duration if duration and duration > 0 else None,
        frames=int(stream.frames) or None,
        time_base=Fraction(time_base),
    )


def check_limits(info: VideoInfo, limits: VideoLimits) -> None:
    """Refuse from the header alone (`VideoTooLarge`): too long, frames too large, too many pixels per second."""
    pixels = info.width * info.height
    if pixels > limits.max_frame_pixels:
        raise VideoTooLarge(
            f"video frames are {info.width}x{info.height} = {pixels:,} pixels; the limit is "
            f"{limits.max_frame_pixels:,} (POSE_MAX_IMAGE_PIXELS)"
        )
    if info.duration_s is not None and info.duration_s > limits.max_duration_s:
        raise VideoTooLarge(
            f"the video lasts {info.duration_s:,.1f} s; the limit is {limits.max_duration_s:,.0f} s "
            "(POSE_VIDEO_MAX_DURATION_S): split it, or sample it with a lower limit raised"
        )
    if info.fps is not None and pixels * info.fps > limits.max_pixels_per_s:
        raise VideoTooLarge(
            f"the video is {info.width}x{info.height} at {info.fps:.2f} fps = {pixels * info.fps / 1e6:,.0f} "
            f"megapixels per second; the limit is {limits.max_pixels_per_s / 1e6:,.0f} (POSE_VIDEO_MAX_MPIX_PER_S)"
        )


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
