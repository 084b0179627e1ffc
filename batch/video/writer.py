"""The annotated video sink: H.264 in yuv420p, MP4 with `+faststart` (the `moov` index before `mdat`), so
that it plays in every browser, progressively. Ultralytics' own writer (OpenCV, MJPG `.avi` on Linux) does
not: it is not used.

Frames keep their source timestamps, shifted to start at 0, so a variable-frame-rate video stays in time;
a sampled one shows each posed frame until the next. B-frames are off, so that the muxer's durations
follow the frames' timestamps exactly (the file's duration is the posed frames'). `+faststart` rewrites
the file at close, which needs a real, seekable file: the sink writes to a path, never to memory.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import av
import numpy as np

CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
# The preset is the caller's (Settings.video_preset, POSE_VIDEO_PRESET). crf 23 is x264's default quality.
# bf=0: no frame reordering, so packet timestamps equal the frames' (see above).
ENCODER_OPTIONS = {"crf": "23", "bf": "0"}
_MAX_TIMEBASE_DENOMINATOR = 2**31 - 1


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides."""
    return max(2, width - width % 2), max(2, height - height % 2)


class Mp4Sink:
    """`write(bgr, pts_s)` frame by frame, in order; `close()` (or leaving the `with`) finishes the file."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        *,
        fps: float | None,
        time_base: Fraction,
        preset: str,
    ) -> None:
        self.path = path
        self.width, self.height = even_size(width, height)
        self.frames = 0
        if time_base.denominator > _MAX_TIMEBASE_DENOMINATOR or time_base <= 0:
            time_base = Fraction(1, 90_000)
        self._time_base = time_base
        self._container: Any = cast(Any, av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}))
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
        self._stream: Any = cast(
            Any, self._container.add_stream(CODEC, rate=rate, options={**ENCODER_OPTIONS, "preset": preset})
        )
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = PIXEL_FORMAT
        self._stream.time_base = time_base
        self._stream.codec_context.time_base = time_base
        self._first: float | None = None
        self._last_tick = -1

    def write(self, bgr: np.ndarray, pts_s: float) -> None:
        if bgr.shape[0] != self.height or bgr.shape[1] != self.width:
            bgr = np.ascontiguousarray(bgr[: self.height, : self.width])
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
        if self._first is None:
            self._first = pts_s
        tick = round((pts_s - self._first) / self._time_base)
        tick = max(tick, self._last_tick + 1)  # strictly increasing, whatever the source's rounding
        frame.pts = self._last_tick = tick
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> Mp4Sink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
