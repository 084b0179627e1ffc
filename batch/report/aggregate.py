"""Job statistics in one streaming pass over the keypoint records, in memory that does not grow with the
job: fixed-bin histograms, per-joint running sums, the first N records and the first M failures.

`JobStats.add(rel, raw)` takes one record's bytes; nothing else about the record is kept unless it is
sampled. A record that is not valid JSON, or neither a result nor an error record, counts as a failure
(`invalid_record`): the report shows it rather than stopping.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PERSON_BINS = 21  # 0, 1, ..., 19, and ">= 20"
HEIGHT_BINS = 20  # relative box height (box height / image height), 0-1 in steps of 0.05
CONF_BINS = 10  # keypoint confidence, 0-1 in steps of 0.1
VISIBLE_CONF = 0.5  # a keypoint counts as found at this confidence (Ultralytics draws it from 0.5)
MAX_JOINTS = 256  # more distinct keypoint names than this are not tracked (not a pose model's output)
MAX_ERROR_CODES = 50
MAX_MODELS = 20
MAX_MESSAGE = 500


@dataclass(frozen=True)
class Failure:
    rel: str
    code: str
    message: str


@dataclass
class JointStats:
    """Running sums for one named keypoint over every detected person."""

    count: int = 0
    confidence_sum: float = 0.0
    found: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(CONF_BINS, dtype=np.int64))

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / self.count if self.count else 0.0

    @property
    def found_rate(self) -> float:
        return self.found / self.count if self.count else 0.0


@dataclass
class JobStats:
    sample_size: int = 48
    max_failures: int = 200
    images: int = 0
    ok: int = 0
    failed: int = 0
    persons: int = 0
    person_histogram: np.ndarray = field(default_factory=lambda: np.zeros(PERSON_BINS, dtype=np.int64))
    height_histogram: np.ndarray = field(default_factory=lambda: np.zeros(HEIGHT_BINS, dtype=np.int64))
    joints: dict[str, JointStats] = field(default_factory=dict)
    error_codes: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    sample: list[tuple[str, int]] = field(default_factory=list)  # (rel, persons) of the first N results
    models: Counter[str] = field(default_factory=Counter)

    @property
    def failures_not_listed(self) -> int:
        return self.failed - len(self.failures)

    def add(self, rel: str, raw: bytes) -> None:
        self.images += 1
        try:
            record = json.loads(raw)
        except ValueError as exc:
            self._fail(rel, "invalid_record", f"the record is not JSON: {exc}")
            return
        if not isinstance(record, dict):
            self._fail(rel, "invalid_record", "the record is not a JSON object")
        elif "error" in record:
            error = record["error"] if isinstance(record["error"], dict) else {}
            self._fail(rel, str(error.get("code", "error")), str(error.get("message", "")))
        elif isinstance(record.get("persons"), list):
            try:
                parsed = _parse_result(record)
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                self._fail(rel, "invalid_record", f"the result record is malformed: {exc!r}"[:MAX_MESSAGE])
                return
            self._result(rel, str(record.get("model", "unknown"))[:200], *parsed)
        else:
            self._fail(rel, "invalid_record", "neither a result (persons) nor an error record")

    def _fail(self, rel: str, code: str, message: str) -> None:
        self.failed += 1
        if code in self.error_codes or len(self.error_codes) < MAX_ERROR_CODES:
            self.error_codes[code] += 1
        else:
            self.error_codes["(other codes)"] += 1
        if len(self.failures) < self.max_failures:
            self.failures.append(Failure(rel, code, message[:MAX_MESSAGE]))

    def _result(self, rel: str, model: str, heights: list[float | None], joints: list[tuple[str, float]]) -> None:
        self.ok += 1
        self.persons += len(heights)
        self.person_histogram[min(len(heights), PERSON_BINS - 1)] += 1
        if model in self.models or len(self.models) < MAX_MODELS:
            self.models[model] += 1
        for relative in heights:
            if relative is not None:
                self.height_histogram[min(int(relative * HEIGHT_BINS), HEIGHT_BINS - 1)] += 1
        for name, confidence in joints:
            self._joint(name, confidence)
        if len(self.sample) < self.sample_size:
            self.sample.append((rel, len(heights)))

    def _joint(self, name: str, confidence: float) -> None:
        joint = self.joints.get(name)
        if joint is None:
            if len(self.joints) >= MAX_JOINTS:
                return
            joint = self.joints[name] = JointStats()
        joint.count += 1
        joint.confidence_sum += confidence
        joint.found += confidence >= VISIBLE_CONF
        joint.histogram[min(int(confidence * CONF_BINS), CONF_BINS - 1)] += 1


def _parse_result(record: dict[str, Any]) -> tuple[list[float | None], list[tuple[str, float]]]:
    """Relative box heights and (joint name, confidence) pairs of one result; raises on a malformed one,
    before any statistic changes, so a bad record is counted once, as a failure."""
    names = record.get("keypoint_names") or []
    image_height = float((record.get("image") or {}).get("height") or 0)
    heights: list[float | None] = []
    joints: list[tuple[str, float]] = []
    for person in record["persons"]:
        _x1, y1, _x2, y2 = (float(v) for v in person["box"])
        heights.append(min(max((y2 - y1) / image_height, 0.0), 1.0) if image_height > 0 else None)
        for index, keypoint in enumerate(person.get("keypoints") or []):
            name = str(names[index]) if index < len(names) else f"keypoint_{index}"
            confidence = float(keypoint[2])
            if not math.isfinite(confidence):
                raise ValueError(f"keypoint confidence {confidence} of {name}")
            joints.append((name, min(max(confidence, 0.0), 1.0)))
    return heights, joints
