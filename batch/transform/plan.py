"""Where a batch transform job's files live under the user's output prefix, and the job plan.

    OUTPUT/keypoints/<rel>.json            result or error record per input image (user-facing)
    OUTPUT/annotated/<rel>                 annotated JPEG per input image (user-facing)
    OUTPUT/_SUMMARY.json                   counts, failures, timings of the last job
    OUTPUT/_transform/<job>/plan.json      what the launcher submitted (this module)
    OUTPUT/_transform/<job>/manifests/     manifest mode: the JSON Lines shards (the job's input)
    OUTPUT/_transform/<job>/out/           the job's S3OutputPath: `<rel>.out` files

The plan records every input key at launch time, so the finaliser can give each one a result or an
error record even when the job produced nothing for it. Its location travels in the job's
Environment (`POSEBATCH_PLAN`), which the serving container ignores.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from batch.output_layout import annotated_key, keypoints_key
from batch.s3_uri import S3Uri

Mode = Literal["images", "manifest"]
PLAN_ENV = "POSEBATCH_PLAN"
PLAN_VERSION = 1


# The transform job states SageMaker never leaves.
END_STATES = ("Completed", "Failed", "Stopped")


def keypoints_uri(output: S3Uri, rel: str) -> S3Uri:
    return output.child(keypoints_key(rel))


def annotated_uri(output: S3Uri, rel: str) -> S3Uri:
    return output.child(annotated_key(rel))


def summary_uri(output: S3Uri) -> S3Uri:
    return output.child("_SUMMARY.json")


def job_root(output: S3Uri, job_name: str) -> S3Uri:
    return output.child(f"_transform/{job_name}/")


@dataclass
class Shard:
    """One manifest file: its key relative to the manifests prefix and the image keys it lists."""

    rel: str
    images: list[str]


@dataclass
class JobPlan:
    job_name: str
    mode: Mode
    input: str
    output: str
    keys: list[str] = field(default_factory=list)
    shards: list[Shard] = field(default_factory=list)
    version: int = PLAN_VERSION

    @property
    def input_uri(self) -> S3Uri:
        return S3Uri.parse(self.input, allow_empty_key=True)

    @property
    def output_uri(self) -> S3Uri:
        return S3Uri.parse(self.output, allow_empty_key=True)

    @property
    def root(self) -> S3Uri:
        return job_root(self.output_uri, self.job_name)

    @property
    def plan_uri(self) -> S3Uri:
        return self.root.child("plan.json")

    @property
    def manifests_uri(self) -> S3Uri:
        return self.root.child("manifests/")

    @property
    def transform_output_uri(self) -> S3Uri:
        return self.root.child("out/")

    @property
    def transform_input_uri(self) -> S3Uri:
        return self.manifests_uri if self.mode == "manifest" else self.input_uri

    def image_uri(self, rel: str) -> S3Uri:
        return self.input_uri.child(rel)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobPlan:
        data: dict[str, Any] = json.loads(text)
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"unsupported job plan version {data.get('version')!r}")
        shards = [Shard(rel=s["rel"], images=list(s["images"])) for s in data.get("shards", [])]
        return cls(
            job_name=data["job_name"],
            mode=data["mode"],
            input=data["input"],
            output=data["output"],
            keys=list(data.get("keys", [])),
            shards=shards,
        )

    def save(self, s3: Any) -> None:
        uri = self.plan_uri
        s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=self.to_json().encode(), ContentType="application/json")

    @classmethod
    def load(cls, s3: Any, uri: S3Uri) -> JobPlan:
        body = s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        return cls.from_json(body)
