"""Letterboxing: resize to fit `imgsz` keeping the aspect ratio, pad to a multiple of the stride.

The geometry reproduces Ultralytics' `LetterBox(auto=True)` exactly (same rounding), so results match
`YOLO.predict` to the pixel. Only canvases of the same shape share a forward pass (see the engine).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Geometry:
    """Where an original image sits inside its letterboxed canvas."""

    orig_h: int
    orig_w: int
    new_h: int  # resized, before padding
    new_w: int
    top: int
    left: int
    canvas_h: int
    canvas_w: int

    @property
    def gain_x(self) -> float:
        return self.new_w / self.orig_w

    @property
    def gain_y(self) -> float:
        return self.new_h / self.orig_h


def plan(orig_h: int, orig_w: int, imgsz: int, stride: int = 32) -> Geometry:
    ratio = min(imgsz / orig_h, imgsz / orig_w)
    new_w, new_h = max(round(orig_w * ratio), 1), max(round(orig_h * ratio), 1)
    dw, dh = (imgsz - new_w) % stride / 2, (imgsz - new_h) % stride / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return Geometry(orig_h, orig_w, new_h, new_w, top, left, new_h + top + bottom, new_w + left + right)


def letterbox(rgb: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The letterboxed canvas, (canvas_h, canvas_w, 3) uint8."""
    resized = rgb
    if (geometry.new_h, geometry.new_w) != rgb.shape[:2]:
        resized = cv2.resize(rgb, (geometry.new_w, geometry.new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((geometry.canvas_h, geometry.canvas_w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[geometry.top : geometry.top + geometry.new_h, geometry.left : geometry.left + geometry.new_w] = resized
    return canvas
