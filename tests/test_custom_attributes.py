from __future__ import annotations

from dataclasses import replace

import pytest

from batch.async_inference.layout import MAX_CUSTOM_ATTRIBUTES, AsyncLayout
from batch.custom_attributes import InferenceOptions, parse_custom_attributes
from batch.errors import InvalidAttributes, InvalidS3Uri, KeyTooLong
from batch.s3_uri import S3Uri

DEFAULTS = InferenceOptions(conf=0.25, iou=0.7, max_det=300, imgsz=640)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, DEFAULTS),
        ("", DEFAULTS),
        ("conf=0.001;max_det=300", InferenceOptions(conf=0.001, iou=0.7, max_det=300, imgsz=640)),
        (" iou = 0.5 ; imgsz=1280 ;", InferenceOptions(conf=0.25, iou=0.5, max_det=300, imgsz=1280)),
        (
            "annotated_output=s3://out-bucket/annotated/a%20b/%C3%A9t%C3%A9%2Bx.jpg",
            InferenceOptions(0.25, 0.7, 300, 640, S3Uri("out-bucket", "annotated/a b/été+x.jpg")),
        ),
        (
            "source=s3://in-bucket/in/a%3Bb%3Dc%20%C3%A9.jpg",
            InferenceOptions(0.25, 0.7, 300, 640, source="s3://in-bucket/in/a;b=c é.jpg"),
        ),
    ],
)
def test_valid_attributes(header: str | None, expected: InferenceOptions) -> None:
    assert parse_custom_attributes(header, DEFAULTS) == expected


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("conf=abc", "not a number"),
        ("conf=1.5", "between 0 and 1"),
        ("max_det=0", "between 1 and 3000"),
        ("imgsz=650", "multiple of 32"),
        ("colour=red", "unknown custom attribute 'colour'"),
        ("conf", "key=value"),
        ("x" * 1100, "limit is 1024"),
    ],
)
def test_invalid_attributes_name_the_problem(header: str, fragment: str) -> None:
    with pytest.raises(InvalidAttributes, match=fragment):
        parse_custom_attributes(header, DEFAULTS)


def test_imgsz_above_the_deployments_cap_is_refused() -> None:
    """POSE_MAX_IMGSZ (default 1280): the model's memory grows with imgsz squared, whatever the image."""
    assert parse_custom_attributes("imgsz=1280", DEFAULTS, max_imgsz=1280).imgsz == 1280
    with pytest.raises(InvalidAttributes, match=r"imgsz=1312 is above this endpoint's limit of 1280 \(POSE_MAX"):
        parse_custom_attributes("imgsz=1312", DEFAULTS, max_imgsz=1280)


def test_bad_annotated_output_uri() -> None:
    with pytest.raises(InvalidS3Uri):
        parse_custom_attributes("annotated_output=https://example.com/x.jpg", DEFAULTS)


LAYOUT = AsyncLayout.create("s3://in-bucket/in/", "s3://out-bucket/out/")


@pytest.mark.parametrize(
    ("relative", "has_source"),
    [
        ("a;b=c/été 1.jpg", True),  # characters the header's syntax uses, and non-ASCII
        ("d/" + "x" * 380 + ".jpg", False),  # the outputs fit in 1024 characters, the source no longer does
    ],
)
def test_async_callers_name_the_source_when_it_fits(relative: str, has_source: bool) -> None:
    placement = LAYOUT.place("in-bucket", "in/" + relative)
    assert placement is not None
    header = placement.custom_attributes
    assert len(header) <= MAX_CUSTOM_ATTRIBUTES and header.isascii()
    options = parse_custom_attributes(header, DEFAULTS)
    assert options.keypoints_output == S3Uri.parse(placement.keypoints_uri)
    assert options.annotated_output == S3Uri.parse(placement.annotated_uri)
    assert options.source == (placement.input_uri if has_source else None)


def test_outputs_past_the_limit_are_refused_whatever_the_source() -> None:
    placement = LAYOUT.place("in-bucket", "in/" + "x" * 500 + ".jpg")
    assert placement is not None
    with pytest.raises(KeyTooLong):
        _ = placement.custom_attributes


def test_video_options() -> None:
    options = parse_custom_attributes("frame_stride=5;track=false;tracker=botsort;gmc=false", DEFAULTS)
    assert (options.frame_stride, options.fps, options.track, options.tracker, options.gmc) == (
        5,
        None,
        False,
        "botsort",
        False,
    )
    by_rate = parse_custom_attributes("fps=2.5", replace(DEFAULTS, frame_stride=3))
    assert (by_rate.fps, by_rate.frame_stride) == (2.5, 1)  # a rate replaces a default stride


@pytest.mark.parametrize(
    "header",
    ["fps=0", "fps=x", "frame_stride=0", "track=maybe", "tracker=sort", "fps=2;frame_stride=3"],
)
def test_bad_video_options_are_refused(header: str) -> None:
    with pytest.raises(InvalidAttributes):
        parse_custom_attributes(header, DEFAULTS)
