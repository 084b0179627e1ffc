"""What a checked dataset describes: its keypoint set (count, dims, names, skeleton, flip order, OKS
sigmas), its classes and its splits. Both layouts end here; the trainer, the evaluation step and
`keypoints.yaml` read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Layout = Literal["yolo", "coco"]


@dataclass(frozen=True)
class SplitSummary:
    images: int
    labelled_images: int
    instances: int


@dataclass(frozen=True)
class KeypointDataset:
    layout: Layout
    description_file: str  # data.yaml, or the COCO JSON(s), relative to the root
    kpt_shape: tuple[int, int]
    class_names: tuple[str, ...]
    keypoint_names: tuple[str, ...] | None = None
    skeleton: tuple[tuple[int, int], ...] | None = None
    flip_idx: tuple[int, ...] | None = None
    oks_sigmas: tuple[float, ...] | None = None
    splits: dict[str, SplitSummary] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return self.kpt_shape[0]

    def summary(self) -> str:
        parts = ", ".join(f"{name} {s.images} images ({s.instances} instances)" for name, s in self.splits.items())
        return (
            f"{self.layout} layout, {self.num_keypoints} keypoints x {self.kpt_shape[1]}, "
            f"{len(self.class_names)} class(es); {parts}"
        )
