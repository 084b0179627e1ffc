"""Finalisation fanned out: the job's pages are finalised by concurrent invocations, then one reduce step
writes `_SUMMARY.json` and notifies.

    job ended -> completion handler: `dispatch` puts one task per run of pages on the pages queue
    pages queue -> page invocations, at most N at once (the event source's MaximumConcurrency on AWS,
                   the local stack's pollers): `handle_task` finalises its pages, sums any group they
                   complete, and the one that completes the last group `finish`es (summary + SNS)

A task is a few pages of one group (`TASK_PAGES`: one page of 256 images in images mode, 16 shards in
manifest mode, a few seconds' work either way). Tasks arrive at least once and in any order: a page
finalised twice writes the same objects, a group summed twice the same sum, and the summary is claimed
(`batch.transform.notification`). A task that keeps failing goes to the dead-letter queue (alarmed),
and the job then has no summary, as a stalled chain had none before.

Nothing in a task is trusted beyond the job's name: the plan must be that job's own, and the job as it
ended must have been recorded by the dispatcher (`job.json`), so a forged task can at most redo pages of
a job that was really finalised.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from batch.aws import Clients
from batch.s3_uri import S3Uri
from batch.transform.finalize import Finalizer
from batch.transform.notification import SummaryPending, finish
from batch.transform.outcomes import complete_groups, finalized_root, group_of, group_pages, load_job
from batch.transform.plan import END_STATES, JobPlan
from batch.transform.s3_objects import read_object

log = logging.getLogger(__name__)

TASK_PAGES = {"images": 1, "manifest": 16}  # cut at group ends: a task never spans two groups
_SEND_BATCH = 10  # SQS SendMessageBatch's limit
_SENDERS = 8
WINDOW = _SEND_BATCH * _SENDERS * 4  # tasks queued between two looks at the deadline


@dataclass(frozen=True)
class Task:
    """Pages [start, end) of one job's plan, for one end state."""

    job: str
    status: str
    plan: str  # the plan header's s3:// URI
    start: int
    end: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def parse(cls, body: str) -> Task:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("a task is a JSON object")
        return cls(str(data["job"]), str(data["status"]), str(data["plan"]), int(data["start"]), int(data["end"]))


def tasks(plan: JobPlan, status: str, start: int = 0) -> Iterator[Task]:
    size = TASK_PAGES[plan.mode]
    page = start
    while page < plan.page_count:
        end = min(page + size, group_pages(plan, group_of(page)).stop)
        yield Task(plan.job_name, status, str(plan.plan_uri), page, end)
        page = end


def dispatched_uri(plan: JobPlan, status: str) -> S3Uri:
    return finalized_root(plan, status).child("dispatched")


def dispatch(
    clients: Clients,
    queue_url: str,
    plan: JobPlan,
    status: str,
    *,
    start: int = 0,
    deadline: float | None = None,
    window: int = WINDOW,
) -> int | None:
    """Put the tasks from page `start` on the queue; None when all are sent, else the next page to send
    from (the deadline passed). At least one window of tasks is sent per call, so it always moves."""
    sqs = clients("sqs")
    pending = tasks(plan, status, start)
    with ThreadPoolExecutor(_SENDERS) as pool:
        while True:
            chunk = [task for _, task in zip(range(window), pending, strict=False)]
            if not chunk:
                s3 = clients("s3")
                marker = dispatched_uri(plan, status)
                s3.put_object(Bucket=marker.bucket, Key=marker.key, Body=b"")
                return None
            batches = [chunk[i : i + _SEND_BATCH] for i in range(0, len(chunk), _SEND_BATCH)]
            list(pool.map(lambda batch: _send(sqs, queue_url, batch), batches))
            if deadline is not None and time.monotonic() >= deadline and chunk[-1].end < plan.page_count:
                return chunk[-1].end


