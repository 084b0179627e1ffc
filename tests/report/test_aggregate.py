"""The streaming aggregates, table-driven: every kind of record lands in the right counter and bin, bad
records become failures without touching the histograms, and memory stays bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batch.report.aggregate import (
    HEIGHT_BINS,
    MAX_ERROR_CODES,
    MAX_JOINTS,
    PERSON_BINS,
    JobStats,
)

NAMES = ["nose", "left_eye"]


def person(y1: float, y2: float, confidences: tuple[float, ...] = (0.9, 0.2)) -> dict[str, Any]:
    return {"score": 0.8, "box": [10.0, y1, 50.0, y2], "keypoints": [[20.0, 30.0, c] for c in confidences]}


def result(*persons: dict[str, Any], height: int = 100) -> bytes:
    record = {
        "model": "m.pt",
        "image": {"width": 100, "height": height},
        "keypoint_names": NAMES,
        "skeleton": [],
        "persons": list(persons),
        "thresholds": {"conf": 0.25, "iou": 0.7, "max_det": 300, "imgsz": 640},
    }
    return json.dumps(record).encode()


def error(code: str, message: str = "bad") -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


# (records, images, ok, failed, persons, {error code: n})
CASES = {
    "empty job": ([], 0, 0, 0, 0, {}),
    "no person": ([result()], 1, 1, 0, 0, {}),
    "two persons": ([result(person(0, 50), person(0, 100))], 1, 1, 0, 2, {}),
    "error record": ([error("invalid_image")], 1, 0, 1, 0, {"invalid_image": 1}),
    "not json": ([b"{nope"], 1, 0, 1, 0, {"invalid_record": 1}),
    "json list": ([b"[1, 2]"], 1, 0, 1, 0, {"invalid_record": 1}),
    "neither": ([b'{"persons_missing": 1}'], 1, 0, 1, 0, {"invalid_record": 1}),
    "error not an object": ([b'{"error": "text"}'], 1, 0, 1, 0, {"error": 1}),
    "malformed box": ([result({"score": 1, "box": [1, 2], "keypoints": []})], 1, 0, 1, 0, {"invalid_record": 1}),
    "ragged keypoints": (
        [result(person(0, 10, (0.5,)), person(0, 10, (0.5, 0.5)))],
        1,
        0,
        1,
        0,
        {"invalid_record": 1},
    ),
    "keypoints without confidence": (
        [result({"score": 1, "box": [0, 0, 1, 1], "keypoints": [[1.0, 2.0]]})],
        1,
        0,
        1,
        0,
        {"invalid_record": 1},
    ),
    "person without keypoints": ([result({"score": 1, "box": [0, 0, 1, 1], "keypoints": []})], 1, 1, 0, 1, {}),
    "nan confidence": ([result(person(0, 10, (float("nan"), 0.5)))], 1, 0, 1, 0, {"invalid_record": 1}),
    "mixed": (
        [result(person(0, 10)), error("a"), error("a"), error("b"), result()],
        5,
        2,
        3,
        1,
        {"a": 2, "b": 1},
    ),
}


@pytest.mark.parametrize(("records", "images", "ok", "failed", "persons", "codes"), CASES.values(), ids=CASES)
def test_counts(records: list[bytes], images: int, ok: int, failed: int, persons: int, codes: dict[str, int]) -> None:
    stats = JobStats()
    for index, raw in enumerate(records):
        stats.add(f"img{index}.jpg", raw)
    assert (stats.images, stats.ok, stats.failed, stats.persons) == (images, ok, failed, persons)
    assert dict(stats.error_codes) == codes
    assert int(stats.person_histogram.sum()) == ok  # one bin per result, none for a failure
    assert int(stats.height_histogram.sum()) == persons
    assert len(stats.failures) == failed


# (persons in one image, expected person-histogram bin)
PERSON_COUNT_BINS = {"zero": (0, 0), "three": (3, 3), "last exact": (19, 19), "overflow": (45, PERSON_BINS - 1)}


@pytest.mark.parametrize(("count", "expected_bin"), PERSON_COUNT_BINS.values(), ids=PERSON_COUNT_BINS)
def test_persons_histogram_bins(count: int, expected_bin: int) -> None:
    stats = JobStats()
    stats.add("a.jpg", result(*(person(0, 10) for _ in range(count))))
    assert stats.person_histogram[expected_bin] == 1
    assert stats.persons == count


# (box y1, y2 in an image 100 px high, expected relative-height bin)
HEIGHT_CASES = {
    "tiny": (0, 1, 0),
    "a quarter": (0, 25, 5),
    "just under half": (0, 49.9, 9),
    "whole image": (0, 100, HEIGHT_BINS - 1),
    "larger than the image": (-20, 150, HEIGHT_BINS - 1),
    "inverted box": (50, 40, 0),
}


@pytest.mark.parametrize(("y1", "y2", "expected_bin"), HEIGHT_CASES.values(), ids=HEIGHT_CASES)
def test_box_height_bins(y1: float, y2: float, expected_bin: int) -> None:
    stats = JobStats()
    stats.add("a.jpg", result(person(y1, y2)))
    assert stats.height_histogram[expected_bin] == 1


def test_per_joint_running_sums() -> None:
    stats = JobStats()
    stats.add("a.jpg", result(person(0, 10, (0.9, 0.2)), person(0, 10, (0.7, 0.6))))
    stats.add("b.jpg", result(person(0, 10, (1.0, 0.0))))
    assert list(stats.joints) == NAMES
    nose, eye = stats.joints["nose"], stats.joints["left_eye"]
    assert nose.count == eye.count == 3
    assert nose.mean_confidence == pytest.approx((0.9 + 0.7 + 1.0) / 3)
    assert eye.mean_confidence == pytest.approx((0.2 + 0.6 + 0.0) / 3)
    assert (nose.found_rate, eye.found_rate) == (pytest.approx(1.0), pytest.approx(1 / 3))
    assert nose.histogram.tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 2]  # 0.7 -> bin 7; 0.9 and 1.0 -> bin 9
    assert eye.histogram.tolist() == [1, 0, 1, 0, 0, 0, 1, 0, 0, 0]


def test_unnamed_keypoints_get_generic_names() -> None:
    stats = JobStats()
    stats.add("a.jpg", result(person(0, 10, (0.5, 0.5, 0.5))))  # three keypoints, two names
    assert list(stats.joints) == [*NAMES, "keypoint_2"]


def test_more_joints_than_tracked_are_dropped_not_fatal() -> None:
    stats = JobStats()
    record = json.loads(result(person(0, 10, tuple(0.5 for _ in range(MAX_JOINTS + 5)))))
    record["keypoint_names"] = [f"j{i}" for i in range(MAX_JOINTS + 5)]
    stats.add("a.jpg", json.dumps(record).encode())
    assert len(stats.joints) == MAX_JOINTS and stats.ok == 1


def test_samples_and_failures_are_bounded() -> None:
    stats = JobStats(sample_size=3, max_failures=2)
    for index in range(10):
        stats.add(f"ok{index}.jpg", result(person(0, 10)))
        stats.add(f"bad{index}.jpg", error(f"code{index % 2}"))
    assert [rel for rel, _ in stats.sample] == ["ok0.jpg", "ok1.jpg", "ok2.jpg"]
    assert [f.rel for f in stats.failures] == ["bad0.jpg", "bad1.jpg"]
    assert stats.failures_not_listed == 8


def test_error_codes_are_bounded() -> None:
    stats = JobStats(max_failures=0)
    for index in range(MAX_ERROR_CODES + 30):
        stats.add("x.jpg", error(f"code{index}"))
    assert len(stats.error_codes) == MAX_ERROR_CODES + 1
    assert stats.error_codes["(other codes)"] == 30
    assert stats.failed == MAX_ERROR_CODES + 30


def test_long_messages_are_cut() -> None:
    stats = JobStats()
    stats.add("x.jpg", error("big", "m" * 100_000))
    assert len(stats.failures[0].message) == 500
