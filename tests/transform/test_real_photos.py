"""Phone photos and a large PNG through both modes on the embedded stack (issue 9): 12 MP JPEGs of about
4 MB (one stored sideways with an EXIF orientation) and a PNG over 10 MB, made at run time from COCO
images with people. Every input ends with a record holding persons and an annotated image in display
orientation, and the job completes. A handful of images only: CI time."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

from batch.commands.transform import execute
from batch.output_layout import annotated_key, keypoints_key
from batch.transform.launcher import LaunchOptions
from tests.transform.jobs import TransformStack, objects
from tests.transform.photos import ORIENTATION, WITH_PEOPLE, Photo, large_png, phone_jpeg

pytestmark = pytest.mark.slow

INPUT = "photos/input/"


@pytest.fixture(scope="module")
def photos(transform_stack: TransformStack) -> dict[str, Photo]:
    made = {
        "phone/IMG_0001.jpg": phone_jpeg(WITH_PEOPLE[0], seed=1),
        "phone/IMG_0002 sideways.jpg": phone_jpeg(WITH_PEOPLE[2], rotated=True, seed=2),
        "screens/capture.png": large_png(WITH_PEOPLE[1], seed=3),
    }
    assert all(3_500_000 < len(p.body) < 6_000_000 for rel, p in made.items() if rel.endswith(".jpg"))
    assert len(made["screens/capture.png"].body) > 10 * 1024 * 1024
    s3 = transform_stack.stack.client("s3")
    for rel, photo in made.items():
        s3.put_object(Bucket=transform_stack.bucket, Key=INPUT + rel, Body=photo.body)
    return made


@pytest.fixture(scope="module", params=["images", "manifest"])
def finished(
    request: pytest.FixtureRequest, transform_stack: TransformStack, photos: dict[str, Photo]
) -> tuple[int, dict[str, Any], dict[str, bytes]]:
    mode = request.param
    bucket = transform_stack.bucket
    options = LaunchOptions(
        input=f"s3://{bucket}/{INPUT}",
        output=f"s3://{bucket}/photos/output-{mode}/",
        model_data=transform_stack.model_data,
        mode=mode,
        instance_type="ml.m5.xlarge",
    )
    code, summary = execute(
        options, wait=True, poll_s=0.5, summary_wait_s=120, show_progress=False, clients=transform_stack.stack.client
    )
    assert summary is not None
    return code, summary, objects(transform_stack.stack.client("s3"), bucket, f"photos/output-{mode}/")


def test_the_job_completes_with_every_photo_done(finished: tuple[int, dict[str, Any], dict[str, bytes]]) -> None:
    code, summary, _ = finished
    assert (code, summary["status"]) == (0, "Completed")
    assert (summary["images"], summary["done"], summary["failed"]) == (3, 3, 0), summary["failures"]


def test_every_photo_has_persons_and_an_annotated_image_in_display_orientation(
    finished: tuple[int, dict[str, Any], dict[str, bytes]], photos: dict[str, Photo]
) -> None:
    _, _, outputs = finished
    for rel, photo in photos.items():
        record = json.loads(outputs[keypoints_key(rel)])
        assert record["persons"], rel
        assert (record["image"]["width"], record["image"]["height"]) == photo.display_size, rel
        annotated = Image.open(io.BytesIO(outputs[annotated_key(rel)]))
        assert annotated.format == "JPEG"
        # Display orientation (the container may scale annotated images down, never turn them).
        width, height = photo.display_size
        assert (annotated.width > annotated.height) == (width > height), rel
        assert annotated.width / annotated.height == pytest.approx(width / height, rel=0.01), rel
        assert annotated.getexif().get(ORIENTATION, 1) == 1, rel  # nothing left for a viewer to turn
