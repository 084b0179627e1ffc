"""The report's video statistics from JSON Lines, without a model: persons per second, failures, bounds."""

from __future__ import annotations

import json

from batch.report.videos import VideoStats, poster_jpeg


def lines(frames: list[tuple[float, int]], **header: object) -> list[bytes]:
    head = {"kind": "video", "frames_posed": len(frames), "duration": 3.0, **header}
    body = [{"frame": i, "pts": pts, "persons": [{}] * persons} for i, (pts, persons) in enumerate(frames)]
    return [json.dumps(head).encode(), *(json.dumps(f).encode() for f in body)]


def test_persons_per_second_is_the_mean_per_posed_frame() -> None:
    stats = VideoStats()
    stats.add("a.mp4", lines([(0.0, 1), (0.5, 3), (1.2, 2), (2.9, 0)]))
    (entry,) = stats.entries
    assert list(entry.persons_per_second) == [2.0, 2.0, 0.0]
    assert (stats.videos, stats.failed, stats.frames_posed) == (1, 0, 4)


def test_error_records_damaged_lines_and_bounds() -> None:
    stats = VideoStats(max_videos=1)
    stats.add("bad.mp4", [json.dumps({"error": {"code": "invalid_video", "message": "not a video"}}).encode()])
    stats.add("empty.mp4", [])
    stats.add("a.mp4", [*lines([(0.0, 1)], truncated=True), b"{cut", *lines([(1.5, 2)])[1:]])
    stats.add("b.mp4", lines([(0.0, 1)]))
    assert [(f.rel, f.code) for f in stats.failures] == [("bad.mp4", "invalid_video")]  # bounded: the first only
    assert stats.failed == 2 and stats.truncated == 1 and [e.rel for e in stats.entries] == ["a.mp4"]
    assert list(stats.entries[0].persons_per_second) == [1.0, 2.0]  # the damaged line is skipped
    assert stats.not_shown == 1


def test_no_poster_from_a_missing_or_broken_mp4() -> None:
    assert poster_jpeg(None) is None and poster_jpeg(b"\x00\x00\x00\x18ftypmp42 broken") is None
