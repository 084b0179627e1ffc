"""The records PoseBatch returns and stores. Their JSON Schema is published in `schemas/`
(regenerate with `pose-batch schema --write`; a test keeps the published copy current)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Keypoint = tuple[float, float, float]
# Bumped when a record changes shape; readers can tell which fields to expect. 2: `source`, `schema_version`,
# `frames` (all optional or defaulted).
SCHEMA_VERSION = 2


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(description="Detection confidence of the person box, 0-1.")
    box: tuple[float, float, float, float] = Field(
        description="[x1, y1, x2, y2] in original image pixels (after EXIF orientation)."
    )
    keypoints: list[Keypoint] = Field(
        description="One [x, y, confidence] per keypoint, in the model's keypoint order, original pixels."
    )


class ImageSize(BaseModel):
    width: int
    height: int


class Thresholds(BaseModel):
    conf: float
    iou: float
    max_det: int
    imgsz: int


class PoseResult(BaseModel):
    """The result for one image. No person detected is a normal result with `persons: []`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "schema_version": SCHEMA_VERSION,
                    "source": "s3://bucket/input/site-a/x.jpg",
                    "model": "yolo11n-pose.pt",
                    "image": {"width": 810, "height": 1080},
                    "keypoint_names": ["nose", "left_eye", "..."],
                    "skeleton": [[15, 13], [13, 11]],
                    "persons": [
                        {"score": 0.91, "box": [48.1, 398.2, 245.3, 902.6], "keypoints": [[141.2, 446.0, 0.97]]}
                    ],
                    "thresholds": {"conf": 0.25, "iou": 0.7, "max_det": 300, "imgsz": 640},
                }
            ]
        }
    )

    schema_version: int = Field(SCHEMA_VERSION, description="The version of this record's shape.")
    source: str | None = Field(
        None,
        description="The image this result is for: its s3:// URI, or its path relative to the inputs "
        "(`pose-batch predict`); absent where the request carried only the image's bytes.",
    )
    model: str = Field(description="The checkpoint that produced this result.")
    image: ImageSize
    keypoint_names: list[str]
    skeleton: list[tuple[int, int]] = Field(description="Pairs of keypoint indices to connect.")
    persons: list[Person]
    thresholds: Thresholds
    frames: int | None = Field(
        None,
        description="How many frames or pictures the input holds, when more than one (animated GIF/WebP, "
        "MPO, HEIF sequences): only the first (primary) one was posed. Absent for single-frame images.",
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_image, payload_too_large.")
    message: str = Field(description="What was wrong, for a person.")


class ErrorRecord(BaseModel):
    """What a bad input gets instead of a result: an HTTP error body, or a 200 record under Batch Transform."""

    error: ErrorDetail


class ManifestLineResult(BaseModel):
    """One response line of a manifest request: the input line's image (or video) and its result or error."""

    image: str = Field(description="The S3 URI the line named.")
    status: Literal["ok", "error"]
    result: PoseResult | None = None
    video: VideoHeader | None = Field(
        None, description="For a video: its header record (the first line of its keypoints JSON Lines)."
    )
    error: ErrorDetail | None = None
    outputs: dict[str, str] = Field(
        default_factory=dict, description="Where the container wrote outputs: keypoints, annotated."
    )


# The video records build on the models above (Person, Thresholds, ErrorDetail): imported last, then resolved.
from batch.video.records import VideoHeader  # noqa: E402

ManifestLineResult.model_rebuild()
