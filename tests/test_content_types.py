"""Content types: what the container accepts (415 otherwise), what it produces (406 otherwise), and
which file names are images."""

from __future__ import annotations

import pytest

from batch.content_types import ENVELOPE, JPEG, JSON, check_request_type, image_type_for, negotiate_accept
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
        ("application/x-posebatch-envelope+json", ENVELOPE),
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


@pytest.mark.parametrize(
    ("head", "video"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", True),  # MP4
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", True),  # QuickTime MOV
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81", True),  # Matroska / WebM (EBML)
        (b"RIFF\x24\x00\x00\x00AVI LIST", True),  # AVI
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", False),  # HEIC photo: ISO-BMFF too, but an image
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", False),  # AVIF photo
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", False),  # WebP: RIFF, not AVI
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", False),
        (b"", False),
    ],
    ids=["mp4", "mov", "mkv", "avi", "heic", "avif", "webp", "jpeg", "empty"],
)
def test_videos_are_told_from_images_by_their_first_bytes(head: bytes, video: bool) -> None:
    from batch.content_types import looks_like_video

    assert looks_like_video(head) is video


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.mp4", "video/mp4"), ("b/C.MOV", "video/quicktime"), ("x.mkv", "video/x-matroska"), ("x.webm", "video/webm"),
     ("x.avi", "video/x-msvideo"), ("x.jpg", None), ("x.mp4.jsonl", None)],
)  # fmt: skip
def test_video_type_by_extension(name: str, expected: str | None) -> None:
    from batch.content_types import check_request_type, video_type_for

    assert video_type_for(name) == expected
    if expected:
        assert check_request_type(expected) == expected  # the container takes it
