"""The formats phones and cameras produce: HEIC/HEIF, AVIF, MPO, animated GIF/WebP. Every file is made
here, at run time, from a COCO image with people in it; each must decode upright at its size, keep the
pixel limit from its header, and get its persons through the real server."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from batch.errors import ImageTooLarge, InvalidImage
from batch.inference.decode import decode, decode_image, open_image
from tests.conftest import COCO_DIR, ServerFactory

ORIENTATION = 0x0112
LIMIT = 50_000_000


@cache
def coco_photo() -> Image.Image:
    """The COCO val-mini image whose largest annotated person is biggest: the model finds them untrained-for."""
    annotations = json.loads((COCO_DIR / "person_keypoints.json").read_text())
    best = max(annotations["annotations"], key=lambda a: a["area"] if a.get("num_keypoints", 0) >= 10 else 0)
    entry = next(i for i in annotations["images"] if i["id"] == best["image_id"])
    with Image.open(Path(COCO_DIR) / "images" / entry["file_name"]) as image:
        return image.convert("RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def rotated_exif() -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    return exif.tobytes()


def frames(image: Image.Image) -> list[Image.Image]:
    """The photo and two different frames after it (an animation or a camera's second picture)."""
    return [image, image.rotate(15), image.resize((image.width // 2, image.height // 2)).resize(image.size)]


def heic(image: Image.Image) -> bytes:
    return encode(image, "HEIF", quality=90)


def heic_grid(image: Image.Image) -> bytes:
    """As iPhones write them: the picture in a grid of tiles (Apple's are 512 px; 256 here, for 640 px)."""
    import pillow_heif

    saved, pillow_heif.options.GRID_TILE_SIZE = pillow_heif.options.GRID_TILE_SIZE, 256
    try:
        return encode(image, "HEIF", quality=90)
    finally:
        pillow_heif.options.GRID_TILE_SIZE = saved


def heic_rotated(image: Image.Image) -> bytes:
    return encode(image, "HEIF", quality=90, exif=rotated_exif())


def heif_sequence(image: Image.Image) -> bytes:
    return encode(image, "HEIF", quality=90, save_all=True, append_images=frames(image)[1:])


def avif(image: Image.Image) -> bytes:
    return encode(image, "AVIF", quality=90)


def avif_rotated(image: Image.Image) -> bytes:
    return encode(image, "AVIF", quality=90, exif=rotated_exif())


def mpo(image: Image.Image) -> bytes:
    return encode(image, "MPO", quality=95, save_all=True, append_images=frames(image)[1:2])


def gif_animated(image: Image.Image) -> bytes:
    return encode(image, "GIF", save_all=True, append_images=frames(image)[1:], duration=100)


def webp_animated(image: Image.Image) -> bytes:
    return encode(image, "WEBP", quality=90, save_all=True, append_images=frames(image)[1:], duration=100)


# name, content type, builder, expected frame count, stored the other way round (EXIF orientation 6)
Builder = Callable[[Image.Image], bytes]
FORMATS: list[tuple[str, str, Builder, int, bool]] = [
    ("heic", "image/heic", heic, 1, False),
    ("heic-grid", "image/heic", heic_grid, 1, False),
    ("heic-rotated", "image/heic", heic_rotated, 1, True),
    ("heif-sequence", "image/heif", heif_sequence, 3, False),
    ("avif", "image/avif", avif, 1, False),
    ("avif-rotated", "image/avif", avif_rotated, 1, True),
    ("mpo", "image/mpo", mpo, 2, False),
    ("gif-animated", "image/gif", gif_animated, 3, False),
    ("webp-animated", "image/webp", webp_animated, 3, False),
]
IDS = [f[0] for f in FORMATS]


def upright(image: Image.Image, rotated: bool) -> np.ndarray:
    """What a viewer shows: the pixels as stored, turned by the EXIF orientation (6: 90 degrees clockwise)."""
    return np.asarray(image.transpose(Image.Transpose.ROTATE_270) if rotated else image, dtype=np.float32)


def stored(image: Image.Image, rotated: bool) -> Image.Image:
    """The pixels to store so that orientation 6 shows `image` upright."""
    return image.transpose(Image.Transpose.ROTATE_90) if rotated else image


@pytest.mark.parametrize(("name", "content_type", "build", "frame_count", "rotated"), FORMATS, ids=IDS)
def test_each_format_decodes_its_first_frame_upright(
    name: str, content_type: str, build: Builder, frame_count: int, rotated: bool
) -> None:
    photo = coco_photo()
    data = build(stored(photo, rotated))
    source = open_image(data, max_pixels=LIMIT)
    assert (source.width, source.height) == photo.size
    assert source.frames == frame_count
    decoded = decode(source)
    assert decoded.rgb.shape == (photo.height, photo.width, 3)
    # The first frame, upright: close to the photo (lossy codecs, GIF's palette), far from the other
    # frames and from the photo turned the wrong way.
    error = np.abs(decoded.rgb.astype(np.float32) - upright(photo, False)).mean()
    assert error < 12, f"{name}: mean error {error:.1f} against the upright first frame"
    if frame_count > 1:
        second = np.asarray(frames(photo)[1], dtype=np.float32)
        assert np.abs(decoded.rgb.astype(np.float32) - second).mean() > 2 * error


@pytest.mark.parametrize(("name", "content_type", "build", "frame_count", "rotated"), FORMATS, ids=IDS)
def test_the_pixel_limit_is_checked_from_the_header_before_decoding(
    name: str, content_type: str, build: Builder, frame_count: int, rotated: bool
) -> None:
    photo = coco_photo()
    data = build(stored(photo, rotated))
    pixels = photo.width * photo.height
    with pytest.raises(ImageTooLarge):
        open_image(data, max_pixels=pixels - 1)
    # At the limit the header is accepted and nothing is decoded yet (Pillow's pixel store is unset):
    # the refusal above came from the header alone, for every opener and every frame count.
    source = open_image(data, max_pixels=pixels)
    assert getattr(source.image, "_im", None) is None


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("truncated-heic", lambda: encode(coco_photo(), "HEIF")[:600]),
        ("truncated-avif", lambda: encode(coco_photo(), "AVIF")[:600]),
        ("heic-brand-only", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64),
        ("text", lambda: b"not an image at all, whatever Ultralytics would install for it"),
    ],
)
def test_bad_input_is_refused_and_never_installs_a_plugin(
    name: str, data: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ultralytics' patched `Image.open` pip-installs a HEIF plugin on unidentified data. The decoder uses
    Pillow's own opener, and registering pillow-heif must not change that."""
    import ultralytics.utils.checks

    installs: list[object] = []
    monkeypatch.setattr(ultralytics.utils.checks, "check_requirements", lambda *a, **k: installs.append(a))
    with pytest.raises(InvalidImage) as caught:
        decode_image(data(), max_pixels=LIMIT)
    assert caught.value.message
    assert installs == []


# --- through the real server ------------------------------------------------------------------------

SERVER_LIMIT = 1_000_000  # pixels: COCO's photos (<= 640 x 640) pass, the enlarged HEIC below does not


@pytest.fixture(scope="module")
def limited_server(server_factory: ServerFactory) -> str:
    return server_factory(POSE_MAX_IMAGE_PIXELS=str(SERVER_LIMIT))


def post(url: str, body: bytes, content_type: str, accept: str = "application/json") -> httpx.Response:
    headers = {"Content-Type": content_type, "Accept": accept}
    return httpx.post(f"{url}/invocations", content=body, headers=headers, timeout=120)


@pytest.mark.slow
def test_every_format_gets_its_persons_through_the_server(limited_server: str) -> None:
    photo = coco_photo()
    reference = post(limited_server, encode(photo, "PNG"), "image/png").json()
    assert reference["persons"], "the COCO photo must have people the model finds"
    for name, content_type, build, frame_count, rotated in FORMATS:
        response = post(limited_server, build(stored(photo, rotated)), content_type)
        assert response.status_code == 200, f"{name}: {response.text}"
        record = response.json()
        assert record["image"] == {"width": photo.width, "height": photo.height}, name
        assert record["persons"], f"{name}: no persons"
        # The same people where the lossless PNG has them (upright: a turned decode would move them).
        best = max(record["persons"], key=lambda p: p["score"])
        ref = max(reference["persons"], key=lambda p: p["score"])
        assert np.abs(np.subtract(best["box"], ref["box"])).max() < 0.05 * max(photo.size), name
        assert record.get("frames") == (frame_count if frame_count > 1 else None), name


@pytest.mark.slow
def test_a_heic_annotated_image_and_one_over_the_pixel_limit(limited_server: str) -> None:
    photo = coco_photo()
    annotated = post(limited_server, encode(photo, "HEIF"), "image/heic", accept="image/jpeg")
    assert annotated.status_code == 200 and annotated.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(annotated.content)) as image:
        assert image.size == photo.size

    big = photo.resize((1280, 1280 * photo.height // photo.width))  # > SERVER_LIMIT pixels
    refused = post(limited_server, encode(big, "HEIF", quality=50), "image/heic")
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "image_too_large"
    assert "limit" in refused.json()["error"]["message"]


# --- memory: what a decode costs against what it reserves ---------------------------------------------

MEASURE = """
import resource, sys
from PIL import Image
from batch.inference.decode import decode, open_image
from tests.builders import encode
fmt, path = sys.argv[1], sys.argv[2]
decode(open_image(encode(Image.new("RGB", (64, 48), (90, 120, 30)), fmt), max_pixels=10**8))  # codec loaded
data = open(path, "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
source = open_image(data, max_pixels=10**8)
reserved = source.pixels_at(1)
decode(source)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / reserved)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "size"), [("AVIF", (4032, 3024)), ("HEIF", (2016, 1512))])
def test_decoding_stays_within_the_budgets_bytes_per_reserved_pixel(
    fmt: str, size: tuple[int, int], tmp_path: Path
) -> None:
    """The pixel budget's bound (README: 12 bytes per reserved pixel) holds for AV1 and HEVC decoders,
    which keep their own planes: measured as the peak RSS of a fresh process decoding one photo."""
    import subprocess
    import sys

    noise = np.random.default_rng(0).integers(-8, 8, (size[1], size[0], 3), dtype=np.int16)
    photo = np.asarray(coco_photo().resize(size, Image.Resampling.BICUBIC), dtype=np.int16) + noise
    path = tmp_path / "photo"
    path.write_bytes(encode(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)), fmt, quality=80))
    out = subprocess.run([sys.executable, "-c", MEASURE, fmt, str(path)], capture_output=True, text=True, check=True)
    per_pixel = float(out.stdout.strip().splitlines()[-1])
    assert per_pixel <= 12.0, f"{fmt}: {per_pixel:.1f} bytes of peak RSS per reserved pixel"
