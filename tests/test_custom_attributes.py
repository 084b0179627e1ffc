from __future__ import annotations

import pytest

from batch.custom_attributes import InferenceOptions, parse_custom_attributes
from batch.errors import InvalidAttributes, InvalidS3Uri
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


def test_bad_annotated_output_uri() -> None:
    with pytest.raises(InvalidS3Uri):
        parse_custom_attributes("annotated_output=https://example.com/x.jpg", DEFAULTS)
