"""The per-request flags of `predict`, `submit` and `transform` become what each flow carries: custom
attributes the container's own parser reads back to the same options, and the environment the container's
settings read back to the same values."""

from __future__ import annotations

import pytest

from batch.cli import build_parser
from batch.commands.common import UserError
from batch.commands.request_options import as_custom_attributes, with_environment
from batch.custom_attributes import InferenceOptions, parse_custom_attributes
from batch.settings import Settings

FLAGS = ["--conf", "0.4", "--iou", "0.5", "--imgsz", "1600", "--fps", "5", "--no-track", "--tracker", "botsort"]


def test_submit_flags_are_custom_attributes_the_container_reads_back() -> None:
    args = build_parser().parse_args(["submit", "s3://b/in/", *FLAGS])
    text = as_custom_attributes(args)
    defaults = InferenceOptions(conf=0.25, iou=0.7, max_det=300, imgsz=640)
    options = parse_custom_attributes(text, defaults, max_imgsz=4096)
    assert (options.conf, options.iou, options.imgsz, options.fps, options.track, options.tracker) == (
        0.4, 0.5, 1600, 5.0, False, "botsort",
    )  # fmt: skip
    assert as_custom_attributes(build_parser().parse_args(["submit", "s3://b/in/"])) == ""


def test_transform_flags_are_the_containers_environment() -> None:
    args = build_parser().parse_args(["transform", "s3://b/in/", "--output", "s3://b/o/", *FLAGS])
    environment = with_environment(args, {"POSE_MAX_DET": "50"})
    settings = Settings.from_env(environment)
    assert (settings.conf, settings.iou, settings.imgsz, settings.video_fps, settings.video_track) == (
        0.4, 0.5, 1600, 5.0, False,
    )  # fmt: skip
    assert settings.video_tracker == "botsort" and settings.max_det == 50
    assert settings.max_imgsz == 1600  # the job asked for more than the serving cap: the cap follows it


def test_a_flag_and_an_env_that_disagree_are_refused() -> None:
    args = build_parser().parse_args(["transform", "s3://b/in/", "--output", "s3://b/o/", "--conf", "0.4"])
    assert with_environment(args, {"POSE_CONF": "0.4"})["POSE_CONF"] == "0.4"  # the same value twice is fine
    with pytest.raises(UserError, match="POSE_CONF is given twice"):
        with_environment(args, {"POSE_CONF": "0.5"})
