"""Annotated images: boxes, skeleton and joints drawn on the original image, encoded as JPEG, the way
Ultralytics users know them, with left and right told apart:

- limbs and joints of the body's left side in one colour, the right side in another, the centre
  (face, the shoulder and hip bars) in a third, so a crossed leg or a person seen from behind reads right;
- keypoints under the visibility threshold (Ultralytics' 0.5) are not drawn, nor any edge that reaches one;
- one score label per person, placed where it overlaps no other label.

The image drawn on may be smaller than the original (a reduced JPEG decode, or capped to
`POSE_ANNOTATED_MAX_SIDE`): results are in original pixels and are scaled to the pixels drawn on.
Line widths, joint radii and text scale with the image, so the drawing is legible on a 200 px
thumbnail and on a 6000 px photo alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from batch.schema import PoseResult

KEYPOINT_MIN_CONFIDENCE = 0.5  # Ultralytics' plotting threshold
# BGR. Blue and orange stay apart for the common colour-vision deficiencies; green is the centre line.
LEFT = (255, 128, 0)
RIGHT = (0, 128, 255)
CENTRE = (0, 200, 0)
_BOX = (56, 56, 255)
_LABEL_TEXT = (255, 255, 255)
_OUTLINE = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2


def side_of(name: str) -> str:
    """'left', 'right' or 'centre' from a keypoint name (COCO's `left_knee`; custom sets: centre)."""
    lowered = name.lower()
    if lowered.startswith(("left", "l_")):
        return "left"
    if lowered.startswith(("right", "r_")):
        return "right"
    return "centre"


_COLOURS = {"left": LEFT, "right": RIGHT, "centre": CENTRE}


def limb_colour(names: list[str], a: int, b: int) -> tuple[int, int, int]:
    """A limb between two points of one side takes that side's colour; any other limb is centre."""
    sides = {side_of(names[a]) if a < len(names) else "centre", side_of(names[b]) if b < len(names) else "centre"}
    return _COLOURS[sides.pop()] if len(sides) == 1 else CENTRE


def place_label(box: Rect, size: tuple[int, int], placed: list[Rect], image: tuple[int, int]) -> Rect:
    """Where a label of `size` (w, h) goes for `box`: above its top-left corner, else just inside it,
    stepping down until it overlaps no label in `placed`; kept inside the image."""
    width, height = size
    image_w, image_h = image
    x1, y1, _, y2 = box
    x = min(max(x1, 0), max(image_w - width, 0))
    candidates = [y1 - height, *range(y1, max(y2, y1 + 1), height), y2]
    rect = (x, 0, x + width, height)
    for top in candidates:
        top = min(max(top, 0), max(image_h - height, 0))
        rect = (x, top, x + width, top + height)
        if not any(_overlap(rect, other) for other in placed):
            break
    placed.append(rect)
    return rect


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


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


def draw(rgb: np.ndarray, result: PoseResult, captions: Sequence[str] | None = None) -> np.ndarray:
    """A BGR copy of the image with the result (in original pixels) drawn on it; `captions`, one per person,
    replace the score labels (a video's track ids)."""
    canvas = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    height, width = canvas.shape[:2]
    sx, sy = width / result.image.width, height / result.image.height  # original -> drawn pixels
    line = max(1, round((height + width) / 2 * 0.003))
    radius = max(2, line + 1)
    font_scale = max(0.4, line / 3)
    names = result.keypoint_names
    labels: list[Rect] = []
    for person in result.persons:  # boxes and skeletons first, labels last: no limb hides a score
        x1, y1, x2, y2 = _scaled_box(person.box, sx, sy)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _BOX, line, cv2.LINE_AA)
        visible = [
            (round(x * sx), round(y * sy)) if c >= KEYPOINT_MIN_CONFIDENCE else None for x, y, c in person.keypoints
        ]
        for a, b in result.skeleton:
            if a < len(visible) and b < len(visible) and visible[a] and visible[b]:
                cv2.line(canvas, visible[a], visible[b], limb_colour(names, a, b), line, cv2.LINE_AA)
        for index, point in enumerate(visible):
            if point:
                colour = _COLOURS[side_of(names[index])] if index < len(names) else CENTRE
                cv2.circle(canvas, point, radius, colour, -1, cv2.LINE_AA)
                cv2.circle(canvas, point, radius, _OUTLINE, max(1, line // 3), cv2.LINE_AA)
    thickness = max(1, line // 2)
    texts = list(captions) if captions is not None else [f"{p.score:.2f}" for p in result.persons]
    ranked = sorted(zip(result.persons, texts, strict=True), key=lambda pair: -pair[0].score)
    for person, label in ranked:  # the most confident gets the best place
        (tw, th), baseline = cv2.getTextSize(label, _FONT, font_scale, thickness)
        size = (tw + 2 * line, th + baseline + 2 * line)
        lx1, ly1, lx2, ly2 = place_label(_scaled_box(person.box, sx, sy), size, labels, (width, height))
        cv2.rectangle(canvas, (lx1, ly1), (lx2, ly2), _BOX, -1)
        cv2.putText(canvas, label, (lx1 + line, ly2 - baseline - line), _FONT, font_scale, _LABEL_TEXT, thickness,
                    cv2.LINE_AA)  # fmt: skip
    return canvas


def _scaled_box(box: tuple[float, float, float, float], sx: float, sy: float) -> Rect:
    return round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)


def annotated_jpeg(rgb: np.ndarray, result: PoseResult, quality: int = 90, max_side: int = 0) -> bytes:
    """The annotated JPEG, its longer side capped to `max_side` (0: the size of `rgb`)."""
    ok, encoded = cv2.imencode(".jpg", draw(fit(rgb, max_side), result), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # cannot happen for a valid uint8 image; guard anyway
        raise RuntimeError("JPEG encoding of the annotated image failed")
    return encoded.tobytes()
