"""Waiting for a transform job with progress, then getting its summary.

Progress is measured where it really shows: the `.out` objects that appear under the job's output
path (SageMaker's Describe has no counts). After the end, the completion handler normally writes
`_SUMMARY.json`; if it does not within a while (no handler deployed), the launcher finalises itself,
which is safe since finalising is idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

from batch.polling import poll
from batch.s3_listing import list_objects
from batch.s3_uri import S3Uri
from batch.transform.finalize import finalize
from batch.transform.outcomes import existing_summary
from batch.transform.plan import END_STATES, PLAN_ENV, JobPlan

log = logging.getLogger(__name__)

# Counting means listing the job's output path at every poll: beyond this, show the status only.
MAX_COUNTED_IMAGES = 100_000


def images_with_output(s3: Any, plan: JobPlan) -> int:
    out = plan.transform_output_uri
    names = {obj["Key"][len(out.prefix) :] for obj in list_objects(s3, out.bucket, out.prefix)}
    if plan.mode == "images":
        return sum(1 for rel in plan.keys if rel + ".out" in names)
    return sum(len(shard.images) for shard in plan.shards if shard.rel + ".out" in names)


def load_plan(sagemaker: Any, s3: Any, job_name: str) -> JobPlan:
    """The plan of a job launched earlier (to re-attach to it): its location travels in the job's Environment."""
    job = sagemaker.describe_transform_job(TransformJobName=job_name)
    location = (job.get("Environment") or {}).get(PLAN_ENV)
    if not location:
        raise ValueError(f"transform job {job_name} was not launched by pose-batch (no {PLAN_ENV} in its environment)")
    return JobPlan.load(s3, S3Uri.parse(location))


def wait_for_job(
    sagemaker: Any,
    s3: Any,
    plan: JobPlan,
    *,
    poll_s: float = 5.0,
    timeout_s: float | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Poll until the job ends; returns its final Describe. Progress: a bar on a terminal, else a plain
    line every 30 s and at the end (`batch.progress_display`)."""
    from batch.progress_display import ProgressDisplay

    status = "unknown"
    with ProgressDisplay(total=len(plan.keys), desc=plan.job_name, enabled=show_progress) as progress:

        def ended() -> dict[str, Any] | None:
            nonlocal status
            job: dict[str, Any] = sagemaker.describe_transform_job(TransformJobName=plan.job_name)
            status = job["TransformJobStatus"]
            if len(plan.keys) <= MAX_COUNTED_IMAGES:
                try:
                    progress.update_to(images_with_output(s3, plan))
                except Exception:  # progress is cosmetic; never fail the wait on it
                    log.debug("progress listing failed", exc_info=True)
            progress.set_status(status)
            return job if status in END_STATES else None

        return poll(
            ended,
            timeout_s=timeout_s,
            interval_s=poll_s,
            on_timeout=lambda: f"transform job {plan.job_name} still {status} after {timeout_s:.0f}s",
        )


def settle_summary(
    s3: Any, plan: JobPlan, job: dict[str, Any], *, wait_s: float = 60.0, poll_s: float = 1.0
) -> dict[str, Any]:
    """The summary the completion handler writes, or our own if none appears within `wait_s`."""
    status = str(job["TransformJobStatus"])
    try:
        return poll(
            lambda: existing_summary(s3, plan, status), timeout_s=wait_s, interval_s=poll_s, on_timeout=lambda: ""
        )
    except TimeoutError:
        pass
    log.info("no summary from the completion handler after %.0fs: finalising here", wait_s)
    return finalize(s3, plan, job)


def format_report(job: dict[str, Any], summary: dict[str, Any]) -> str:
    timings = summary.get("timings") or {}
    lines = [
        f"job:      {job['TransformJobName']} ({job['TransformJobStatus']})",
        f"images:   {summary['images']} total, {summary['done']} done, {summary['failed']} failed",
        f"output:   {summary['output']}keypoints/  and  {summary['output']}annotated/",
        f"summary:  {summary['output']}_SUMMARY.json",
    ]
    if summary.get("persons") is not None:  # absent from summaries written before it was counted
        lines.insert(2, f"persons:  {summary['persons']} found, in {summary['images_with_persons']} image(s)")
    if timings.get("transform_seconds") is not None:
        lines.append(
            f"time:     {timings['transform_seconds']:.1f} s ({timings.get('images_per_second') or 0:.2f} img/s)"
        )
    if job.get("FailureReason"):
        lines.append(f"reason:   {job['FailureReason']}")
    for failure in summary.get("failures", [])[:10]:
        lines.append(f"failed:   {failure['key']}: {failure['error']['code']}: {failure['error']['message']}")
    if summary["failed"] > 10:
        lines.append(f"          ... and {summary['failed'] - 10} more (see _SUMMARY.json)")
    return "\n".join(lines)
