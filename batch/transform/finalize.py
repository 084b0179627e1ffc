"""After a transform job: every input image gets its outputs at the mirrored keys, or an error record,
and the job gets one `_SUMMARY.json`.

- images mode: each `<rel>.out` holds a PoseResult with `annotated_jpeg_base64` (or an error record);
  it is split into `keypoints/<rel>.json` (without the base64) and `annotated/<rel>` (the JPEG).
- manifest mode: the container already wrote the outputs; the `.out` lines say which images failed.
- either mode: an image without any result (its file's request failed, the job stopped) gets an
  error record naming why. Running it twice gives the same objects (events can be duplicated).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from batch.errors import error_record
from batch.s3_uri import S3Uri
from batch.transform.plan import JobPlan, Shard, annotated_uri, keypoints_uri, summary_uri

log = logging.getLogger(__name__)

_MAX_FAILURES_LISTED = 10_000


@dataclass(frozen=True)
class ImageStatus:
    rel: str
    error: dict[str, str] | None = None


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _error_from(value: Any) -> dict[str, str]:
    """The container's `{"code", "message"}`, tolerating anything else in its place."""
    error = value if isinstance(value, dict) else {}
    return _error(str(error.get("code", "error")), str(error.get("message", "")))


def read_object(s3: Any, uri: S3Uri) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        return body
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def _put_json(s3: Any, uri: S3Uri, data: Any) -> None:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType="application/json")


class Finalizer:
    def __init__(self, s3: Any, plan: JobPlan, job: dict[str, Any], *, workers: int = 16) -> None:
        self.s3 = s3
        self.plan = plan
        self.job = job
        self.workers = workers
        reason = job.get("FailureReason") or f"the job ended {job.get('TransformJobStatus', 'unknown')}"
        self.missing = _error(
            "no_transform_output",
            f"the transform job produced no result for this image (job {plan.job_name}: {reason})",
        )

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        with ThreadPoolExecutor(self.workers) as pool:
            if self.plan.mode == "images":
                outcomes = list(pool.map(self._image, self.plan.keys))
            else:
                outcomes = [o for shard in pool.map(self._shard, self.plan.shards) for o in shard]
            errors = [o for o in outcomes if o.error is not None]
            list(pool.map(self._write_error, errors))
        summary = self._summary(outcomes, time.monotonic() - started)
        _put_json(self.s3, summary_uri(self.plan.output_uri), summary)
        return summary

    def _write_error(self, outcome: ImageStatus) -> None:
        error = outcome.error or {}
        record = error_record(error.get("code", "error"), error.get("message", ""))
        _put_json(self.s3, keypoints_uri(self.plan.output_uri, outcome.rel), record)

    def _image(self, rel: str) -> ImageStatus:
        body = read_object(self.s3, self.plan.transform_output_uri.child(rel + ".out"))
        if body is None:
            return ImageStatus(rel, self.missing)
        try:
            record = json.loads(body)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            return ImageStatus(rel, _error("invalid_transform_output", f"the job's output is not a record: {exc}"))
        if "error" in record:
            return ImageStatus(rel, _error_from(record["error"]))
        encoded = record.pop("annotated_jpeg_base64", None)
        output = self.plan.output_uri
        if encoded:
            try:
                jpeg = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return ImageStatus(rel, _error("invalid_transform_output", "annotated_jpeg_base64 is not base64"))
            target = annotated_uri(output, rel)
            self.s3.put_object(Bucket=target.bucket, Key=target.key, Body=jpeg, ContentType="image/jpeg")
        _put_json(self.s3, keypoints_uri(output, rel), record)
        return ImageStatus(rel)

    def _shard(self, shard: Shard) -> list[ImageStatus]:
        body = read_object(self.s3, self.plan.transform_output_uri.child(shard.rel + ".out"))
        if body is None:
            return [ImageStatus(rel, self.missing) for rel in shard.images]
        lines: dict[str, dict[str, Any]] = {}
        for raw in body.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and isinstance(line.get("image"), str):
                lines[line["image"]] = line
        outcomes = []
        for rel in shard.images:
            line = lines.get(str(self.plan.image_uri(rel)))
            if line is None:
                outcomes.append(ImageStatus(rel, _error("missing_result", "the container answered no line for it")))
            elif line.get("status") == "ok":
                outcomes.append(ImageStatus(rel))
            else:
                outcomes.append(ImageStatus(rel, _error_from(line.get("error"))))
        return outcomes

    def _summary(self, outcomes: list[ImageStatus], finalize_s: float) -> dict[str, Any]:
        failed = [o for o in outcomes if o.error is not None]
        created, started, ended = (
            _epoch(self.job.get(k)) for k in ("CreationTime", "TransformStartTime", "TransformEndTime")
        )
        transform_s = (ended - started) if started is not None and ended is not None else None
        done = len(outcomes) - len(failed)
        return {
            "job_name": self.plan.job_name,
            "status": self.job.get("TransformJobStatus"),
            "failure_reason": self.job.get("FailureReason"),
            "mode": self.plan.mode,
            "input": self.plan.input,
            "output": self.plan.output,
            "images": len(outcomes),
            "done": done,
            "failed": len(failed),
            "failures": [
                {"key": self.plan.image_uri(o.rel).key, "error": o.error} for o in failed[:_MAX_FAILURES_LISTED]
            ],
            "timings": {
                "created": _iso(created),
                "started": _iso(started),
                "ended": _iso(ended),
                "transform_seconds": None if transform_s is None else round(transform_s, 3),
                "finalize_seconds": round(finalize_s, 3),
                "images_per_second": round(len(outcomes) / transform_s, 3) if transform_s else None,
            },
            "finalized_at": _iso(time.time()),
        }


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 1e11 else float(value)
    return None


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def existing_summary(s3: Any, plan: JobPlan, status: str) -> dict[str, Any] | None:
    """The summary this job already got for this end state, if any (duplicate events)."""
    body = read_object(s3, summary_uri(plan.output_uri))
    if body is None:
        return None
    summary: dict[str, Any] = json.loads(body)
    if summary.get("job_name") == plan.job_name and summary.get("status") == status:
        return summary
    return None


def finalize(s3: Any, plan: JobPlan, job: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
    """Finalise once per job and end state; `force` redoes it."""
    if not force:
        found = existing_summary(s3, plan, str(job.get("TransformJobStatus")))
        if found is not None:
            return found
    return Finalizer(s3, plan, job).run()
