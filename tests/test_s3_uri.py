"""S3 URIs: parsing, refusals (a structured `invalid_s3_uri` error, also a ValueError), prefixes, children."""

from __future__ import annotations

import pytest

from batch.errors import InvalidS3Uri
from batch.s3_uri import S3Uri


@pytest.mark.parametrize(
    ("uri", "bucket", "key"),
    [
        ("s3://bucket/key.jpg", "bucket", "key.jpg"),
        ("s3://my.bucket-1/a/b c/é.jpg", "my.bucket-1", "a/b c/é.jpg"),
        ("s3://bucket/dir/", "bucket", "dir/"),
    ],
)
def test_parse(uri: str, bucket: str, key: str) -> None:
    parsed = S3Uri.parse(uri)
    assert (parsed.bucket, parsed.key) == (bucket, key)
    assert str(parsed) == uri


@pytest.mark.parametrize(
    "uri",
    ["http://bucket/key", "bucket/key", "s3://", "s3://Bucket/key", "s3://a/key", "s3://bucket", "s3://bucket/"],
)
def test_refused(uri: str) -> None:
    with pytest.raises(InvalidS3Uri) as caught:
        S3Uri.parse(uri)
    assert caught.value.code == "invalid_s3_uri" and isinstance(caught.value, ValueError)


def test_empty_key_only_when_allowed() -> None:
    assert S3Uri.parse("s3://bucket", allow_empty_key=True) == S3Uri("bucket", "")
    assert S3Uri.parse("s3://bucket/", allow_empty_key=True).prefix == ""


@pytest.mark.parametrize(
    ("uri", "prefix", "child"),
    [
        ("s3://b1b/in", "in/", "s3://b1b/in/x.jpg"),
        ("s3://b1b/in/", "in/", "s3://b1b/in/x.jpg"),
        ("s3://b1b/", "", "s3://b1b/x.jpg"),
    ],
)
def test_prefix_and_child(uri: str, prefix: str, child: str) -> None:
    parsed = S3Uri.parse(uri, allow_empty_key=True)
    assert parsed.prefix == prefix
    assert str(parsed.child("x.jpg")) == child


@pytest.mark.parametrize("rel", ["/x.jpg", "a//x.jpg", "//x.jpg", "a/./x.jpg", "a/../x.jpg"])
def test_a_child_key_is_joined_exactly(rel: str) -> None:
    """S3 keys are exact strings: `in/x.jpg` and `in//x.jpg` are two objects, so nothing is normalised."""
    assert S3Uri.parse("s3://b1b/in/").child(rel) == S3Uri("b1b", "in/" + rel)
    assert S3Uri.parse("s3://b1b/", allow_empty_key=True).child(rel) == S3Uri("b1b", rel)
