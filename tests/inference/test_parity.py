"""The parity rule (benchmarks/parity.py) on made-up persons: it fails what it must fail."""

from __future__ import annotations

import numpy as np

from benchmarks import parity


def persons(*people: tuple[list[float], float], shift: float = 0.0) -> parity.Persons:
    """Each person: its box and score; 17 visible keypoints spread inside the box, moved by `shift` px."""
    boxes = np.array([box for box, _ in people], dtype=np.float64).reshape(-1, 4)
    keypoints = np.zeros((len(people), 17, 3))
    for i, (box, _) in enumerate(people):
        keypoints[i, :, 0] = np.linspace(box[0], box[2], 17) + shift
        keypoints[i, :, 1] = np.linspace(box[1], box[3], 17)
        keypoints[i, :, 2] = 0.9
    return parity.Persons(boxes, np.array([score for _, score in people]), keypoints)


A = ([10.0, 10.0, 110.0, 210.0], 0.9)
B = ([300.0, 50.0, 380.0, 250.0], 0.26)  # just above conf 0.25


def side(seen: parity.Persons, relaxed: parity.Persons | None = None) -> parity.Side:
    return parity.Side({"x.jpg": seen}, {"x.jpg": relaxed if relaxed is not None else seen})


def test_identical_answers_pass_both_tolerances() -> None:
    for tolerance in (parity.EXACT, parity.REDUCED):
        report = parity.compare(side(persons(A, B)), side(persons(A, B)), tolerance)
        assert report.passed and report.pairs == 2 and report.mean_px == 0.0


def test_exact_fails_a_missing_person_and_a_shift() -> None:
    assert not parity.compare(side(persons(A, B)), side(persons(A)), parity.EXACT).passed
    report = parity.compare(side(persons(A, B, shift=1.5)), side(persons(A, B)), parity.EXACT)
    assert not report.passed and "mean keypoint distance 1.500" in report.problems()


def test_reduced_takes_a_partner_found_only_with_relaxed_thresholds() -> None:
    # Ultralytics has B at 0.24 (below 0.25, above 0.20): absent from what it shows, present relaxed.
    theirs = side(persons(A), persons(A, (B[0], 0.24)))
    assert parity.compare(side(persons(A, B)), theirs, parity.REDUCED).passed


def test_reduced_fails_a_person_without_any_partner_and_visible_keypoints_apart() -> None:
    report = parity.compare(side(persons(A, B)), side(persons(A)), parity.REDUCED)
    assert not report.passed and report.unpaired == ["x.jpg: ours score 0.260"]
    assert not parity.compare(side(persons(A, shift=1.2)), side(persons(A)), parity.REDUCED).passed
