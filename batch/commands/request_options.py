"""The per-request inference flags every posing command shares (`predict`, `submit`, `transform`): thresholds,
model input size, and for videos which frames are posed and how persons are tracked.

Each flow carries them its own way: `predict` updates its settings, `submit` sends them as SageMaker custom
attributes with every request (the same keys `batch.custom_attributes` parses), and `transform` sets the
container's environment (a Batch Transform job sends no per-request attributes). A flag left out keeps the
deployment's default."""

from __future__ import annotations

import argparse
from typing import Any

from batch.commands.common import UserError

# flag's dest -> (custom attribute, container environment variable)
_NAMES = {
    "conf": ("conf", "POSE_CONF"),
    "iou": ("iou", "POSE_IOU"),
    "imgsz": ("imgsz", "POSE_IMGSZ"),
    "frame_stride": ("frame_stride", "POSE_VIDEO_FRAME_STRIDE"),
    "fps": ("fps", "POSE_VIDEO_FPS"),
    "track": ("track", "POSE_VIDEO_TRACK"),
    "tracker": ("tracker", "POSE_VIDEO_TRACKER"),
    "gmc": ("gmc", "POSE_VIDEO_GMC"),
}


def add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", type=float, help="confidence threshold (default: $POSE_CONF, 0.25)")
    parser.add_argument("--iou", type=float, help="NMS IoU threshold (default: $POSE_IOU, 0.7)")
    parser.add_argument("--imgsz", type=int, help="model input size, a multiple of 32 (default: $POSE_IMGSZ, 640)")
    video = parser.add_argument_group("videos")
    sampling = video.add_mutually_exclusive_group()
    sampling.add_argument("--frame-stride", type=int, metavar="N", help="pose every Nth frame (default: every frame)")
    sampling.add_argument("--fps", type=float, metavar="X", help="pose X frames per second of video, by timestamp")
    video.add_argument(
        "--track", action=argparse.BooleanOptionalAction, default=None, help="track persons across frames (default: on)"
    )
    video.add_argument("--tracker", choices=("bytetrack", "botsort"), help="Ultralytics' tracker to use")
    video.add_argument(
        "--gmc", action=argparse.BooleanOptionalAction, default=None, help="BoT-SORT's camera-motion compensation"
    )


def _given(args: argparse.Namespace) -> dict[str, str]:
    """dest -> the value as the container reads it, for the flags given."""
    values: dict[str, str] = {}
    for dest in _NAMES:
        value: Any = getattr(args, dest, None)
        if value is not None:
            values[dest] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def as_custom_attributes(args: argparse.Namespace) -> str:
    """The flags given as `key=value;...`, checked now by the container's own parser so a bad value is a
    usage error here rather than one error record per file later. "" when none is given."""
    from batch.custom_attributes import MAX_IMGSZ, InferenceOptions, parse_custom_attributes
    from batch.errors import InvalidAttributes

    text = ";".join(f"{_NAMES[dest][0]}={value}" for dest, value in _given(args).items())
    try:
        parse_custom_attributes(text, InferenceOptions(conf=0.25, iou=0.7, max_det=300, imgsz=640), max_imgsz=MAX_IMGSZ)
    except InvalidAttributes as exc:
        raise UserError(f"bad option: {exc.message}") from None
    return text


def with_environment(args: argparse.Namespace, environment: dict[str, str]) -> dict[str, str]:
    """`environment` (from `--env`) with the flags given as the container's variables, checked by the
    settings' own rules. A flag and an `--env` that disagree are a usage error."""
    from pydantic import ValidationError

    from batch.settings import Settings

    merged = dict(environment)
    for dest, value in _given(args).items():
        name = _NAMES[dest][1]
        if merged.get(name, value) != value:
            raise UserError(f"{name} is given twice, by its flag and by --env, with different values")
        merged[name] = value
    imgsz, cap = merged.get("POSE_IMGSZ"), Settings.model_fields["max_imgsz"].default
    if args.imgsz is not None and "POSE_MAX_IMGSZ" not in merged and imgsz and imgsz.isdigit() and int(imgsz) > cap:
        merged["POSE_MAX_IMGSZ"] = imgsz  # the serving cap guards a shared endpoint; this job asked for more
    try:
        Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"bad option: {problems}") from None
    return merged
