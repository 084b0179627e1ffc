"""Annotated images: boxes, skeleton and joints drawn on the image, encoded as JPEG.

The image drawn on may be smaller than the original (a reduced JPEG decode, or capped to
`POSE_ANNOTATED_MAX_SIDE`): results are in original pixels and are scaled to the pixels drawn on.
Line widths, joint radii and text scale with the image, so the drawing is legible on a 200 px
thumbnail and on a 6000 px photo alike.
"""

from __future__ import annotations

import cv2
import numpy as np

from batch.schema import PoseResult

KEYPOINT_MIN_CONFIDENCE = 0.5  # Ultralytics' plotting threshold
_BOX = (56, 56, 255)  # BGR
_LIMB = (255, 128, 0)
_JOINT = (0, 255, 0)
_OUTLINE = (0, 0, 0)


def fitted_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) with the longer side at most `max_side` (0: unchanged), aspect ratio kept."""
    longer = max(height, width)
    if max_side <= 0 or longer <= max_side:
        return height, width
    ratio = max_side / longer
    return max(round(height * ratio), 1), max(round(width * ratio), 1)


def fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """The image shrunk (area averaging) so that its longer side is at most `max_side`."""
    height, width = fitted_size(rgb.shape[0], rgb.shape[1], max_side)
    if (height, width) == rgb.shape[:2]:
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def draw(rgb: np.ndarray, result: PoseResult) -> np.ndarray:
    """A BGR copy of the image with the result (in original pixels) drawn on it."""
    canvas = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    height, width = canvas.shape[:2]
    sx, sy = width / result.image.width, height / result.image.height  # original -> drawn pixels
    line = max(1, round((height + width) / 2 * 0.003))
    radius = max(2, line + 1)
    font_scale = max(0.4, line / 3)
    for person in result.persons:
        x1, y1, x2, y2 = (
            round(person.box[0] * sx),
            round(person.box[1] * sy),
            round(person.box[2] * sx),
            round(person.box[3] * sy),
        )
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX, line, cv2.LINE_AA)
        label = f"{person.score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, line // 2))
        top = max(y1 - th - 2 * line, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 2 * line, top + th + 2 * line), _BOX, -1)
        cv2.putText(canvas, label, (x1 + line, top + th + line), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255, 255, 255), max(1, line // 2), cv2.LINE_AA)  # fmt: skip
        visible = [
            (round(x * sx), round(y * sy)) if c >= KEYPOINT_MIN_CONFIDENCE else None for x, y, c in person.keypoints
        ]
        for a, b in result.skeleton:
            if a < len(visible) and b < len(visible) and visible[a] and visible[b]:
                cv2.line(canvas, visible[a], visible[b], _LIMB, line, cv2.LINE_AA)
        for point in visible:
            if point:
                cv2.circle(canvas, point, radius, _JOINT, -1, cv2.LINE_AA)
                cv2.circle(canvas, point, radius, _OUTLINE, max(1, line // 3), cv2.LINE_AA)
    return canvas


def annotated_jpeg(rgb: np.ndarray, result: PoseResult, quality: int = 90, max_side: int = 0) -> bytes:
    """The annotated JPEG, its longer side capped to `max_side` (0: the size of `rgb`)."""
    ok, encoded = cv2.imencode(".jpg", draw(fit(rgb, max_side), result), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # cannot happen for a valid uint8 image; guard anyway
        raise RuntimeError("JPEG encoding of the annotated image failed")
    return encoded.tobytes()
