"""Short test videos made at run time with PyAV from COCO-val-mini photos: people cut from real photos
moved across frames (a few KB each; no video file is committed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from tests.conftest import COCO_DIR

# Single, fully visible persons of COCO-val-mini (file, bbox x, y, w, h): real people for the model to find.
PERSONS = (("000000406129.jpg", (164, 154, 199, 438)), ("000000153797.jpg", (323, 107, 114, 221)))
BACKGROUND = (96, 110, 120)


@cache
def person(index: int, height: int) -> np.ndarray:
    """Person `index` cut from its photo with a margin, `height` pixels tall (RGB)."""
    name, (x, y, w, h) = PERSONS[index]
    with Image.open(COCO_DIR / "images" / name) as photo:
        rgb = np.asarray(photo.convert("RGB"))
    margin = int(0.12 * h)
    crop = rgb[max(0, y - margin) : y + h + margin, max(0, x - margin) : x + w + margin]
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return np.ascontiguousarray(cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA))


@dataclass(frozen=True)
class Scene:
    """Persons walking left to right across a plain background."""

    width: int = 320
    height: int = 240
    persons: int = 1
    person_height: int = 200
    step: int = 6  # pixels per frame

    def frame(self, index: int) -> np.ndarray:
        canvas = np.empty((self.height, self.width, 3), dtype=np.uint8)
        canvas[:] = BACKGROUND
        for p in range(self.persons):
            cut = person(p, self.person_height)
            x = min(10 + p * (self.width // self.persons) + index * self.step, self.width - cut.shape[1])
            top = (self.height - cut.shape[0]) // 2
            canvas[top : top + cut.shape[0], x : x + cut.shape[1]] = cut
        return canvas


def write_clip(
    path: Path,
    scene: Scene,
    frames: int,
    *,
    fps: int = 10,
    codec: str = "libx264",
    container: str | None = None,
    rotation: int = 0,
    pts: Sequence[float] | None = None,
    faststart: bool = True,
) -> Path:
    """A clip of `frames` frames of `scene`. `rotation`: the display matrix's counter-clockwise degrees (the
    stored frames are turned the other way, so that the displayed video is the upright scene); `pts`:
    timestamps in seconds (a variable frame rate), else `fps`."""
    time_base = Fraction(1, 1000) if pts is not None else Fraction(1, fps)
    options = {"movflags": "+faststart"} if faststart and path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), mode="w", format=container, options=options) as output:
        stream = output.add_stream(codec, rate=fps)
        upright = scene.frame(0)
        stored = np.rot90(upright, -(rotation // 90))
        stream.width, stream.height = stored.shape[1], stored.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(frames):
            image = np.ascontiguousarray(np.rot90(scene.frame(index), -(rotation // 90)))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(pts[index] / time_base) if pts is not None else index
            frame.time_base = time_base
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def decoded_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame as PyAV decodes it, upright by the display matrix (the reference the tests compare with)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        out = []
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            out.append((float(frame.time), np.ascontiguousarray(np.rot90(rgb, round(frame.rotation / 90) % 4))))
        return out


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
