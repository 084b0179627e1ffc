"""Content types: what the container accepts (415 otherwise), what it produces (406 otherwise), and
which file names are images."""

from __future__ import annotations

import pytest

from batch.content_types import JPEG, JSON, check_request_type, image_type_for, negotiate_accept
from batch.errors import NotAcceptable, UnsupportedMediaType


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("image/jpeg", "image/jpeg"),
        ("Image/PNG; charset=binary", "image/png"),
        ("application/x-image", "application/x-image"),
        ("image/avif", "image/avif"),
        ("application/jsonlines", "application/jsonlines"),
        ("application/jsonl", "application/jsonl"),
    ],
)
def test_accepted_request_types(content_type: str, expected: str) -> None:
    assert check_request_type(content_type) == expected


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/json", "application/octet-stream"])
def test_refused_request_types(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_request_type(content_type)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("application/jsonlines", JSON),
        ("image/jpeg", JPEG),
        ("text/html, image/*", JPEG),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str) -> None:
    assert negotiate_accept(accept) == expected


def test_unproducible_accept_is_refused() -> None:
    with pytest.raises(NotAcceptable):
        negotiate_accept("text/html")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", "image/jpeg"),
        ("dir/B.JPEG", "image/jpeg"),
        ("x.png", "image/png"),
        ("x.tif", "image/tiff"),
        ("x.webp", "image/webp"),
        ("x.bmp", "image/bmp"),
        ("IMG_0001.HEIC", "image/heic"),
        ("x.heif", "image/heif"),
        ("x.avif", "image/avif"),
        ("DSC_0001.MPO", "image/mpo"),
        ("anim.gif", "image/gif"),
        ("x.jpg.json", None),
        ("noext", None),
        ("dir.jpg/", None),
    ],
)
def test_image_type_by_extension(name: str, expected: str | None) -> None:
    assert image_type_for(name) == expected
