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

# flag's dest -> (custom attribute, the setting's field; its environment variable is the field's alias)
_NAMES = {
    "conf": ("conf", "conf"),
    "iou": ("iou", "iou"),
    "imgsz": ("imgsz", "imgsz"),
    "frame_stride": ("frame_stride", "video_frame_stride"),
    "fps": ("fps", "video_fps"),
    "track": ("track", "video_track"),
    "tracker": ("tracker", "video_tracker"),
    "gmc": ("gmc", "video_gmc"),
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


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """dest -> value, for the flags given."""
    return {dest: getattr(args, dest) for dest in _NAMES if getattr(args, dest, None) is not None}


def _text(value: Any) -> str:
    """A value as the container reads it from a header or its environment."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def settings_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, by setting field (`predict` updates its settings with them)."""
    return {_NAMES[dest][1]: value for dest, value in _given(args).items()}


def as_custom_attributes(args: argparse.Namespace) -> str:
    """The flags given as `key=value;...`, checked now by the container's own parser so a bad value is a
    usage error here rather than one error record per file later. "" when none is given."""
    from batch.custom_attributes import MAX_IMGSZ, InferenceOptions, parse_custom_attributes
    from batch.errors import InvalidAttributes
    from batch.settings import Settings

    text = ";".join(f"{_NAMES[dest][0]}={_text(value)}" for dest, value in _given(args).items())
    defaults = InferenceOptions.defaults(Settings.model_validate({}))  # the fields' defaults, no environment
    try:
        parse_custom_attributes(text, defaults, max_imgsz=MAX_IMGSZ)
    except InvalidAttributes as exc:
        raise UserError(f"bad option: {exc.message}") from None
    return text


def with_environment(args: argparse.Namespace, environment: dict[str, str]) -> dict[str, str]:
    """`environment` (from `--env`) with the flags given as the container's variables, checked by the
    settings' own rules. A flag and an `--env` that disagree are a usage error."""
    from pydantic import ValidationError

    from batch.settings import Settings

    merged = dict(environment)
    for field, value in settings_changes(args).items():
        name, text = str(Settings.model_fields[field].validation_alias), _text(value)
        if merged.get(name, text) != text:
            raise UserError(f"{name} is given twice, by its flag and by --env, with different values")
        merged[name] = text
    if args.imgsz is not None and args.imgsz > Settings.model_fields["max_imgsz"].default:
        # the serving cap guards a shared endpoint; this job asked for more
        merged.setdefault("POSE_MAX_IMGSZ", str(args.imgsz))
    try:
        Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"bad option: {problems}") from None
    return merged
