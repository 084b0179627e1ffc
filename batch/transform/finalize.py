"""After a transform job: every input image gets its outputs at the mirrored keys, or an error record,
and the job gets one `_SUMMARY.json`.

The work is cut into the plan's pages (at most 256 images, or one manifest shard, each), so that one
step is bounded in time and memory whatever the job's size. `Finalizer.run_page` does one page and
records its outcome; concurrent invocations run the pages (`batch.transform.fanout`), and the outcomes
are summed into the summary as they complete (`batch.transform.outcomes`). `finalize` does it all here,
in one process (the CLI's fallback).

- images mode: each `<rel>.out` is a transport envelope (`batch.transport_envelope`): the record goes
  to `keypoints/<rel>.json`, the annotated JPEG is streamed to `annotated/<rel>` in 5 MiB parts; no
  `.out` body is ever held whole.
- manifest mode: the container already wrote the outputs; the shard's `.out` lines (read as a stream,
  split on `\\n` only) say which images failed.
- either mode: an image without any result (its file's request failed, the job stopped), one the
  launcher refused, or one whose finalising failed gets an error record and a summary entry; one
  image never stops the others, the summary or the notification. Running it twice gives the same
  objects (events can be duplicated).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from batch.errors import KeyTooLong, error_record
from batch.output_layout import key_fits
from batch.transform.outcomes import existing_summary, group_count, page_outcome_uri, reduce_group, write_summary
from batch.transform.plan import JobPlan, Page, annotated_uri, keypoints_uri
from batch.transform.s3_objects import absent, put_json
from batch.transport_envelope import MAX_RECORD_BYTES, EnvelopeError, open_body

log = logging.getLogger(__name__)

WORKERS = 16  # S3 calls in flight per page; with 5 MiB parts, about 16 x 10 MiB of buffers at most
READ_CHUNK = 64 * 1024
_PART = 5 * 1024 * 1024
# One part in flight per image: memory per worker is bounded by the part size, not the JPEG's.
_UPLOAD = TransferConfig(multipart_threshold=_PART, multipart_chunksize=_PART, max_concurrency=1, use_threads=False)


@dataclass(frozen=True)
class ImageStatus:
    rel: str
    error: dict[str, str] | None = None
    persons: int = 0  # persons found in this image's result (0 for an error)


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _error_from(value: Any) -> dict[str, str]:
    """The container's `{"code", "message"}`, tolerating anything else in its place."""
    error = value if isinstance(value, dict) else {}
    return _error(str(error.get("code", "error")), str(error.get("message", "")))


def split_lines(chunks: Iterator[bytes], max_line: int = MAX_RECORD_BYTES) -> Iterator[bytes]:
    """JSON Lines from a stream, split on b"\\n" only (U+2028/U+2029/U+0085 are legal in S3 keys)."""
    pending = bytearray()
    for chunk in chunks:
        pending.extend(chunk)
        *complete, rest = pending.split(b"\n")
        yield from (bytes(line) for line in complete)
        pending = bytearray(rest)
        if len(pending) > max_line:
            raise EnvelopeError(f"a line longer than {max_line} bytes")
    if pending:
        yield bytes(pending)


