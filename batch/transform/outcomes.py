"""What the finaliser records as it goes, and the reduce that turns it into `_SUMMARY.json`.

    _transform/<job>/finalized/<status>/job.json                       the job as described when it ended
    _transform/<job>/finalized/<status>/pages/g-<G>/page-<N>.json      one page's outcome (counts, failures)
    _transform/<job>/finalized/<status>/groups/g-<G>.json              one group's: its pages' outcomes summed
    _transform/<job>/finalized/<status>/summary.claim                  who writes the summary and notifies

Pages are finalised by concurrent invocations in any order, so no invocation is told that it did the
last one. Each learns it by listing after it writes (S3 lists what was written before, strongly): the
one whose page completes a group (`GROUP_PAGES` pages, one listing call) sums that group; the one whose
group completes the job (one more listing) claims the summary. Two that finish together may both sum a
group (the same object twice); the claim lets only one write the summary and notify. Memory stays
bounded: a group holds at most `MAX_FAILURES_LISTED` failures, and outcomes are read a window at a time.

Standard library and boto3 only: the Lambda handlers import it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from batch.s3_listing import list_objects
from batch.s3_uri import S3Uri
from batch.transform.plan import JobPlan, summary_uri
from batch.transform.s3_objects import put_json, read_json

MAX_FAILURES_LISTED = 10_000
GROUP_PAGES = 256  # pages per group: one listing call tells whether a group is complete
READERS = 16  # outcomes read at once
# What the finaliser needs of DescribeTransformJob (page invocations read it from job.json, not SageMaker).
JOB_FIELDS = (
    "TransformJobName",
    "TransformJobStatus",
    "FailureReason",
    "CreationTime",
    "TransformStartTime",
    "TransformEndTime",
)


def finalized_root(plan: JobPlan, status: str) -> S3Uri:
    return plan.root.child(f"finalized/{status}/")


def group_of(page: int) -> int:
    return page // GROUP_PAGES


def group_count(plan: JobPlan) -> int:
    return -(-plan.page_count // GROUP_PAGES)


def group_pages(plan: JobPlan, group: int) -> range:
    return range(group * GROUP_PAGES, min(plan.page_count, (group + 1) * GROUP_PAGES))


def _group_prefix(plan: JobPlan, status: str, group: int) -> S3Uri:
    return finalized_root(plan, status).child(f"pages/g-{group:05d}/")


def page_outcome_uri(plan: JobPlan, status: str, page: int) -> S3Uri:
    return _group_prefix(plan, status, group_of(page)).child(f"page-{page:06d}.json")


def _groups_prefix(plan: JobPlan, status: str) -> S3Uri:
    return finalized_root(plan, status).child("groups/")


def group_outcome_uri(plan: JobPlan, status: str, group: int) -> S3Uri:
    return _groups_prefix(plan, status).child(f"g-{group:05d}.json")


def job_record_uri(plan: JobPlan, status: str) -> S3Uri:
    return finalized_root(plan, status).child("job.json")


def claim_uri(plan: JobPlan, status: str) -> S3Uri:
    return finalized_root(plan, status).child("summary.claim")


def _count(s3: Any, prefix: S3Uri) -> int:
    return sum(1 for obj in list_objects(s3, prefix.bucket, prefix.key) if str(obj["Key"]).endswith(".json"))


# --- the job, as it ended ----------------------------------------------------------------------------
def save_job(s3: Any, plan: JobPlan, job: dict[str, Any]) -> None:
    """What the page invocations need of DescribeTransformJob, written once by the dispatcher."""
    record = {key: _epoch(job[key]) if key.endswith("Time") else job[key] for key in JOB_FIELDS if key in job}
    put_json(s3, job_record_uri(plan, str(job["TransformJobStatus"])), record)


def load_job(s3: Any, plan: JobPlan, status: str) -> dict[str, Any] | None:
    record = read_json(s3, job_record_uri(plan, status))
    return record if isinstance(record, dict) else None


# --- folding outcomes --------------------------------------------------------------------------------
@dataclass
class Totals:
    """Counts summed over pages or groups; failures listed up to `MAX_FAILURES_LISTED`."""

    images: int = 0
    done: int = 0
    failed: int = 0
    persons: int = 0
    images_with_persons: int = 0
    uncounted: bool = False  # a page finalised by a version that did not count persons yet
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add_page(self, body: dict[str, Any]) -> None:
        failures = body["failures"]
        self._add(body, failed=len(failures), uncounted="persons" not in body, failures=failures)

    def add_group(self, body: dict[str, Any]) -> None:
        self._add(body, failed=int(body["failed"]), uncounted=bool(body["uncounted"]), failures=body["failures"])

    def _add(self, body: dict[str, Any], *, failed: int, uncounted: bool, failures: list[dict[str, Any]]) -> None:
        self.images += int(body["images"])
        self.done += int(body["done"])
        self.failed += failed
        self.persons += int(body.get("persons", 0))
        self.images_with_persons += int(body.get("images_with_persons", 0))
        self.uncounted |= uncounted
        self.seconds += float(body.get("seconds", 0.0))
        self.failures += failures[: max(0, MAX_FAILURES_LISTED - len(self.failures))]

    def as_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "done": self.done,
            "failed": self.failed,
            "persons": self.persons,
            "images_with_persons": self.images_with_persons,
            "uncounted": self.uncounted,
            "seconds": round(self.seconds, 3),
            "failures": self.failures,
        }


def _fold(s3: Any, uris: list[S3Uri], add: Any) -> None:
    """Read `uris` a window at a time, in order, and `add` each; a missing one cannot be summed."""
    with ThreadPoolExecutor(READERS) as pool:
        for start in range(0, len(uris), READERS):
            window = uris[start : start + READERS]
            for uri, body in zip(window, pool.map(lambda u: read_json(s3, u), window), strict=True):
                if body is None:
                    raise RuntimeError(f"{uri} is missing: its page was not finalised")
                add(body)


def reduce_group(s3: Any, plan: JobPlan, status: str, group: int) -> None:
    """Sum one group's page outcomes into its group outcome (the same object whoever does it)."""
    totals = Totals()
    _fold(s3, [page_outcome_uri(plan, status, page) for page in group_pages(plan, group)], totals.add_page)
    put_json(s3, group_outcome_uri(plan, status, group), totals.as_json())


