from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from batch.errors import EmptyBody, ImageTooLarge, InvalidImage
from batch.inference.decode import decode_image
from tests.builders import encode, gradient, png_header_only

LIMIT = 50_000_000


GOOD = [
    ("jpeg", lambda: encode(gradient(), "JPEG", quality=95)),
    ("png", lambda: encode(gradient(), "PNG")),
    ("webp", lambda: encode(gradient(), "WEBP", lossless=True)),
    ("bmp", lambda: encode(gradient(), "BMP")),
    ("tiff", lambda: encode(gradient(), "TIFF")),
    ("grayscale", lambda: encode(gradient().convert("L"), "PNG")),
    ("palette", lambda: encode(gradient().convert("P"), "PNG")),
    ("rgba", lambda: encode(gradient().convert("RGBA"), "PNG")),
    ("cmyk-jpeg", lambda: encode(gradient().convert("CMYK"), "JPEG")),
    ("16-bit", lambda: encode(Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)), "PNG")),
]


@pytest.mark.parametrize(("name", "make"), GOOD, ids=[g[0] for g in GOOD])
def test_supported_inputs_decode_to_rgb(name: str, make: object) -> None:
    decoded = decode_image(make(), max_pixels=LIMIT)  # type: ignore[operator]
    assert decoded.rgb.shape == (48, 64, 3)
    assert decoded.rgb.dtype == np.uint8
    assert decoded.rgb.flags.c_contiguous


def test_16_bit_keeps_its_range() -> None:
    values = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    decoded = decode_image(encode(Image.fromarray(values), "PNG"), max_pixels=LIMIT)
    assert decoded.rgb[0, 0, 0] == 0
    assert decoded.rgb[-1, -1, 0] >= 240  # scaled, not clipped to white everywhere
    assert len(np.unique(decoded.rgb[..., 0])) > 100


def test_exif_orientation_is_applied() -> None:
    image = gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encode(image, "JPEG", quality=95, exif=exif), max_pixels=LIMIT)
    assert decoded.rgb.shape == (64, 48, 3)  # upright: width and height swapped
    # After a clockwise rotation the red top-left corner is at the top-right.
    assert decoded.rgb[0, -1, 0] > 200 and decoded.rgb[0, -1, 2] < 60


BAD = [
    ("empty", b"", EmptyBody),
    ("text", b"hello, this is not an image", InvalidImage),
    ("truncated-jpeg", encode(gradient(640, 480), "JPEG")[:1500], InvalidImage),
    ("corrupt-png", encode(gradient(), "PNG")[:40] + b"\x00" * 200, InvalidImage),
    ("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", InvalidImage),
    ("bomb-header", png_header_only(30000, 30000), ImageTooLarge),
]


@pytest.mark.parametrize(("name", "data", "error"), BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_raise_structured_errors(name: str, data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        decode_image(data, max_pixels=LIMIT)
    assert caught.value.message  # type: ignore[attr-defined]


CHEAP = [
    (
        "16-bit",
        lambda: Image.fromarray(np.arange(2000, dtype=np.uint16)[:, None] * 31 + np.arange(1500, dtype=np.uint16)),
    ),
    ("palette", lambda: gradient(1500, 2000).convert("P")),
    ("rgba", lambda: gradient(1500, 2000).convert("RGBA")),
    ("cmyk", lambda: gradient(1500, 2000).convert("CMYK")),
]


@pytest.mark.parametrize(("name", "make"), CHEAP, ids=[c[0] for c in CHEAP])
def test_conversions_make_no_float64_copies(name: str, make: object) -> None:
    """What numpy and Python allocate while converting: the RGB result (3 B/px) and at most one
    source-sized copy. The float64 conversion used before took more than 16 B/px."""
    import tracemalloc

    image = make()  # type: ignore[operator]
    data = encode(image, "TIFF" if name == "cmyk" else "PNG")
    pixels = image.width * image.height
    tracemalloc.start()
    try:
        decoded = decode_image(data, max_pixels=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.rgb.shape == (image.height, image.width, 3)
    assert peak <= 8 * pixels, f"{peak / pixels:.1f} bytes per pixel"
