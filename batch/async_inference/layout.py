"""Where asynchronous inference reads and writes: one mapping from an input key to its outputs (the
mirrored layout of `batch.output_layout`), shared by the S3 trigger, the async client and the local
stand-in (standard library only, so it ships in the Lambda zip without the inference stack).

    <input prefix>/<rel>  ->  <output root>/keypoints/<rel>.json   result or error record (the container)
                          ->  <output root>/annotated/<rel>        annotated JPEG (the container)
    (a video: keypoints/<rel>.jsonl and the annotated MP4, named by `batch.output_layout`)
    SageMaker's own objects:  <output root>/_async/responses/      the endpoint's S3OutputPath
                              <output root>/_async/failures/       the endpoint's S3FailurePath
                              <output root>/_async/attempts/       retries under way (`retry.py`)
                              <output root>/_async/options/        options `submit` sent, so retries keep them

The container writes the mirrored keys itself (custom attributes `keypoints_output`,
`annotated_output`): InvokeEndpointAsync's `Filename` (32 chars of [A-Za-z0-9-_.], one dot) and
`S3OutputPathExtension` ([a-zA-Z0-9!_.*'()/-]) cannot name most keys (`a.jpg.json`, spaces, unicode),
so SageMaker's response and failure objects keep their default names under `_async/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from batch.content_types import input_type_for
from batch.errors import KeyTooLong
from batch.output_layout import ANNOTATED_FOLDER, KEYPOINTS_FOLDER, annotated_key, as_prefix, keypoints_key
from batch.s3_uri import S3Uri

ASYNC_FOLDER = "_async"
RESPONSES_PATH = ASYNC_FOLDER + "/responses"
FAILURES_PATH = ASYNC_FOLDER + "/failures"
ATTEMPTS_PATH = ASYNC_FOLDER + "/attempts"  # the async error handler's retry count per inference id
OPTIONS_PATH = ASYNC_FOLDER + "/options"  # per-request options `submit` sent, for the error handler's retries
MAX_INFERENCE_ID = 64  # InvokeEndpointAsync's limit
MAX_CUSTOM_ATTRIBUTES = 1024  # ASCII characters


def inference_id(bucket: str, key: str, version: str | None) -> str:
    """Deterministic per object version (versionId, else ETag): a duplicated or re-delivered event
    yields the same id, and so the same output, never a second one."""
    material = "\n".join((bucket, key, (version or "").strip('"')))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:MAX_INFERENCE_ID]


def output_root_of(s3_output_path: str) -> str:
    """`s3://bucket/prefix/` from an endpoint's `S3OutputPath` `s3://bucket/prefix/_async/responses`."""
    path = s3_output_path.rstrip("/")
    if not path.endswith("/" + RESPONSES_PATH) or not path.startswith("s3://"):
        raise ValueError(f"S3OutputPath {path} must end in /{RESPONSES_PATH}")
    return path[: -len(RESPONSES_PATH)]


@dataclass(frozen=True)
class Placement:
    """Everything one invocation needs to put its outputs at the mirrored keys."""

    input_uri: str
    relative_key: str
    content_type: str
    keypoints_uri: str
    annotated_uri: str

    @property
    def custom_attributes(self) -> str:
        return self.custom_attributes_with("")

    def custom_attributes_with(self, options: str) -> str:
        """Both output locations for the container, then the caller's per-request `options`
        (`conf=0.4;fps=5`, from `pose-batch submit`), then the input's URI (`source`, which the container
        puts in the result record) when it fits too; raises `KeyTooLong` when the outputs and options do
        not fit SageMaker's limit. Without `source` the record still has its input in its mirrored key."""
        # Percent-encoded so spaces, ';', '=' and non-ASCII keys survive the header as ASCII.
        attributes = (
            f"keypoints_output={quote(self.keypoints_uri, safe=':/')};"
            f"annotated_output={quote(self.annotated_uri, safe=':/')}"
        )
        if options:
            attributes = f"{attributes};{options}"
        if len(attributes) > MAX_CUSTOM_ATTRIBUTES:
            raise KeyTooLong(
                f"the output locations of {self.input_uri[:200]}{' and the options' if options else ''} need "
                f"{len(attributes)} characters of CustomAttributes once percent-encoded; SageMaker allows "
                f"{MAX_CUSTOM_ATTRIBUTES}: use a shorter key"
            )
        named = f"{attributes};source={quote(self.input_uri, safe=':/')}"
        # A long key must not turn a request that can succeed into a refused one: `source` is optional.
        return named if len(named) <= MAX_CUSTOM_ATTRIBUTES else attributes


@dataclass(frozen=True)
class AsyncLayout:
    """Input prefix in the input bucket, output root (bucket + prefix) for every output."""

    input_bucket: str
    input_prefix: str
    output_bucket: str
    output_prefix: str

    @classmethod
    def create(cls, input_uri: str, output_uri: str) -> AsyncLayout:
        """From `s3://bucket/input/` and `s3://bucket/output/`."""
        source = S3Uri.parse(input_uri, allow_empty_key=True)
        target = S3Uri.parse(output_uri, allow_empty_key=True)
        return cls(source.bucket, as_prefix(source.key), target.bucket, as_prefix(target.key))

    @property
    def output_root(self) -> str:
        return f"s3://{self.output_bucket}/{self.output_prefix}"

    @property
    def s3_output_path(self) -> str:
        """The endpoint's `AsyncInferenceConfig.OutputConfig.S3OutputPath` (SageMaker's responses)."""
        return self.output_root + RESPONSES_PATH

    @property
    def s3_failure_path(self) -> str:
        return self.output_root + FAILURES_PATH

    def attempts_key(self, request_id: str) -> str:
        """Where the async error handler counts the retries of one inference (`retry.py`)."""
        return f"{self.output_prefix}{ATTEMPTS_PATH}/{request_id}.json"

    def options_key(self, request_id: str) -> str:
        """The per-request options `pose-batch submit` sent with one inference: the error notification does
        not echo CustomAttributes, so a retry reads them here (`retry.py`)."""
        return f"{self.output_prefix}{OPTIONS_PATH}/{request_id}.json"

    def is_output_key(self, bucket: str, key: str) -> bool:
        """Outputs, SageMaker's `_async/` objects included, must never trigger inference (no loops)."""
        if bucket != self.output_bucket:
            return False
        if self.output_prefix:
            return key.startswith(self.output_prefix)
        return any(key.startswith(f + "/") for f in (KEYPOINTS_FOLDER, ANNOTATED_FOLDER, ASYNC_FOLDER))

    def relative_key(self, bucket: str, key: str) -> str | None:
        """The key below the input prefix; None when the object is not an input."""
        if bucket != self.input_bucket or not key.startswith(self.input_prefix):
            return None
        if self.is_output_key(bucket, key):
            return None
        relative = key[len(self.input_prefix) :]
        return relative if relative and not relative.endswith("/") else None

    def place(self, bucket: str, key: str) -> Placement | None:
        """The placement of an input object; None when it is not an image or a video under the input prefix."""
        relative = self.relative_key(bucket, key)
        content_type = input_type_for(key)
        if relative is None or content_type is None:
            return None
        return Placement(
            input_uri=f"s3://{bucket}/{key}",
            relative_key=relative,
            content_type=content_type,
            keypoints_uri=self.output_root + keypoints_key(relative),
            annotated_uri=self.output_root + annotated_key(relative),
        )
