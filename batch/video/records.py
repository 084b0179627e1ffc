"""The lines of a video's `keypoints/<rel>.jsonl`: one `VideoHeader`, then one `FrameRecord` per posed
frame (or, for a video that could not be read at all, its one error record). Their JSON Schemas are
published beside the image records' (`schemas/`, `pose-batch schema`).

A frame's persons are exactly what the single-image path gives for the same decoded frame (score, box,
keypoints in the upright frame's pixels), plus `track_id`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from batch.schema import SCHEMA_VERSION, ErrorDetail, Person, Thresholds


class TrackedPerson(Person):
    track_id: int | None = Field(
        description="The tracker's id for this person, stable across frames; null where no track follows it "
        "(tracking off, a detection too faint to track, or a new track not yet confirmed)."
    )


class FrameRecord(BaseModel):
    """One posed frame."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "frame": 42,
                    "pts": 1.4,
                    "persons": [
                        {
                            "score": 0.91,
                            "box": [48.1, 98.2, 245.3, 602.6],
                            "keypoints": [[141.2, 146.0, 0.97]],
                            "track_id": 3,
                        }
                    ],
                }
            ]
        },
    )

    frame: int = Field(description="The frame's index among the video's decoded frames, from 0.")
    pts: float = Field(description="Its presentation timestamp in seconds, as the container states it.")
    persons: list[TrackedPerson]


class Sampling(BaseModel):
    frame_stride: int = Field(description="Every Nth decoded frame was posed (1: every frame).")
    fps: float | None = Field(description="Frames posed per second of video, by timestamp; null: by stride.")


class Tracking(BaseModel):
    enabled: bool
    tracker: str | None = Field(description="bytetrack or botsort (Ultralytics' trackers); null when off.")
    gmc: bool | None = Field(description="BoT-SORT's camera-motion compensation; null for ByteTrack or off.")
    buffer_frames: int | None = Field(description="Posed frames a lost track is kept for (its seconds x their rate).")
    tracks: int = Field(description="Distinct track ids in the video.")


class FramePoint(BaseModel):
    frame: int
    pts: float


class AnnotatedVideo(BaseModel):
    codec: Literal["h264"] = "h264"
    pixel_format: Literal["yuv420p"] = "yuv420p"
    width: int
    height: int
    frames: int = Field(description="Frames written: one per posed frame.")


class VideoHeader(BaseModel):
    """The first line: what the video is and how it was posed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "schema_version": SCHEMA_VERSION,
                    "kind": "video",
                    "source": "s3://bucket/async/input/clip.mp4",
                    "container": "mov,mp4,m4a,3gp,3g2,mj2",
                    "codec": "h264",
                    "width": 1080,
                    "height": 1920,
                    "rotation": -90,
                    "fps": 29.97,
                    "duration": 12.01,
                    "frames_decoded": 360,
                    "frames_posed": 360,
                    "model": "yolo11n-pose.pt",
                    "thresholds": {"conf": 0.25, "iou": 0.7, "max_det": 300, "imgsz": 640},
                    "keypoint_names": ["nose", "..."],
                    "skeleton": [[15, 13]],
                    "sampling": {"frame_stride": 1, "fps": None},
                    "tracking": {
                        "enabled": True,
                        "tracker": "bytetrack",
                        "gmc": None,
                        "buffer_frames": 30,
                        "tracks": 2,
                    },
                    "annotated": {
                        "codec": "h264",
                        "pixel_format": "yuv420p",
                        "width": 720,
                        "height": 1280,
                        "frames": 360,
                    },
                    "truncated": False,
                }
            ]
        }
    )

    schema_version: int = Field(SCHEMA_VERSION, description="The version of this record's shape.")
    kind: Literal["video"] = "video"
    source: str | None = Field(None, description="The video: its s3:// URI, or its path below predict's inputs.")
    container: str = Field(description="FFmpeg's name for the container format.")
    codec: str = Field(description="The video stream's codec (h264, hevc, vp9, av1...).")
    width: int = Field(description="Frame width as displayed (after the rotation), pixels.")
    height: int = Field(description="Frame height as displayed, pixels.")
    rotation: int = Field(
        description="The display matrix's rotation, degrees counter-clockwise (-180..180): the stored frames were "
        "turned by it to be upright (a phone's portrait video: -90)."
    )
    fps: float | None = Field(description="The header's average frame rate; null when it does not say.")
    duration: float | None = Field(description="Seconds, from the header; null when it does not say.")
    frames_decoded: int
    frames_posed: int
    model: str
    thresholds: Thresholds
    keypoint_names: list[str]
    skeleton: list[tuple[int, int]]
    sampling: Sampling
    tracking: Tracking
    annotated: AnnotatedVideo | None = Field(None, description="The annotated MP4, when one was written.")
    truncated: bool = Field(
        False, description="The file broke off or is damaged: the frames before the damage are posed, no others."
    )
    error: ErrorDetail | None = Field(None, description="What ended decoding early: the damage, or a limit reached.")
    last_good_frame: FramePoint | None = Field(None, description="The last frame decoded, when decoding ended early.")
    stopped: Literal["truncated", "time_limit", "duration_limit"] | None = Field(
        None,
        description="Why frames at the end were not posed, if any were not: the file's damage, the time limit "
        "(POSE_VIDEO_TIME_LIMIT_S, kept under the invocation timeout), or the duration limit of a header without one.",
    )
