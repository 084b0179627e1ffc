"""Real photos through the real server: 12 MP JPEGs from S3 past the request payload limit, annotated
images capped in size, and the memory bound under many large and hostile images at once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from batch.local.moto_server import MotoServer
from tests.builders import encode, gradient, png_header_only
from tests.conftest import ServerFactory
from tests.inference.photos import coco_paths, phone_jpeg, upscaled

pytestmark = pytest.mark.slow

PEOPLE = coco_paths()[0].parent / "000000000139.jpg"  # 640x426, people in a living room
BUDGET_MPIX = 120  # the default (README, settings)
BYTES_PER_BUDGET_PIXEL = 12  # the README's bound: idle RSS + 12 bytes per budgeted pixel + bodies


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_manifest_reads_photos_larger_than_the_payload_limit(server_factory: ServerFactory, moto: MotoServer) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="photos")
    photo = phone_jpeg(PEOPLE, orientation=6)  # stored sideways (2684 x 4032), displayed upright: 4032 x 2684
    assert len(photo) > 2 * 2**20
    s3.put_object(Bucket="photos", Key="in/IMG_0001.jpg", Body=photo)
    # Manifest mode: SageMaker's 1 MB request limit applies to the manifest, not to the images it names.
    url = server_factory(**moto.environment, POSE_ALLOWED_BUCKETS="photos", SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    line = {
        "image": "s3://photos/in/IMG_0001.jpg",
        "keypoints": "s3://photos/out/IMG_0001.jpg.json",
        "annotated": "s3://photos/out/IMG_0001.jpg",
    }
    response = httpx.post(
        f"{url}/invocations",
        content=json.dumps(line).encode() + b"\n",
        headers={"Content-Type": "application/jsonlines"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    (answer,) = [json.loads(text) for text in response.text.splitlines()]
    assert answer["status"] == "ok", answer
    result = answer["result"]
    assert result["image"] == {"width": 4032, "height": 2684}  # original, upright pixels
    assert result["persons"]
    for person in result["persons"]:
        x1, y1, x2, y2 = person["box"]
        assert 0 <= x1 < x2 <= 4032 and 0 <= y1 < y2 <= 2684
    annotated = Image.open(io.BytesIO(s3.get_object(Bucket="photos", Key="out/IMG_0001.jpg")["Body"].read()))
    # Drawn on the reduced decode (1/4: 1008 px covers POSE_ANNOTATED_MAX_SIDE), shrunk to its 1000.
    assert annotated.size == (1000, 666)


def test_annotated_image_full_resolution_on_request(server_factory: ServerFactory) -> None:
    url = server_factory(POSE_ANNOTATED_MAX_SIDE="0")
    photo = phone_jpeg(PEOPLE)
    response = httpx.post(
        f"{url}/invocations", content=photo, headers={"Content-Type": "image/jpeg", "Accept": "image/jpeg"}, timeout=120
    )
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (4032, 2684)


def hostile_images() -> list[tuple[str, bytes]]:
    """Large and hostile inputs, as a new user would send them."""
    side = 8944  # 80 MP, just under the default pixel limit; ~2 GB of RSS before (float64 conversion)
    ramp = np.arange(side, dtype=np.uint16)
    deep = encode(Image.fromarray(ramp[:, None] * 7 + ramp[None, :]), "PNG", compress_level=1)
    photos = [phone_jpeg(path, orientation=(1, 6, 3, 8)[n % 4]) for n, path in enumerate(coco_paths(8))]
    big = Image.fromarray(upscaled(PEOPLE, 5000))
    return [
        *((f"16-bit-png-{n}", deep) for n in range(3)),
        *((f"photo-{n}", photo) for n, photo in enumerate(photos)),
        ("palette-png", encode(big.convert("P"), "PNG", compress_level=1)),
        ("rgba-png", encode(big.convert("RGBA"), "PNG", compress_level=1)),
        ("cmyk-jpeg", encode(big.convert("CMYK"), "JPEG", quality=90)),
        ("bomb-header", png_header_only(30000, 30000)),
        ("gradient", encode(gradient(), "PNG")),
    ]


def test_peak_rss_stays_within_the_stated_bound(server_factory: ServerFactory) -> None:
    url = server_factory(POSE_DECODE_BUDGET_MPIX=str(BUDGET_MPIX))
    inputs = hostile_images()
    idle_mb = httpx.get(f"{url}/metrics").json()["peak_rss_mb"]
    bodies_mb = sum(len(body) for _, body in inputs) / 2**20

    def send(item: tuple[str, bytes]) -> tuple[str, int, dict[str, object]]:
        name, body = item
        accept = "image/jpeg" if name.startswith("photo-") and name[-1] in "02468" else "application/json"
        response = httpx.post(
            f"{url}/invocations",
            content=body,
            headers={"Content-Type": "application/x-image", "Accept": accept},
            timeout=600,
        )
        payload = {} if accept == "image/jpeg" and response.status_code == 200 else response.json()
        return name, response.status_code, payload

    with ThreadPoolExecutor(len(inputs)) as pool:  # all at once
        outcomes = list(pool.map(send, inputs))
    for name, status, payload in outcomes:
        if name == "bomb-header":
            assert status == 413 and payload["error"]["code"] == "image_too_large"  # type: ignore[index]
        else:
            assert status == 200, (name, payload)
    metrics = httpx.get(f"{url}/metrics").json()
    peak_mb = metrics["peak_rss_mb"]
    bound_mb = idle_mb + BYTES_PER_BUDGET_PIXEL * BUDGET_MPIX * 1e6 / 2**20 + 2 * bodies_mb
    print(
        f"\nserver peak RSS {peak_mb:.0f} MB (idle {idle_mb:.0f} MB, growth {peak_mb - idle_mb:.0f} MB) for"
        f" {len(inputs)} large/hostile images at once; bound {bound_mb:.0f} MB;"
        f" budget peak {metrics.get('decode_budget_peak_mpix')} MP"
    )
    assert peak_mb <= bound_mb
