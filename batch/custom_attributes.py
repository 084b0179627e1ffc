"""Per-request options from SageMaker's `X-Amzn-SageMaker-Custom-Attributes` header.

Format: `key=value` pairs separated by `;`, e.g. `conf=0.001;max_det=300`. Unknown keys and bad
values are a 400 naming the problem, so a typo never silently falls back to a default.
`annotated_output` and `keypoints_output` are percent-encoded S3 URIs where the container writes the
annotated JPEG and the result record (or, for a bad image, its error record): that is how async
callers put both outputs at keys that mirror the input, whatever characters the key holds.
`source`, percent-encoded too, is the input's URI, for the result record's `source` field (async
callers send it when it fits in the header; the body alone does not say where it came from).
Videos also take `frame_stride=N` or `fps=X` (which frames to pose; one excludes the other),
`track=true|false`, `tracker=bytetrack|botsort` and `gmc=true|false` (BoT-SORT's camera-motion
compensation); images ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import unquote

from batch.errors import InvalidAttributes
from batch.s3_uri import S3Uri
from batch.settings import Settings, parse_bool

MAX_LENGTH = 1024  # SageMaker's limit on CustomAttributes


@dataclass(frozen=True)
class InferenceOptions:
    conf: float
    iou: float
    max_det: int
    imgsz: int
    annotated_output: S3Uri | None = None
    keypoints_output: S3Uri | None = None
    source: str | None = None
    # Videos only (batch/video): which frames are posed, and whether and how persons are tracked.
    frame_stride: int = 1
    fps: float | None = None
    track: bool = True
    tracker: str = "bytetrack"
    gmc: bool = True

    @classmethod
    def defaults(cls, settings: Settings) -> InferenceOptions:
        return cls(
            conf=settings.conf,
            iou=settings.iou,
            max_det=settings.max_det,
            imgsz=settings.imgsz,
            frame_stride=1 if settings.video_fps else settings.video_frame_stride,
            fps=settings.video_fps,
            track=settings.video_track,
            tracker=settings.video_tracker,
            gmc=settings.video_gmc,
        )


def _unit_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidAttributes(f"custom attribute {name}={text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise InvalidAttributes(f"custom attribute {name}={text!r} must be between 0 and 1")
    return value


def _int_in(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidAttributes(f"custom attribute {name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidAttributes(f"custom attribute {name}={text!r} must be between {low} and {high}")
    return value


MAX_IMGSZ = 4096  # what the model input can be at all; a deployment caps it lower (POSE_MAX_IMGSZ)


def _imgsz(text: str, limit: int) -> int:
    value = _int_in("imgsz", text, 32, MAX_IMGSZ)
    if value % 32:
        raise InvalidAttributes(f"custom attribute imgsz={text!r} must be a multiple of 32")
    if value > limit:
        raise InvalidAttributes(
            f"custom attribute imgsz={value} is above this endpoint's limit of {limit} (POSE_MAX_IMGSZ): "
            "the model's memory and time grow with the square of imgsz"
        )
    return value


TRACKERS = ("bytetrack", "botsort")


def _fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidAttributes(f"custom attribute fps={text!r} is not a number") from None
    if not 0.0 < value <= 1000.0:
        raise InvalidAttributes(f"custom attribute fps={text!r} must be above 0 and at most 1000")
    return value


def _bool(name: str, text: str) -> bool:
    try:
        return parse_bool(text)
    except ValueError:
        raise InvalidAttributes(f"custom attribute {name}={text!r} must be true or false") from None


def _tracker(text: str) -> str:
    if text.lower() not in TRACKERS:
        raise InvalidAttributes(f"custom attribute tracker={text!r} must be one of {', '.join(TRACKERS)}")
    return text.lower()


def parse_custom_attributes(
    header: str | None, defaults: InferenceOptions, *, max_imgsz: int = MAX_IMGSZ
) -> InferenceOptions:
    """`defaults` updated by the header's pairs; `max_imgsz`: the deployment's cap (`Settings.max_imgsz`)."""
    if not header or not header.strip():
        return defaults
    if len(header) > MAX_LENGTH:
        raise InvalidAttributes(f"custom attributes are {len(header)} characters; the limit is {MAX_LENGTH}")
    options = defaults
    seen: set[str] = set()
    for pair in header.split(";"):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise InvalidAttributes(f"custom attribute {pair.strip()!r} is not of the form key=value")
        seen.add(key)
        if {"fps", "frame_stride"} <= seen:
            raise InvalidAttributes("custom attributes fps and frame_stride exclude each other: give one")
        if key == "conf":
            options = replace(options, conf=_unit_float(key, value))
        elif key == "iou":
            options = replace(options, iou=_unit_float(key, value))
        elif key == "max_det":
            options = replace(options, max_det=_int_in(key, value, 1, 3000))
        elif key == "imgsz":
            options = replace(options, imgsz=_imgsz(value, max_imgsz))
        elif key == "annotated_output":
            options = replace(options, annotated_output=S3Uri.parse(unquote(value)))
        elif key == "keypoints_output":
            options = replace(options, keypoints_output=S3Uri.parse(unquote(value)))
        elif key == "source":
            options = replace(options, source=str(S3Uri.parse(unquote(value))))
        elif key == "frame_stride":
            options = replace(options, frame_stride=_int_in(key, value, 1, 100_000), fps=None)
        elif key == "fps":
            options = replace(options, fps=_fps(value), frame_stride=1)
        elif key == "track":
            options = replace(options, track=_bool(key, value))
        elif key == "tracker":
            options = replace(options, tracker=_tracker(value))
        elif key == "gmc":
            options = replace(options, gmc=_bool(key, value))
        else:
            known = (
                "conf, iou, max_det, imgsz, annotated_output, keypoints_output, source, "
                "frame_stride, fps, track, tracker, gmc"
            )
            raise InvalidAttributes(f"unknown custom attribute {key!r}; known: {known}")
    return options
