"""Keypoint names and skeleton edges: COCO's for 17-keypoint models, generic ones otherwise."""

from __future__ import annotations

COCO_KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# COCO's skeleton (person_keypoints.json), 0-based.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


def keypoint_names(count: int, names_from_checkpoint: list[str] | None = None) -> list[str]:
    if names_from_checkpoint and len(names_from_checkpoint) == count:
        return list(names_from_checkpoint)
    if count == len(COCO_KEYPOINT_NAMES):
        return list(COCO_KEYPOINT_NAMES)
    return [f"keypoint_{i}" for i in range(count)]


def skeleton(count: int) -> list[tuple[int, int]]:
    """COCO's edges for COCO models; a custom keypoint set has no known skeleton, so none is drawn."""
    return list(COCO_SKELETON) if count == len(COCO_KEYPOINT_NAMES) else []
