"""A video's frames as a generator: decoded one at a time in presentation order (flat memory for any
length), upright (the display matrix's rotation applied, as phones record it), with the container's own
timestamps (`frame.pts * time_base`: right under a variable frame rate), sampled by `frame_stride` or `fps`.

Only the video stream is demuxed: audio is never read. Damage ends the stream, never the run: a file
that breaks off (truncated upload) or holds corrupt data keeps every frame decoded before it, and
`FrameSource.damage` says what happened; a file that ends early without an error (a Matroska cut
short) is found by comparing with its header's duration and frame count.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from batch.errors import InvalidVideo
from batch.video.probe import FFMPEG_ERRORS, VideoInfo, VideoLimits, check_limits, open_video, read_info


@dataclass(frozen=True)
class Frame:
    index: int  # position among the decoded frames, from 0
    pts: float  # presentation time, seconds, as the container states it
    rgb: np.ndarray  # (height, width, 3) uint8, upright


@dataclass(frozen=True)
class Sampling:
    """Which decoded frames are posed: every `frame_stride`-th, or (by timestamp) `fps` per second."""

    frame_stride: int = 1
    fps: float | None = None


@dataclass(frozen=True)
class Stop:
    """Why decoding ended before the end of the file (the record says it)."""

    code: Literal["truncated", "time_limit", "duration_limit"]
    message: str


class FrameSource:
    """Opens the video and checks its header at once (raising `InvalidVideo` or `VideoTooLarge`);
    `frames()` then yields the sampled frames. Not thread-safe: one consumer at a time."""

    def __init__(self, path: Path, limits: VideoLimits, sampling: Sampling = Sampling()) -> None:
        self._container: Any = open_video(path)
        try:
            self.info: VideoInfo = read_info(self._container)
            check_limits(self.info, limits)
        except BaseException:
            self._container.close()
            raise
        self._limits = limits
        self._sampling = sampling
        self._stop_requested: Stop | None = None
        self._lock = threading.Lock()
        self.decoded = 0  # frames decoded (posed or not)
        self.rotation = 0  # degrees counter-clockwise the frames are turned to be upright
        self.first_pts: float | None = None
        self.last_pts: float | None = None  # of the last decoded frame
        self.stopped: Stop | None = None

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as displayed."""
        if self.rotation % 180:
            return self.info.height, self.info.width
        return self.info.width, self.info.height

    @property
    def end_s(self) -> float | None:
        """Where the decoded part ends: the last frame's timestamp plus one frame interval."""
        if self.last_pts is None:
            return None
        return self.last_pts + (self.info.frame_interval_s or 0.0)

    def request_stop(self, code: Literal["time_limit"], message: str) -> None:
        """Stop at the next frame (from any thread): a time limit reached."""
        with self._lock:
            self._stop_requested = self._stop_requested or Stop(code, message)

    def frames(self) -> Generator[Frame, None, None]:
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's frame and slice threads: decoding keeps pace with inference
        next_due: float | None = None
        previous: float | None = None
        interval = self.info.frame_interval_s or 1 / 30
        try:
            for frame in self._decoded(stream):
                if self._stop_requested is not None:
                    self.stopped = self._stop_requested
                    return
                pts = (
                    float(frame.time)
                    if frame.time is not None
                    else (previous + interval if previous is not None else 0.0)
                )
                index = self.decoded
                self.decoded += 1
                if self.first_pts is None:
                    self.first_pts = pts
                self.last_pts = previous = pts
                if self.info.duration_s is None and pts - self.first_pts > self._limits.max_duration_s:
                    self.stopped = Stop(
                        "duration_limit",
                        f"the header states no duration and the video passed the limit of "
                        f"{self._limits.max_duration_s:,.0f} s (POSE_VIDEO_MAX_DURATION_S): no later frame was posed",
                    )
                    return
                if self._sampling.fps:
                    if next_due is not None and pts < next_due - 1e-6:
                        continue
                    step = 1.0 / self._sampling.fps
                    next_due = (next_due if next_due is not None else pts) + step
                    while next_due <= pts + 1e-6:  # after a gap (VFR): one frame now, not a burst
                        next_due += step
                elif index % self._sampling.frame_stride:
                    continue
                yield Frame(index, pts, self._upright(frame))
        finally:
            self._container.close()
        self._check_complete()

    def _decoded(self, stream: Any) -> Iterator[Any]:
        """Frames in presentation order until the end or the first damage (kept in `stopped`)."""
        try:
            for packet in self._container.demux(stream):
                yield from packet.decode()
            return
        except FFMPEG_ERRORS as exc:
            damage = exc
        with contextlib.suppress(*FFMPEG_ERRORS):  # frames the decoder holds (reordering, threads) came before it
            yield from stream.codec_context.decode(None)
        if self.decoded == 0:
            raise InvalidVideo(f"no frame of the video could be decoded: {_short(damage)}")
        self.stopped = Stop(
            "truncated", f"decoding stopped after frame {self.decoded - 1}: the file is damaged ({_short(damage)})"
        )

    def _check_complete(self) -> None:
        if self.decoded == 0 and self.stopped is None:
            raise InvalidVideo("the video holds no decodable frame")
        if self.stopped is not None:
            return
        info = self.info
        expected_end = info.duration_s
        end = self.end_s
        tolerance = max(0.5, 2 * (info.frame_interval_s or 0.0))
        if info.frames and self.decoded < info.frames - 1:
            self.stopped = Stop(
                "truncated", f"the file ends after {self.decoded} of the {info.frames} frames its header lists"
            )
        elif (
            expected_end is not None
            and end is not None
            and self.first_pts is not None
            and end - self.first_pts < expected_end - tolerance
        ):
            self.stopped = Stop(
                "truncated", f"the file ends at {end:.3f} s of the {expected_end:.3f} s its header states"
            )

    def _upright(self, frame: Any) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        self.rotation = int(frame.rotation or 0)  # the display matrix's, counter-clockwise, -180..180
        turns = round(self.rotation / 90) % 4
        if turns:
            rgb = np.rot90(rgb, turns)
        return np.ascontiguousarray(rgb)

    def close(self) -> None:
        self._container.close()


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
