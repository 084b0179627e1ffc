"""The container over HTTP: the real entry point, the real model on the CPU."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from batch.local.moto_server import MotoServer
from tests.builders import encode, gradient, png_header_only
from tests.conftest import ServerFactory

pytestmark = pytest.mark.slow

ATTRS = "X-Amzn-SageMaker-Custom-Attributes"


def post(url: str, body: bytes, content_type: str | None = "image/jpeg", **headers: str) -> httpx.Response:
    all_headers = {"Content-Type": content_type} if content_type else {}
    all_headers.update(headers)
    return httpx.post(f"{url}/invocations", content=body, headers=all_headers, timeout=60)


def test_ping_and_execution_parameters(server_url: str) -> None:
    assert httpx.get(f"{server_url}/ping").status_code == 200
    params = httpx.get(f"{server_url}/execution-parameters").json()
    assert params["BatchStrategy"] == "MULTI_RECORD"
    assert params["MaxConcurrentTransforms"] * params["MaxPayloadInMB"] <= 100


def test_openapi_schema_is_published(server_url: str) -> None:
    schema = httpx.get(f"{server_url}/openapi.json").json()
    assert "/invocations" in schema["paths"]


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/x-image", "image/png", "image/anything"])
def test_pose_result_in_original_pixels(server_url: str, sample_images: dict[str, bytes], content_type: str) -> None:
    response = post(server_url, sample_images["bus.jpg"], content_type)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["image"] == {"width": 810, "height": 1080}
    assert result["model"] == "yolo11n-pose.pt"
    assert result["keypoint_names"][0] == "nose" and len(result["keypoint_names"]) == 17
    assert len(result["skeleton"]) == 19
    persons = result["persons"]
    assert len(persons) >= 3  # four people stand in front of the bus
    for person in persons:
        x1, y1, x2, y2 = person["box"]
        assert 0 <= x1 < x2 <= 810 and 0 <= y1 < y2 <= 1080
        assert len(person["keypoints"]) == 17
        assert all(0 <= x <= 810 and 0 <= y <= 1080 and 0 <= c <= 1 for x, y, c in person["keypoints"])


def test_no_person_is_an_empty_result(server_url: str) -> None:
    response = post(server_url, encode(gradient(320, 240), "PNG"), "image/png")
    assert response.status_code == 200
    assert response.json()["persons"] == []


def test_thresholds_from_custom_attributes(server_url: str, sample_images: dict[str, bytes]) -> None:
    loose = post(server_url, sample_images["bus.jpg"], **{ATTRS: "conf=0.001;max_det=300"}).json()
    strict = post(server_url, sample_images["bus.jpg"], **{ATTRS: "conf=0.8"}).json()
    capped = post(server_url, sample_images["bus.jpg"], **{ATTRS: "conf=0.001;max_det=2"}).json()
    assert len(loose["persons"]) > len(strict["persons"])
    assert len(capped["persons"]) == 2
    assert loose["thresholds"]["conf"] == 0.001


BAD_REQUESTS: list[tuple[str, bytes, str | None, dict[str, str], int, str]] = [
    ("empty body", b"", "image/jpeg", {}, 400, "empty_body"),
    ("not an image", b"just some text", "image/jpeg", {}, 400, "invalid_image"),
    ("truncated jpeg", encode(gradient(640, 480), "JPEG")[:2000], "image/jpeg", {}, 400, "invalid_image"),
    ("decompression bomb", png_header_only(40000, 40000), "image/png", {}, 413, "image_too_large"),
    ("wrong content type", b"a,b\n1,2\n", "text/csv", {}, 415, "unsupported_media_type"),
    ("no content type", b"\xff\xd8", None, {}, 415, "unsupported_media_type"),
    ("unknown attribute", b"x", "image/jpeg", {ATTRS: "confidence=0.5"}, 400, "invalid_custom_attributes"),
    ("bad attribute value", b"x", "image/jpeg", {ATTRS: "iou=2"}, 400, "invalid_custom_attributes"),
    ("unproducible accept", b"x", "image/jpeg", {"Accept": "text/html"}, 406, "not_acceptable"),
    ("bad s3 uri", b"x", "image/jpeg", {ATTRS: "annotated_output=http://x/y"}, 400, "invalid_s3_uri"),
    ("imgsz above the cap", b"x", "image/jpeg", {ATTRS: "imgsz=4096"}, 400, "invalid_custom_attributes"),
    ("empty manifest", b"\n\n", "application/jsonlines", {}, 400, "invalid_manifest_line"),
    ("manifest past the line cap", b"s3://b/x.jpg\n" * 1001, "application/jsonlines", {}, 413, "payload_too_large"),
]


@pytest.mark.parametrize(
    ("name", "body", "content_type", "headers", "status", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_get_structured_errors(
    server_url: str, name: str, body: bytes, content_type: str | None, headers: dict[str, str], status: int, code: str
) -> None:
    response = post(server_url, body, content_type, **headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"] and "Traceback" not in error["message"]


def test_the_model_input_is_charged_to_the_pixel_budget(server_url: str) -> None:
    """A 98-byte 32x32 PNG at imgsz=4096 once took +4.8 GB while the budget saw 1 KP: the letterboxed canvas
    (here 1280 x 1280, the cap) is what the model's memory grows with, so the budget charges it (x9 on a CPU:
    ~100 bytes per canvas pixel in the forward against 12 per budget pixel)."""
    tiny = encode(gradient(32, 32), "PNG")
    response = post(server_url, tiny, "image/png", **{ATTRS: "imgsz=1280"})
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 32, "height": 32}
    peak_mpix = httpx.get(f"{server_url}/metrics").json()["decode_budget_peak_mpix"]
    assert peak_mpix >= 9 * 1280 * 1280 / 1e6 - 0.1  # 14.7 MP; the decode alone is 0.001 MP


def test_payload_limit(server_factory: ServerFactory, sample_images: dict[str, bytes]) -> None:
    url = server_factory(SAGEMAKER_MAX_PAYLOAD_IN_MB="0.1")
    response = post(url, sample_images["bus.jpg"])  # 137 KB > 0.1 MB
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert httpx.get(f"{url}/ping").status_code == 200  # still alive


def test_annotated_jpeg_on_accept(server_url: str, sample_images: dict[str, bytes]) -> None:
    response = post(server_url, sample_images["zidane.jpg"], Accept="image/jpeg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (1000, 562)  # 1280x720 shrunk to the 1000 px cap


def test_batch_transform_turns_bad_images_into_error_records(
    server_factory: ServerFactory, sample_images: dict[str, bytes]
) -> None:
    url = server_factory(SAGEMAKER_BATCH="True", POSE_EMBED_ANNOTATED="true")
    bad = post(url, b"not an image")
    assert bad.status_code == 200
    assert bad.json()["error"]["code"] == "invalid_image"
    good = post(url, sample_images["zidane.jpg"]).json()  # the transport envelope (batch.transport_envelope)
    assert good["record"]["persons"] and "annotated_jpeg_base64" not in good["record"]
    embedded = Image.open(io.BytesIO(__import__("base64").b64decode(good["annotated_jpeg_base64"])))
    assert embedded.size == (1000, 562)  # 1280x720 shrunk to the 1000 px cap


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_annotated_image_written_to_s3(
    server_factory: ServerFactory, moto: MotoServer, sample_images: dict[str, bytes]
) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="out-bucket")
    url = server_factory(**moto.environment, POSE_ALLOWED_BUCKETS="out-bucket")
    key = "annotated/nested dir/été+1.jpg"
    attribute = "annotated_output=s3://out-bucket/annotated/nested%20dir/%C3%A9t%C3%A9%2B1.jpg"
    response = post(url, sample_images["bus.jpg"], **{ATTRS: attribute})
    assert response.status_code == 200, response.text
    assert response.json()["persons"]
    written = s3.get_object(Bucket="out-bucket", Key=key)
    assert written["ContentType"] == "image/jpeg"
    assert Image.open(io.BytesIO(written["Body"].read())).size == (750, 1000)  # 810x1080 shrunk to the cap

    refused = post(url, sample_images["bus.jpg"], **{ATTRS: "annotated_output=s3://other-bucket/x.jpg"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "bucket_not_allowed"

    # Async inference: both outputs at mirrored keys; a bad image leaves its error record there.
    both = "annotated_output=s3://out-bucket/a/x%201.jpg;keypoints_output=s3://out-bucket/k/x%201.jpg.json"
    response = post(url, sample_images["zidane.jpg"], **{ATTRS: both})
    assert response.status_code == 200
    stored = json.loads(s3.get_object(Bucket="out-bucket", Key="k/x 1.jpg.json")["Body"].read())
    assert stored == response.json()
    assert s3.head_object(Bucket="out-bucket", Key="a/x 1.jpg")["ContentType"] == "image/jpeg"
    bad = post(url, b"corrupt", **{ATTRS: "keypoints_output=s3://out-bucket/k/bad.jpg.json"})
    assert bad.status_code == 400
    record = json.loads(s3.get_object(Bucket="out-bucket", Key="k/bad.jpg.json")["Body"].read())
    assert record == bad.json() and record["error"]["code"] == "invalid_image"


def test_manifest_lines(server_factory: ServerFactory, moto: MotoServer, sample_images: dict[str, bytes]) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="manifest-bucket")
    s3.put_object(Bucket="manifest-bucket", Key="in/a b/bus.jpg", Body=sample_images["bus.jpg"])
    s3.put_object(Bucket="manifest-bucket", Key="in/broken.jpg", Body=b"corrupt")
    url = server_factory(**moto.environment, POSE_ALLOWED_BUCKETS="manifest-bucket")
    lines = [
        '{"image": "s3://manifest-bucket/in/a b/bus.jpg", "keypoints": "s3://manifest-bucket/out/k/a b/bus.jpg.json",'
        ' "annotated": "s3://manifest-bucket/out/a/a b/bus.jpg"}',
        "s3://manifest-bucket/in/broken.jpg",
        '"s3://manifest-bucket/in/missing.jpg"',
        "s3://forbidden-bucket/x.jpg",
        "{not json",
    ]
    response = post(url, "\n".join(lines).encode() + b"\n", "application/jsonlines")
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"  # streamed as lines finish, never held whole
    answers = [json.loads(line) for line in response.text.splitlines()]
    assert [a["status"] for a in answers] == ["ok", "error", "error", "error", "error"]
    assert [a.get("error", {}).get("code") for a in answers[1:]] == [
        "invalid_image", "s3_error", "bucket_not_allowed", "invalid_manifest_line",
    ]  # fmt: skip
    direct = post(url, sample_images["bus.jpg"]).json()
    assert "source" not in direct  # a bare image request has no name
    named = {**direct, "source": "s3://manifest-bucket/in/a b/bus.jpg"}  # a manifest line names its image
    assert answers[0]["result"] == named
    stored = json.loads(s3.get_object(Bucket="manifest-bucket", Key="out/k/a b/bus.jpg.json")["Body"].read())
    assert stored == named
    assert s3.head_object(Bucket="manifest-bucket", Key="out/a/a b/bus.jpg")["ContentType"] == "image/jpeg"