def _send(sqs: Any, queue_url: str, batch: list[Task]) -> None:
    entries = [{"Id": str(i), "MessageBody": task.to_json()} for i, task in enumerate(batch)]
    for _attempt in range(3):
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if not failed:
            return
        ids = {f["Id"] for f in failed}
        entries = [e for e in entries if e["Id"] in ids]
    raise RuntimeError(f"could not queue {len(entries)} finalisation task(s): {failed}")


def already_dispatched(s3: Any, plan: JobPlan, status: str) -> bool:
    return read_object(s3, dispatched_uri(plan, status)) is not None


def run_task(s3: Any, plan: JobPlan, job: dict[str, Any], task: Task) -> bool:
    """Finalise the task's pages; True when they completed the job (every group summed)."""
    finalizer = Finalizer(s3, plan, job)
    for page in range(task.start, task.end):
        finalizer.run_page(page)
    return complete_groups(s3, plan, task.status, range(task.start, task.end))


def handle_task(task: Task, *, clients: Clients, topic_arn: str | None, job_prefix: str) -> dict[str, Any] | None:
    """One task from the pages queue; returns the summary when this task completed the job."""
    if not task.job.startswith(job_prefix) or task.status not in END_STATES:
        log.warning("ignoring a task for job %r (%s): not ours", task.job, task.status)
        return None
    s3 = clients("s3")
    plan = _plan_at(s3, task.plan)
    job = load_job(s3, plan, task.status) if plan is not None and str(plan.plan_uri) == task.plan else None
    if plan is None or job is None or plan.job_name != task.job or job.get("TransformJobName") != task.job:
        log.warning("ignoring a task for job %r: no plan and ended job of its own at %s", task.job, task.plan)
        return None
    if not 0 <= task.start < task.end <= plan.page_count:
        log.warning("ignoring a task for job %r: pages %d-%d are not in its plan", task.job, task.start, task.end)
        return None
    if run_task(s3, plan, job, task):
        return finish(s3, plan, job, clients=clients, topic_arn=topic_arn)
    return None


def _plan_at(s3: Any, location: str) -> JobPlan | None:
    """The plan header at `location`, None if there is none (or it is not a plan)."""
    try:
        body = read_object(s3, S3Uri.parse(location))
        return JobPlan.from_json(body) if body is not None else None
    except (ValueError, KeyError, TypeError):  # not an S3 URI, not JSON, not a plan of ours
        return None


def handle_task_records(
    event: dict[str, Any], *, clients: Clients, topic_arn: str | None, job_prefix: str
) -> dict[str, Any]:
    """The pages queue's SQS records; a failed one (retried by SQS, then dead-lettered) is reported."""
    failures = []
    for record in event.get("Records", []):
        try:
            handle_task(Task.parse(record["body"]), clients=clients, topic_arn=topic_arn, job_prefix=job_prefix)
        except SummaryPending as exc:  # not an error: retried later, when it finds the work done
            log.info("%s; retrying message %s later", exc, record.get("messageId"))
            failures.append({"itemIdentifier": record.get("messageId")})
        except Exception:
            log.exception("finalisation task failed (message %s)", record.get("messageId"))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def run_here(
    s3: Any,
    plan: JobPlan,
    job: dict[str, Any],
    *,
    clients: Clients,
    topic_arn: str | None,
    start: int = 0,
    deadline: float | None = None,
) -> int | dict[str, Any]:
    """No pages queue: the tasks one after another in this invocation, until `deadline` (then returns the
    next page, for a continuation) or the end (returns the summary). At least one task per call."""
    status = str(job["TransformJobStatus"])
    completed = False
    for task in tasks(plan, status, start):
        completed = run_task(s3, plan, job, task)
        if deadline is not None and time.monotonic() >= deadline and task.end < plan.page_count:
            return task.end
    if not completed:
        raise RuntimeError(f"{plan.job_name}: the last page did not complete the job; a page outcome is missing")
    return finish(s3, plan, job, clients=clients, topic_arn=topic_arn)
