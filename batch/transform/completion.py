"""On "SageMaker Transform Job State Change": finalise the job's outputs, then publish a human-readable
summary to SNS. The Lambda entry point is `events/transform_completion.py`.

On AWS: EventBridge rule (`EVENT_PATTERN`) -> the Lambda -> the topic in `POSEBATCH_TRANSFORM_TOPIC_ARN`.
Locally: the same rule -> an SQS queue -> this handler (moto cannot target Lambda or SNS from a rule).
It accepts both shapes: the EventBridge event itself, or SQS records whose bodies are such events.

Any job size within Lambda's limits: one invocation finalises the plan's pages until its time budget
runs out, then puts a continuation event (`CONTINUE_PATTERN`, its own rule to the same target) that
names the next page; the invocation that does the last page writes the summary and notifies. Memory
per invocation is bounded by one page's work (`batch.transform.finalize`), not by the job's size.

Needs (AWS): `sagemaker:DescribeTransformJob`, `s3:GetObject`/`s3:PutObject` on the output prefix,
`s3:ListBucket` (a missing object reads as 404), `events:PutEvents` on the default bus, `sns:Publish`.
"""

from __future__ import annotations

import json
import logging
import time
import unicodedata
from typing import Any

from batch import aws
from batch.aws import Clients
from batch.orchestration_settings import DEFAULT_TRANSFORM_JOB_PREFIX, TRANSFORM_TOPIC_ARN
from batch.s3_uri import S3Uri
from batch.transform.finalize import Finalizer, existing_summary, finalize_pages, read_object
from batch.transform.plan import END_STATES, PLAN_ENV, JobPlan, summary_uri

log = logging.getLogger(__name__)

TOPIC_NAME = "posebatch-transform-complete"
DETAIL_TYPE = "SageMaker Transform Job State Change"
JOB_NAME_PREFIX = DEFAULT_TRANSFORM_JOB_PREFIX  # the launcher's default names; the template's TransformJobPrefix
EVENT_PATTERN: dict[str, Any] = {
    "source": ["aws.sagemaker"],
    "detail-type": [DETAIL_TYPE],
    "detail": {"TransformJobStatus": list(END_STATES), "TransformJobName": [{"prefix": JOB_NAME_PREFIX}]},
}
CONTINUE_SOURCE = "posebatch.transform"
CONTINUE_DETAIL_TYPE = "PoseBatch Transform Finalization Continued"
CONTINUE_PATTERN: dict[str, Any] = {"source": [CONTINUE_SOURCE], "detail-type": [CONTINUE_DETAIL_TYPE]}
_LISTED_FAILURES = 10


