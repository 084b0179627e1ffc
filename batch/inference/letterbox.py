"""Letterboxing: resize to fit `imgsz` keeping the aspect ratio, pad to a multiple of the stride.

The geometry reproduces Ultralytics' `LetterBox(auto=True)` exactly (same rounding), so results match
`YOLO.predict` to the pixel. Only canvases of the same shape share a forward pass (see the engine).

The letterboxed pixels may be a reduced decode of the original (JPEG DCT scaling, `scale` original
pixels per decoded pixel): the gains below are relative to the ORIGINAL image, so results map back to
original pixels without anyone else knowing about the reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Geometry:
    """Where an original image sits inside its letterboxed canvas."""

    orig_h: int  # the image results are reported in
    orig_w: int
    new_h: int  # resized, before padding
    new_w: int
    top: int
    left: int
    canvas_h: int
    canvas_w: int
    src_h: int = 0  # the pixels that were letterboxed (a reduced decode); 0: the original
    src_w: int = 0
    scale: int = 1  # original pixels per source pixel, along each axis

    @property
    def gain_x(self) -> float:
        """Canvas pixels per original pixel."""
        return self.new_w / ((self.src_w or self.orig_w) * self.scale)

    @property
    def gain_y(self) -> float:
        return self.new_h / ((self.src_h or self.orig_h) * self.scale)


def plan(
    height: int, width: int, imgsz: int, stride: int = 32, *, scale: int = 1, original: tuple[int, int] | None = None
) -> Geometry:
    """Letterbox `height` x `width` pixels; `original` (h, w) is the full image they were decoded from
    at `scale` (a reduced JPEG decode), default: the same pixels."""
    ratio = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    dw, dh = (imgsz - new_w) % stride / 2, (imgsz - new_h) % stride / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    orig_h, orig_w = original or (height, width)
    canvas_h, canvas_w = new_h + top + bottom, new_w + left + right
    return Geometry(orig_h, orig_w, new_h, new_w, top, left, canvas_h, canvas_w, height, width, scale)


def letterbox(rgb: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The letterboxed canvas, (canvas_h, canvas_w, 3) uint8."""
    resized = rgb
    if (geometry.new_h, geometry.new_w) != rgb.shape[:2]:
        resized = cv2.resize(rgb, (geometry.new_w, geometry.new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((geometry.canvas_h, geometry.canvas_w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[geometry.top : geometry.top + geometry.new_h, geometry.left : geometry.left + geometry.new_w] = resized
    return canvas
