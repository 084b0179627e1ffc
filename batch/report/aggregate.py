"""Job statistics in one streaming pass over the keypoint records, in memory that does not grow with the
job: fixed-bin histograms, per-joint running sums, the first N records and the first M failures.

`JobStats.add(rel, raw)` takes one record's bytes; nothing else about the record is kept unless it is
sampled. A record that is not valid JSON, or neither a result nor an error record, counts as a failure
(`invalid_record`): the report shows it rather than stopping.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class JointStats:
    """One named keypoint over every detected person: a view of `JobStats`' running sums."""

    count: int
    confidence_sum: float
    found: int
    histogram: np.ndarray

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / self.count if self.count else 0.0

    @property
    def found_rate(self) -> float:
        return self.found / self.count if self.count else 0.0


@dataclass(frozen=True)
class _Parsed:
    heights: np.ndarray  # relative box height per person (NaN: image height unknown)
    confidences: np.ndarray  # persons x keypoints
    names: tuple[str, ...]


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
    error_codes: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    sample: list[tuple[str, int]] = field(default_factory=list)  # (rel, persons) of the first N results
    models: Counter[str] = field(default_factory=Counter)
    # Per joint, indexed by first appearance of its name (vectorised per record: one numpy op per array).
    _joint_index: dict[str, int] = field(default_factory=dict)
    _names_index: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    _joint_count: np.ndarray = field(default_factory=lambda: np.zeros(MAX_JOINTS, dtype=np.int64))
    _joint_sum: np.ndarray = field(default_factory=lambda: np.zeros(MAX_JOINTS, dtype=np.float64))
    _joint_found: np.ndarray = field(default_factory=lambda: np.zeros(MAX_JOINTS, dtype=np.int64))
    _joint_histogram: np.ndarray = field(default_factory=lambda: np.zeros((MAX_JOINTS, CONF_BINS), dtype=np.int64))

    @property
    def failures_not_listed(self) -> int:
        return self.failed - len(self.failures)

    @property
    def joints(self) -> dict[str, JointStats]:
        """name -> statistics, in the order the names first appeared (the model's keypoint order)."""
        return {
            name: JointStats(
                int(self._joint_count[i]),
                float(self._joint_sum[i]),
                int(self._joint_found[i]),
                self._joint_histogram[i].copy(),
            )
            for name, i in self._joint_index.items()
        }

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
            self._result(rel, str(record.get("model", "unknown"))[:200], parsed)
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

    def _result(self, rel: str, model: str, parsed: _Parsed) -> None:
        persons = len(parsed.heights)
        self.ok += 1
        self.persons += persons
        self.person_histogram[min(persons, PERSON_BINS - 1)] += 1
        if model in self.models or len(self.models) < MAX_MODELS:
            self.models[model] += 1
        if len(self.sample) < self.sample_size:
            self.sample.append((rel, persons))
        if not persons:
            return
        heights = parsed.heights[~np.isnan(parsed.heights)]
        np.add.at(self.height_histogram, np.minimum((heights * HEIGHT_BINS).astype(int), HEIGHT_BINS - 1), 1)
        index = self._indices(parsed.names)
        confidences = parsed.confidences[:, index >= 0]
        index = index[index >= 0]  # joints past MAX_JOINTS are not tracked
        np.add.at(self._joint_count, index, persons)  # add.at: a name repeated in one record counts twice
        np.add.at(self._joint_sum, index, confidences.sum(axis=0))
        np.add.at(self._joint_found, index, (confidences >= VISIBLE_CONF).sum(axis=0))
        bins = np.minimum((confidences * CONF_BINS).astype(int), CONF_BINS - 1)
        np.add.at(self._joint_histogram, (np.broadcast_to(index, bins.shape), bins), 1)

    def _indices(self, names: tuple[str, ...]) -> np.ndarray:
        """Each name's row in the joint arrays (-1: no room left); cached per keypoint set."""
        cached = self._names_index.get(names)
        if cached is not None:
            return cached
        rows = []
        for name in names:
            if name not in self._joint_index and len(self._joint_index) < MAX_JOINTS:
                self._joint_index[name] = len(self._joint_index)
            rows.append(self._joint_index.get(name, -1))
        index = np.asarray(rows, dtype=np.int64)
        if len(self._names_index) < MAX_MODELS:
            self._names_index[names] = index
        return index


def _parse_result(record: dict[str, Any]) -> _Parsed:
    """Relative box heights and the keypoint confidences of one result; raises on a malformed one, before
    any statistic changes, so a bad record is counted once, as a failure."""
    persons = record["persons"]
    image_height = float((record.get("image") or {}).get("height") or 0)
    if not persons:
        return _Parsed(np.zeros(0), np.zeros((0, 0)), ())
    boxes = np.asarray([p["box"] for p in persons], dtype=np.float64).reshape(len(persons), 4)
    keypoints = np.asarray([p.get("keypoints") or [] for p in persons], dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[2] < 3:
        keypoints = keypoints.reshape(len(persons), 0, 3)  # raises unless there are no keypoints at all
    confidences = keypoints[:, :, 2]
    if not np.isfinite(confidences).all() or not np.isfinite(boxes).all():
        raise ValueError("a box or keypoint confidence is not a finite number")
    names = [str(n) for n in (record.get("keypoint_names") or [])][: confidences.shape[1]]
    names += [f"keypoint_{i}" for i in range(len(names), confidences.shape[1])]
    heights = (boxes[:, 3] - boxes[:, 1]) / image_height if image_height > 0 else np.full(len(persons), np.nan)
    return _Parsed(np.clip(heights, 0.0, 1.0), np.clip(confidences, 0.0, 1.0), tuple(names))
