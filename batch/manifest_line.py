"""One line of a manifest request (Batch Transform manifest mode): the image to pose and where its
outputs go. Written by the launcher (`batch.transform.plan.write_shards`), read by the container
(`batch.transform_handler`). Standard library only.

    {"image": "s3://b/in/a.jpg", "keypoints": "s3://b/out/keypoints/a.jpg.json", "annotated": "s3://b/out/annotated/a.jpg"}

A line may also be a bare S3 URI, or a JSON string holding one (no outputs written then).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from batch.errors import InvalidManifest
from batch.s3_uri import S3Uri

FIELDS = ("image", "keypoints", "annotated")


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