def handle_records(
    event: dict[str, Any],
    *,
    topic_arn: str | None,
    clients: Clients = aws.client,
    budget_s: float | None = None,
    job_prefix: str = JOB_NAME_PREFIX,
) -> dict[str, Any]:
    """One EventBridge event, or SQS records holding them; a failing record is in `batchItemFailures`.
    `budget_s`: seconds this invocation may spend finalising pages (None: all of them)."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    if "Records" not in event:
        handle_event(event, topic_arn=topic_arn, clients=clients, deadline=deadline, job_prefix=job_prefix)
        return {"batchItemFailures": []}
    failures = []
    for record in event["Records"]:
        try:
            body = json.loads(record["body"])
            handle_event(body, topic_arn=topic_arn, clients=clients, deadline=deadline, job_prefix=job_prefix)
        except Exception:
            log.exception("transform completion failed for message %s", record.get("messageId"))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def handle_event(
    event: dict[str, Any],
    *,
    topic_arn: str | None,
    clients: Clients = aws.client,
    deadline: float | None = None,
    job_prefix: str = JOB_NAME_PREFIX,
) -> dict[str, Any] | None:
    """Finalise (as far as `deadline`) and notify for one event; returns the summary once there is one
    (None if the event is not for us, or the work goes on in a continuation event).

    Anyone in the account may put an event with our continuation source on the default bus, so nothing
    in an event is trusted beyond the job's name: a job outside `job_prefix` is not even described, and
    one without its own PoseBatch plan (in its Environment, set by the launcher) is neither finalised
    nor announced."""
    detail = event.get("detail") or {}
    continued = event.get("detail-type") == CONTINUE_DETAIL_TYPE
    if not continued and (
        event.get("detail-type") != DETAIL_TYPE or detail.get("TransformJobStatus") not in END_STATES
    ):
        log.info("ignoring event %s", event.get("detail-type"))
        return None
    name = detail.get("TransformJobName")
    if not isinstance(name, str) or not name.startswith(job_prefix):
        log.warning("ignoring an event for job %r: not named %s*", escape(name), job_prefix)
        return None
    job: dict[str, Any] = clients("sagemaker").describe_transform_job(TransformJobName=name)
    status = job["TransformJobStatus"]
    if status not in END_STATES or (continued and status != detail.get("TransformJobStatus")):
        return None  # a stale or reordered event: the job moved on
    s3 = clients("s3")
    plan = _own_plan(s3, job)
    if plan is None:
        return None
    summary = existing_summary(s3, plan, status)
    if summary is None:
        start = int(detail.get("next_page", 0)) if continued else 0
        following = finalize_pages(s3, plan, job, start=start, deadline=deadline)
        if following is None and start < plan.page_count and _past(deadline):
            following = plan.page_count  # the pages used the budget: the summary gets its own invocation
        if following is not None:
            _continue(clients, job, following)
            return None
        summary = Finalizer(s3, plan, job).summarize()
    marker = plan.root.child(f"notified-{status}")
    if read_object(s3, marker) is not None:
        return summary  # a duplicate event: already notified
    if topic_arn:
        subject, message = format_notification(job, summary)
        clients("sns").publish(
            TopicArn=topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "job": {"DataType": "String", "StringValue": job["TransformJobName"]},
                "status": {"DataType": "String", "StringValue": status},
            },
        )
    else:
        log.warning("no SNS topic (%s unset): not notifying", TRANSFORM_TOPIC_ARN)
    s3.put_object(Bucket=marker.bucket, Key=marker.key, Body=b"")
    return summary


def _own_plan(s3: Any, job: dict[str, Any]) -> JobPlan | None:
    """The plan the launcher wrote for this very job, or None (the job is not one of ours)."""
    name = job["TransformJobName"]
    location = (job.get("Environment") or {}).get(PLAN_ENV)
    try:
        uri = S3Uri.parse(location) if location else None
    except ValueError:
        uri = None
    body = read_object(s3, uri) if uri is not None else None
    plan = JobPlan.from_json(body) if body is not None else None
    if plan is None or plan.job_name != name:
        log.warning("ignoring job %s: it has no PoseBatch plan of its own (%s=%r)", name, PLAN_ENV, location)
        return None
    return plan


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _continue(clients: Clients, job: dict[str, Any], next_page: int) -> None:
    """Hand the rest to the next invocation; a refused entry raises, so the event is retried (then DLQ)."""
    detail = {
        "TransformJobName": job["TransformJobName"],
        "TransformJobStatus": job["TransformJobStatus"],
        "next_page": next_page,
    }
    answer = clients("events").put_events(
        Entries=[{"Source": CONTINUE_SOURCE, "DetailType": CONTINUE_DETAIL_TYPE, "Detail": json.dumps(detail)}]
    )
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"could not put the continuation event: {answer.get('Entries')}")
    log.info("%s: finalised up to page %d, continuing in a new invocation", job["TransformJobName"], next_page)


def escape(text: object) -> str:
    """Text from S3 keys and messages, safe for a line-oriented notification: line breaks and other
    control or separator characters become visible escapes, so a key cannot forge lines."""
    out = []
    for char in str(text):
        if char == "\\":
            out.append("\\\\")
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def format_notification(job: dict[str, Any], summary: dict[str, Any] | None) -> tuple[str, str]:
    name, status = job["TransformJobName"], job["TransformJobStatus"]
    subject = f"PoseBatch transform {name}: {status}"[:100]
    lines = [f"PoseBatch batch transform job {name} ended: {status}."]
    if summary is not None:
        output = S3Uri.parse(summary["output"], allow_empty_key=True)
        timings = summary.get("timings") or {}
        lines += [
            f"Images: {summary['images']} in total, {summary['done']} done, {summary['failed']} failed.",
            f"Output: {escape(output)} (keypoints/, annotated/)",
            f"Summary: {escape(summary_uri(output))}",
        ]
        if summary.get("persons") is not None:  # absent from summaries written before it was counted
            lines.insert(-2, f"Persons: {summary['persons']} found, in {summary['images_with_persons']} image(s).")
        if timings.get("transform_seconds") is not None:
            lines.append(
                f"Time: {timings['transform_seconds']:.1f} s, {timings.get('images_per_second') or 0:.2f} images/s."
            )
        failures = summary.get("failures") or []
        if failures:
            lines.append(f"Failed images (first {min(len(failures), _LISTED_FAILURES)}):")
            lines += [
                f"  {escape(f['key'])}: {escape(f['error']['code'])}: {escape(f['error']['message'])}"
                for f in failures[:_LISTED_FAILURES]
            ]
    else:
        lines.append(f"Output: {escape(job.get('TransformOutput', {}).get('S3OutputPath'))}")
    if job.get("FailureReason"):
        lines.append(f"Failure reason: {escape(job['FailureReason'])}")
    return subject, "\n".join(lines)
