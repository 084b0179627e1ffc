"""The annotated image on a known pose: left and right limbs in their own colours, hidden keypoints and
the edges to them not drawn, score labels that do not overlap; on a thumbnail and on a large photo."""

from __future__ import annotations

import numpy as np
import pytest

from batch.annotate import CENTRE, LEFT, RIGHT, draw, place_label
from batch.inference.keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON
from batch.schema import Person, PoseResult, Thresholds

# A standing person in a unit square (x right, y down); the image's right is the person's left.
POSE = {
    "nose": (0.50, 0.10), "left_eye": (0.53, 0.08), "right_eye": (0.47, 0.08), "left_ear": (0.56, 0.09),
    "right_ear": (0.44, 0.09), "left_shoulder": (0.62, 0.25), "right_shoulder": (0.38, 0.25),
    "left_elbow": (0.70, 0.40), "right_elbow": (0.30, 0.40), "left_wrist": (0.74, 0.55),
    "right_wrist": (0.26, 0.55), "left_hip": (0.58, 0.55), "right_hip": (0.42, 0.55),
    "left_knee": (0.60, 0.72), "right_knee": (0.40, 0.72), "left_ankle": (0.61, 0.90), "right_ankle": (0.39, 0.90),
}  # fmt: skip
HIDDEN = "right_ankle"  # under the table: confidence 0.1


def result_for(width: int, height: int) -> PoseResult:
    keypoints = [(POSE[n][0] * width, POSE[n][1] * height, 0.1 if n == HIDDEN else 0.95) for n in COCO_KEYPOINT_NAMES]
    person = Person(score=0.93, box=(0.2 * width, 0.03 * height, 0.8 * width, 0.95 * height), keypoints=keypoints)
    return PoseResult(
        model="test",
        image={"width": width, "height": height},
        keypoint_names=list(COCO_KEYPOINT_NAMES),
        skeleton=list(COCO_SKELETON),
        persons=[person],
        thresholds=Thresholds(conf=0.25, iou=0.7, max_det=300, imgsz=640),
    )


def colour_near(canvas: np.ndarray, x: float, y: float) -> tuple[int, int, int]:
    """The strongest pixel around a point (5x5): a 1 px anti-aliased line lands on one of them fully."""
    xi, yi = round(x), round(y)
    patch = canvas[yi - 2 : yi + 3, xi - 2 : xi + 3].reshape(-1, 3).astype(int)
    return tuple(int(v) for v in patch[patch.sum(axis=1).argmax()])  # type: ignore[return-value]


def midpoint(a: str, b: str, width: int, height: int) -> tuple[float, float]:
    return ((POSE[a][0] + POSE[b][0]) / 2 * width, (POSE[a][1] + POSE[b][1]) / 2 * height)


def close(found: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return max(abs(f - e) for f, e in zip(found, expected, strict=True)) <= 40


@pytest.mark.parametrize(("width", "height"), [(200, 260), (3000, 4000)], ids=["thumbnail", "photo"])
def test_limbs_are_coloured_by_side_and_hidden_points_are_not_drawn(width: int, height: int) -> None:
    canvas = draw(np.zeros((height, width, 3), np.uint8), result_for(width, height))

    left_arm = colour_near(canvas, *midpoint("left_elbow", "left_wrist", width, height))
    right_arm = colour_near(canvas, *midpoint("right_elbow", "right_wrist", width, height))
    assert close(left_arm, LEFT) and close(right_arm, RIGHT)
    assert not close(left_arm, right_arm)  # the point: left and right differ
    assert close(colour_near(canvas, *midpoint("left_hip", "left_knee", width, height)), LEFT)
    assert close(colour_near(canvas, *midpoint("left_shoulder", "right_shoulder", width, height)), CENTRE)
    # The hidden ankle: no joint, and no shin reaching it (the visible left shin is drawn).
    assert colour_near(canvas, POSE[HIDDEN][0] * width, POSE[HIDDEN][1] * height) == (0, 0, 0)
    assert colour_near(canvas, *midpoint("right_knee", HIDDEN, width, height)) == (0, 0, 0)
    assert close(colour_near(canvas, *midpoint("left_knee", "left_ankle", width, height)), LEFT)


def test_score_labels_of_overlapping_people_do_not_overlap() -> None:
    placed: list[tuple[int, int, int, int]] = []
    boxes = [(100, 100, 300, 500), (105, 102, 305, 510), (98, 99, 290, 480)]  # a group, boxes nearly equal
    rects = [place_label(box, (60, 20), placed, (1000, 800)) for box in boxes]
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), rects
    assert all(r[0] >= 0 and r[2] <= 1000 and r[1] >= 0 and r[3] <= 800 for r in rects)


def test_a_label_at_the_top_edge_stays_inside_the_image() -> None:
    rect = place_label((10, 0, 200, 300), (60, 20), [], (400, 400))
    assert rect[1] >= 0 and rect[3] <= 400
