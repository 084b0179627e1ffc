"""_REPORT.html from real outputs: the real model over COCO images plus a corrupt file (`pose-batch predict`,
which writes the report at the end), `pose-batch report` on the folder, and the same records in the mirrored
layout on S3 (the real moto server), read page by page. The page is opened in a real headless Chromium.

Chromium comes from Debian's packages (`apt-get install -y chromium`) and Playwright drives it; without it the
browser tests skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batch.local.moto_server import MotoServer
from batch.output_layout import annotated_key
from batch.report import build_report
from batch.report.sources import REPORT_NAME, S3Source
from batch.s3_uri import S3Uri
from tests.conftest import COCO_DIR, MODEL_PATH, REPO_ROOT
from tests.report.browser import check_page, find_chromium

pytestmark = pytest.mark.slow

COCO_IMAGES = sorted((COCO_DIR / "images").glob("*.jpg"))[:6]
CORRUPT = "corrupt.jpg"
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)"
)


def pose_batch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "YOLO_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "batch.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(inputs, outputs, predict's stdout): 6 COCO images and a truncated JPEG posed by `pose-batch predict`."""
    root = tmp_path_factory.mktemp("job")
    inputs, outputs = root / "in", root / "out"
    inputs.mkdir()
    for path in COCO_IMAGES:
        shutil.copy(path, inputs / path.name)
    (inputs / CORRUPT).write_bytes(COCO_IMAGES[0].read_bytes()[:3000])
    done = pose_batch("predict", str(inputs), "--out", str(outputs), "--model", str(MODEL_PATH))
    assert done.returncode == 1, done.stderr  # 1: one image failed
    return inputs, outputs, done.stdout


def test_predict_writes_the_report(job: tuple[Path, Path, str]) -> None:
    _inputs, outputs, stdout = job
    assert f"report: {outputs / REPORT_NAME}" in stdout
    html = (outputs / REPORT_NAME).read_text()
    assert "invalid_image" in html and CORRUPT in html
    assert html.count('<figure class="fail">') == 1


@needs_chromium
def test_report_renders_in_headless_chromium(job: tuple[Path, Path, str], tmp_path: Path) -> None:
    inputs, outputs, _ = job
    done = pose_batch("report", str(outputs), "--input", str(inputs), "--thumbnails", "4")
    assert done.returncode == 0, done.stderr
    assert f"report: {outputs / REPORT_NAME}" in done.stdout
    assert "7 records (6 posed, 1 failed)" in done.stdout

    screenshot = tmp_path / "report.png"
    assert CHROMIUM is not None
    page = check_page(CHROMIUM, (outputs / REPORT_NAME).as_uri(), screenshot)
    print(f"screenshot: {screenshot}")

    assert page.problems == [], page.problems  # no console error, warning, exception or failed load
    assert page.resources == []  # nothing fetched: every image is inline
    assert page.title.startswith("PoseBatch report")
    assert all(image["loaded"] and image["scheme"] == "data" for image in page.images), page.images
    plots = [i for i in page.images if i["cls"] == "plot"]
    thumbnails = [i for i in page.images if i["type"] == "image/jpeg"]
    assert len(plots) == 5  # persons, box sizes, joint means, joint distribution, error codes
    assert all(i["type"] == "image/svg+xml" and i["width"] > 300 for i in plots)
    assert len(thumbnails) == 4  # --thumbnails 4; the truncated JPEG cannot be thumbnailed
    assert all(i["width"] > 100 for i in thumbnails)
    shot = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    assert shot.shape[1] == 1280 and shot.shape[0] > 1500  # the full page, not the first screen
    assert shot.std() > 20  # drawn content, not a blank page


@needs_chromium
def test_the_browser_check_catches_a_broken_page(tmp_path: Path) -> None:
    """The negative control: the same check fails on a page with a missing image and a console error."""
    page_path = tmp_path / "broken.html"
    page_path.write_text(
        '<html><body><img class=plot src="missing.png"><script>console.error("boom")</script></body></html>'
    )
    assert CHROMIUM is not None
    page = check_page(CHROMIUM, page_path.as_uri(), tmp_path / "broken.png")
    assert any("boom" in p for p in page.problems), page.problems
    assert not page.images[0]["loaded"]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_report_from_s3_pages(job: tuple[Path, Path, str], moto: MotoServer) -> None:
    """The mirrored layout of a Batch Transform job on S3, listed two keys per page: every record counted,
    annotated thumbnails from `annotated/`, a failure's thumbnail from the input named in _SUMMARY.json."""
    inputs, outputs, _ = job
    s3 = moto.client("s3")
    bucket = "posebatch-report"
    s3.create_bucket(Bucket=bucket)
    for path in inputs.iterdir():
        s3.put_object(Bucket=bucket, Key=f"input/sub/{path.name}", Body=path.read_bytes())
    for record in (outputs / "keypoints").glob("*.json"):  # predict writes the mirrored layout too
        name = record.name.removesuffix(".json")
        s3.put_object(Bucket=bucket, Key=f"output/keypoints/sub/{name}.json", Body=record.read_bytes())
        annotated = outputs / annotated_key(name)
        if annotated.is_file():
            s3.put_object(Bucket=bucket, Key=f"output/{annotated_key('sub/' + name)}", Body=annotated.read_bytes())
    # A readable image whose request failed for good: its thumbnail must come from the input prefix.
    lost = f"sub/{COCO_IMAGES[1].name}"
    error = {"error": {"code": "no_transform_output", "message": "the job stopped"}}
    s3.put_object(Bucket=bucket, Key=f"output/keypoints/{lost}.json", Body=json.dumps(error).encode())
    summary = {"job_name": "job-1", "status": "Stopped", "input": f"s3://{bucket}/input/", "timings": {}}
    s3.put_object(Bucket=bucket, Key="output/_SUMMARY.json", Body=json.dumps(summary).encode())

    source = S3Source(S3Uri(bucket, "output/"), s3, page_size=2)
    outcome = build_report(source, s3=s3, sample_size=3)

    assert outcome.location == f"s3://{bucket}/output/{REPORT_NAME}"
    assert (outcome.stats.images, outcome.stats.ok, outcome.stats.failed) == (7, 5, 2)
    assert dict(outcome.stats.error_codes) == {"invalid_image": 1, "no_transform_output": 1}
    html = s3.get_object(Bucket=bucket, Key=f"output/{REPORT_NAME}")["Body"].read().decode()
    failures = re.findall(r'<figure class="fail">(<img|<div class="nothumb")', html)
    assert sorted(failures) == ['<div class="nothumb"', "<img"]  # the lost image has one; the corrupt one not
    assert html.count("<figure><img") == 3  # the first 3 results, annotated
    assert "job-1" in html and "Stopped" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "/no/such/folder"], "not a folder"),
        (["report", "s3://Bad_Bucket/x/"], "invalid bucket name"),
        (["report", ".", "--thumbnails", "-1"], "must be >= 0"),
    ],
)
def test_bad_locations_get_a_clear_error(args: list[str], message: str) -> None:
    done = pose_batch(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
