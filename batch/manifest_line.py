"""One line of a manifest request (Batch Transform manifest mode): the image to pose and where its
outputs go. Written by the launcher (`batch.transform.plan.write_shards`), read by the container
(`batch.transform_handler`). Standard library only.

    {"image": "s3://b/in/a.jpg", "keypoints": "s3://b/out/keypoints/a.jpg.json", "annotated": "s3://b/out/annotated/a.jpg"}

A line may also be a bare S3 URI, or a JSON string holding one (no outputs written then).

One request carries at most `max_lines` lines, blank ones included (`split_manifest`; the container's
`POSE_MAX_MANIFEST_LINES`, default `DEFAULT_MAX_LINES`), and a line at most `MAX_LINE_CHARS` characters:
the body is counted before it is split, so a hostile body of millions of lines costs one pass over its bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from batch.errors import InvalidManifest, PayloadTooLarge
from batch.s3_uri import S3Uri

FIELDS = ("image", "keypoints", "annotated")
# The launcher's shards hold at most 256 images by default (`--images-per-shard`, which it keeps under this).
DEFAULT_MAX_LINES = 1000
# Three S3 URIs of 1,024-byte keys, escaped as JSON (\uXXXX: 6 characters a byte at worst), fit.
MAX_LINE_CHARS = 64 * 1024


def split_manifest(body: bytes, max_lines: int) -> list[str]:
    """The non-blank lines of a manifest body. `PayloadTooLarge` when it holds more than `max_lines`
    lines (blank ones included: counted over the raw bytes, before anything is split or decoded),
    `InvalidManifest` when it holds none. Split on "\n" only: U+2028, U+2029 and U+0085 (which
    str.splitlines() also splits on) are legal in S3 keys."""
    count = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    if count > max_lines:
        raise PayloadTooLarge(
            f"the manifest request holds {count:,} lines; the limit is {max_lines:,} per request "
            "(POSE_MAX_MANIFEST_LINES): cut the manifest into shards (the launcher does)"
        )
    lines = [text for raw in body.split(b"\n") if (text := raw.decode("utf-8", errors="replace")).strip()]
    if not lines:
        raise InvalidManifest("the manifest body holds no lines; expected one S3 image reference per line")
    return lines


@dataclass(frozen=True)
class ManifestLine:
    image: S3Uri
    keypoints: S3Uri | None = None
    annotated: S3Uri | None = None

    def to_json(self) -> str:
        fields = {"image": self.image, "keypoints": self.keypoints, "annotated": self.annotated}
        return json.dumps({k: str(v) for k, v in fields.items() if v is not None}, ensure_ascii=False)

    @classmethod
    def parse(cls, text: str) -> ManifestLine:
        """`{"image": uri, "keypoints"?: uri, "annotated"?: uri}`, a JSON string, or a bare S3 URI."""
        if len(text) > MAX_LINE_CHARS:
            raise InvalidManifest(f"manifest line is {len(text):,} characters; the limit is {MAX_LINE_CHARS:,}")
        stripped = text.strip()
        if stripped.startswith(("{", '"')):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise InvalidManifest(f"manifest line is not valid JSON: {exc.msg}") from None
        else:
            value = stripped
        if isinstance(value, str):
            return cls(S3Uri.parse(value))
        if not isinstance(value, dict) or not isinstance(value.get("image"), str):
            raise InvalidManifest('manifest line must be an S3 URI or an object with an "image" S3 URI')
        unknown = set(value) - set(FIELDS)
        if unknown:
            raise InvalidManifest(f"manifest line has unknown fields: {', '.join(sorted(unknown))}")

        def optional(name: str) -> S3Uri | None:
            found = value.get(name)
            if found is None:
                return None
            if not isinstance(found, str):
                raise InvalidManifest(f'manifest line field "{name}" must be an S3 URI string')
            return S3Uri.parse(found)

        return cls(S3Uri.parse(value["image"]), optional("keypoints"), optional("annotated"))
