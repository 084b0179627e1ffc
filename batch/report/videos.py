"""The report's videos: each video's header, persons per second over its frames, and a poster frame from
its annotated MP4, in one streaming pass over its JSON Lines (a frame line is parsed and dropped).

Memory is bounded whatever the job: per video one float per second of video for the plot, and only the
first `max_videos` videos are kept in detail (the rest are counted). A video whose record is an error
record is a failure, listed with its code and message.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

MAX_VIDEOS = 24
POSTER_BYTES = 8 * 1024 * 1024  # a +faststart MP4's index and first frames come first: no need to read more
MAX_MESSAGE = 500


@dataclass
class VideoEntry:
    rel: str
    header: dict[str, Any]
    persons_per_second: np.ndarray  # mean persons per posed frame, per second of video


@dataclass(frozen=True)
class VideoFailure:
    rel: str
    code: str
    message: str


@dataclass
class VideoStats:
    max_videos: int = MAX_VIDEOS
    videos: int = 0
    frames_posed: int = 0
    seconds: float = 0.0
    truncated: int = 0
    entries: list[VideoEntry] = field(default_factory=list)
    failures: list[VideoFailure] = field(default_factory=list)
    failed: int = 0

    @property
    def not_shown(self) -> int:
        return self.videos - self.failed - len(self.entries)

    def add(self, rel: str, lines: Iterable[bytes]) -> None:
        """One video's JSON Lines: its header (or error record), then its frames."""
        self.videos += 1
        iterator = iter(lines)
        try:
            first = json.loads(next(iterator))
        except (StopIteration, ValueError) as exc:
            self._fail(rel, "invalid_record", f"the video's record is not JSON Lines: {exc!r}")
            return
        if not isinstance(first, dict) or first.get("kind") != "video":  # an error record, or not a header
            found = first.get("error") if isinstance(first, dict) else None
            error: dict[str, Any] = found if isinstance(found, dict) else {}
            self._fail(rel, str(error.get("code", "invalid_record")), str(error.get("message", "not a video header")))
            return
        per_second = _PerSecond()
        for raw in iterator:
            try:
                frame = json.loads(raw)
                per_second.add(float(frame["pts"]), len(frame["persons"]))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line is skipped; the header's counts stand
        self.frames_posed += int(first.get("frames_posed") or 0)
        self.seconds += float(first.get("duration") or 0.0)
        self.truncated += bool(first.get("truncated"))
        if len(self.entries) < self.max_videos:
            self.entries.append(VideoEntry(rel, first, per_second.means()))

    def _fail(self, rel: str, code: str, message: str) -> None:
        self.failed += 1
        if len(self.failures) < self.max_videos:
            self.failures.append(VideoFailure(rel, code, message[:MAX_MESSAGE]))


class _PerSecond:
    def __init__(self) -> None:
        self.start: float | None = None
        self.sums: list[float] = []
        self.counts: list[int] = []

    def add(self, pts: float, persons: int) -> None:
        if self.start is None:
            self.start = pts
        second = max(0, math.floor(pts - self.start))
        while len(self.sums) <= second:
            self.sums.append(0.0)
            self.counts.append(0)
        self.sums[second] += persons
        self.counts[second] += 1

    def means(self) -> np.ndarray:
        sums, counts = np.asarray(self.sums, dtype=float), np.asarray(self.counts, dtype=float)
        means: np.ndarray = np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)
        return means


def poster_jpeg(mp4_start: bytes | None, size: int = 240) -> bytes | None:
    """The first frame of an annotated MP4 (its first bytes suffice: +faststart), as a small JPEG."""
    if not mp4_start:
        return None
    try:
        import av

        with av.open(io.BytesIO(mp4_start), mode="r") as container:
            rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
        image = Image.fromarray(rgb)
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=80)
        return buffer.getvalue()
    except Exception:  # a missing, cut or unreadable MP4 gets no poster; the report goes on
        return None
