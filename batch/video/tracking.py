"""Person tracking with Ultralytics' own trackers (ByteTrack, BoT-SORT), fed frame by frame with the
batched results: the tracker only assigns ids; every detected person keeps its detected box and keypoints
(exactly the single-image result) and gets `track_id` where a track follows it, else None (a person too
faint for the tracker, or a new one not yet confirmed).

Ultralytics' trackers keep a lost track for `track_buffer` frames whatever the video's rate (its config
says 30 frames, one second at 30 fps; ultralytics issue 4284). Here the buffer is scaled by the rate of the
frames the tracker actually sees (the video's, divided by the sampling), so a lost track is kept for the
same number of seconds at any rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from batch.schema import PoseResult

REFERENCE_FPS = 30.0  # the rate Ultralytics' `track_buffer` frames are meant at


@dataclass(frozen=True)
class TrackerChoice:
    name: str  # bytetrack | botsort
    gmc: bool = True  # BoT-SORT's camera-motion compensation (sparse optical flow); ByteTrack has none

    @property
    def uses_frames(self) -> bool:
        """Whether the tracker needs the frame's pixels (GMC does)."""
        return self.name == "botsort" and self.gmc


class PersonTracker:
    def __init__(self, choice: TrackerChoice, fps: float | None) -> None:
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        config: dict[str, Any] = YAML.load(check_yaml(f"{choice.name}.yaml"))
        self.buffer_s = float(config["track_buffer"]) / REFERENCE_FPS
        self.buffer_frames = max(1, round(self.buffer_s * (fps or REFERENCE_FPS)))
        config["track_buffer"] = self.buffer_frames
        if choice.name == "botsort":
            config["gmc_method"] = config.get("gmc_method") if choice.gmc else None
            config["with_reid"] = False  # ReID would load a second model; not offered
        args = IterableSimpleNamespace(**config)
        self.choice = choice
        self._tracker: Any = BOTSORT(args) if choice.name == "botsort" else BYTETracker(args)

    def assign(self, result: PoseResult, bgr: np.ndarray | None = None) -> list[int | None]:
        """One frame's track ids, one per person of `result` (in its order); `bgr` feeds GMC (else unused).
        Frames must come in order, every posed one (an empty one too: tracks age through it)."""
        from ultralytics.engine.results import Boxes

        rows = np.zeros((len(result.persons), 6), dtype=np.float32)  # x1, y1, x2, y2, score, class 0
        for row, person in zip(rows, result.persons, strict=True):
            row[:4] = person.box
            row[4] = person.score
        boxes = Boxes(rows, (result.image.height, result.image.width))
        tracks = self._tracker.update(boxes, bgr if self.choice.uses_frames else None)
        ids: list[int | None] = [None] * len(result.persons)
        for track in tracks:  # rows of [x1, y1, x2, y2, track_id, score, class, detection index]
            ids[int(track[-1])] = int(track[4])
        return ids