def complete_groups(s3: Any, plan: JobPlan, status: str, pages: range) -> bool:
    """After writing the outcomes of `pages`: sum each group they completed; True when every group of
    the job is summed, i.e. the summary can be written. Lists only after writing (see the module)."""
    summed = False
    for group in sorted({group_of(page) for page in pages}):
        if _count(s3, _group_prefix(plan, status, group)) == len(group_pages(plan, group)):
            reduce_group(s3, plan, status, group)
            summed = True
    return summed and _count(s3, _groups_prefix(plan, status)) == group_count(plan)


def write_summary(s3: Any, plan: JobPlan, job: dict[str, Any]) -> dict[str, Any]:
    """Fold every group outcome into `_SUMMARY.json`."""
    started = time.monotonic()
    status = str(job.get("TransformJobStatus"))
    totals = Totals()
    _fold(s3, [group_outcome_uri(plan, status, group) for group in range(group_count(plan))], totals.add_group)
    summary = build_summary(plan, job, totals)
    summary["timings"]["summarize_seconds"] = round(time.monotonic() - started, 3)
    put_json(s3, summary_uri(plan.output_uri), summary)
    return summary


def build_summary(plan: JobPlan, job: dict[str, Any], totals: Totals) -> dict[str, Any]:
    created, started, ended = (_epoch(job.get(k)) for k in ("CreationTime", "TransformStartTime", "TransformEndTime"))
    transform_s = (ended - started) if started is not None and ended is not None else None
    # None rather than a total that silently misses pages (the report then leaves the line out).
    persons = None if totals.uncounted else totals.persons
    with_persons = None if totals.uncounted else totals.images_with_persons
    return {
        "job_name": plan.job_name,
        "status": job.get("TransformJobStatus"),
        "failure_reason": job.get("FailureReason"),
        "mode": plan.mode,
        "input": plan.input,
        "output": plan.output,
        "images": totals.images,
        "done": totals.done,
        "failed": totals.failed,
        "persons": persons,  # over every image posed
        "images_with_persons": with_persons,
        "failures": totals.failures,
        "timings": {
            "created": _iso(created),
            "started": _iso(started),
            "ended": _iso(ended),
            "transform_seconds": None if transform_s is None else round(transform_s, 3),
            "finalize_seconds": round(totals.seconds, 3),  # the pages' own times, summed
            "images_per_second": round(totals.images / transform_s, 3) if transform_s else None,
        },
        "finalized_at": _iso(time.time()),
    }


def existing_summary(s3: Any, plan: JobPlan, status: str) -> dict[str, Any] | None:
    """The summary this job already got for this end state, if any (duplicate events)."""
    body = read_json(s3, summary_uri(plan.output_uri))
    if isinstance(body, dict) and body.get("job_name") == plan.job_name and body.get("status") == status:
        return body
    return None


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 1e11 else float(value)
    return None


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat()