class Finalizer:
    def __init__(self, s3: Any, plan: JobPlan, job: dict[str, Any], *, workers: int = WORKERS) -> None:
        self.s3 = s3
        self.plan = plan
        self.job = job
        self.status = str(job.get("TransformJobStatus", "unknown"))
        self.workers = workers
        reason = job.get("FailureReason") or f"the job ended {self.status}"
        self.missing = _error(
            "no_transform_output",
            f"the transform job produced no result for this image (job {plan.job_name}: {reason})",
        )

    # --- one page -------------------------------------------------------------------------------
    def run_page(self, index: int) -> dict[str, Any]:
        """Finalise one page and record its outcome; the same page twice gives the same objects."""
        started = time.monotonic()
        page = self.plan.page(self.s3, index)
        with ThreadPoolExecutor(self.workers) as pool:
            outcomes = self._shard(page) if page.shard else list(pool.map(self._guarded_image, page.images))
            outcomes += [ImageStatus(r.rel, _error(r.code, r.message)) for r in page.refused]
            failed = [o for o in outcomes if o.error is not None]
            list(pool.map(self._write_error, failed))
        outcome = {
            "images": len(outcomes),
            "done": len(outcomes) - len(failed),
            # Counted per page so the summary sums a few numbers per page, never per-image data.
            "persons": sum(o.persons for o in outcomes),
            "images_with_persons": sum(1 for o in outcomes if o.persons > 0),
            "failures": [{"key": self.plan.image_uri(o.rel).key, "error": o.error} for o in failed],
            "seconds": round(time.monotonic() - started, 3),
        }
        put_json(self.s3, page_outcome_uri(self.plan, self.status, index), outcome)
        return outcome

    def _write_error(self, outcome: ImageStatus) -> None:
        error = outcome.error or {}
        target = keypoints_uri(self.plan.output_uri, outcome.rel)
        if not key_fits(target.key):
            return  # key_too_long: the summary entry is its record, there is no key to write it at
        try:
            put_json(self.s3, target, error_record(error.get("code", "error"), error.get("message", "")))
        except Exception:
            log.exception("could not write the error record of %s", outcome.rel)

    def _guarded_image(self, rel: str) -> ImageStatus:
        try:
            return self._image(rel)
        except Exception as exc:  # one image never stops the page, the summary or the notification
            log.exception("finalising %s failed", rel)
            return ImageStatus(rel, _error("finalize_error", f"finalising this image failed: {type(exc).__name__}"))

    def _image(self, rel: str) -> ImageStatus:
        output = self.plan.output_uri
        keypoints, annotated = keypoints_uri(output, rel), annotated_uri(output, rel)
        if not (key_fits(keypoints.key) and key_fits(annotated.key)):
            return ImageStatus(rel, _key_too_long(keypoints.key))
        out = self.plan.transform_output_uri.child(rel + ".out")
        try:
            body = self.s3.get_object(Bucket=out.bucket, Key=out.key)["Body"]
        except ClientError as exc:
            if absent(self.s3, out, exc):
                return ImageStatus(rel, self.missing)
            raise
        try:
            opened = open_body(body.iter_chunks(READ_CHUNK))
            if not isinstance(opened.record, dict):
                raise EnvelopeError("not a JSON object")
            if "error" in opened.record:
                return ImageStatus(rel, _error_from(opened.record["error"]))
            if opened.jpeg is not None:
                self.s3.upload_fileobj(
                    opened.jpeg,
                    annotated.bucket,
                    annotated.key,
                    ExtraArgs={"ContentType": "image/jpeg"},
                    Config=_UPLOAD,
                )
        except EnvelopeError as exc:
            return ImageStatus(rel, _error("invalid_transform_output", f"the job's output is not a record: {exc}"))
        finally:
            body.close()
        record = _with_source(opened.record, str(self.plan.image_uri(rel)))
        put_json(self.s3, keypoints, record)
        return ImageStatus(rel, persons=_person_count(record))

    def _shard(self, page: Page) -> list[ImageStatus]:
        out = self.plan.transform_output_uri.child(f"{page.shard}.out")
        try:
            body = self.s3.get_object(Bucket=out.bucket, Key=out.key)["Body"]
        except ClientError as exc:
            if absent(self.s3, out, exc):
                return [ImageStatus(rel, self.missing) for rel in page.images]
            raise
        wanted = {str(self.plan.image_uri(rel)) for rel in page.images}
        lines: dict[str, tuple[int, dict[str, str] | None]] = {}  # image -> (persons, error)
        try:
            for raw in split_lines(body.iter_chunks(READ_CHUNK)):
                line = _json_object(raw)
                image = line.get("image") if line else None
                if line is not None and isinstance(image, str) and image in wanted:
                    if line.get("status") == "ok":
                        lines[image] = (_person_count(line.get("result")), None)
                    else:
                        lines[image] = (0, _error_from(line.get("error")))
        except EnvelopeError as exc:
            log.warning("shard %s: %s; its remaining images count as missing", page.shard, exc)
        finally:
            body.close()
        outcomes = []
        for rel in page.images:
            found = lines.get(str(self.plan.image_uri(rel)))
            if found is None:
                outcomes.append(ImageStatus(rel, _error("missing_result", "the container answered no line for it")))
            else:
                outcomes.append(ImageStatus(rel, found[1], persons=found[0]))
        return outcomes


def _person_count(record: Any) -> int:
    """How many persons a result record holds (0 for anything that is not one)."""
    persons = record.get("persons") if isinstance(record, dict) else None
    return len(persons) if isinstance(persons, list) else 0


def _with_source(record: dict[str, Any], source: str) -> dict[str, Any]:
    """The record naming its input image (the container only saw the bytes), in the schema's field order."""
    named = {key: record[key] for key in ("schema_version",) if key in record}
    named["source"] = source
    named.update((key, value) for key, value in record.items() if key != "source")
    return named


def _key_too_long(key: str) -> dict[str, str]:
    return _error(
        KeyTooLong.code,
        f"its output key would be {len(key.encode())} bytes, past S3's limit of 1024: shorten the input key "
        "or use a shorter output prefix",
    )


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def finalize_pages(
    s3: Any, plan: JobPlan, job: dict[str, Any], *, start: int = 0, deadline: float | None = None
) -> int | None:
    """Finalise pages from `start` until all are done (None) or `deadline` (time.monotonic()) has
    passed; then returns the next page to do. At least one page is done per call, so it always moves."""
    finalizer = Finalizer(s3, plan, job)
    index = start
    while index < plan.page_count:
        finalizer.run_page(index)
        index += 1
        if deadline is not None and time.monotonic() >= deadline and index < plan.page_count:
            return index
    return None


def finalize(s3: Any, plan: JobPlan, job: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
    """Finalise the whole job here, with no deadline (the CLI's fallback and the tests): every page, every
    group, the summary; once per job and end state, `force` redoes it. No notification (that is the
    completion handler's)."""
    status = str(job.get("TransformJobStatus"))
    if not force:
        found = existing_summary(s3, plan, status)
        if found is not None:
            return found
    finalize_pages(s3, plan, job)
    for group in range(group_count(plan)):
        reduce_group(s3, plan, status, group)
    return write_summary(s3, plan, job)
