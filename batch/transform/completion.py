"""On "SageMaker Transform Job State Change": finalise the job's outputs, then publish a human-readable
summary to SNS. The Lambda entry point is `events/transform_completion.py`.

On AWS: EventBridge rule (`EVENT_PATTERN`) -> the Lambda -> the topic in `POSEBATCH_TRANSFORM_TOPIC_ARN`.
Locally: the same rule -> an SQS queue -> this handler (moto cannot target Lambda or SNS from a rule).
It accepts both shapes: the EventBridge event itself, or SQS records whose bodies are such events.

Fanned out (`batch.transform.fanout`): this handler records the job as it ended and puts one task per
run of pages on the pages queue (`POSEBATCH_FINALIZE_QUEUE_URL`); page invocations, a bounded number at
once, finalise them, and the one that completes the job writes `_SUMMARY.json` and notifies. A job so
large that queueing its tasks outlasts the time budget continues in a new invocation through a
continuation event (`CONTINUE_PATTERN`, its own rule to the same target) naming the next page. Without
a pages queue the handler finalises the pages itself, continuing the same way.

Needs (AWS): `sagemaker:DescribeTransformJob` on the stack's jobs, `s3:GetObject`/`s3:PutObject` on the
output prefix, `s3:ListBucket` below it, `sqs:SendMessage` on the pages queue, `events:PutEvents` on the
default bus, `sns:Publish`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from batch import aws
from batch.aws import Clients
from batch.orchestration_settings import DEFAULT_TRANSFORM_JOB_PREFIX, CompletionConfig
from batch.s3_uri import S3Uri
from batch.transform import fanout
from batch.transform.notification import escape, notified_uri
from batch.transform.outcomes import existing_summary, save_job
from batch.transform.plan import END_STATES, PLAN_ENV, JobPlan
from batch.transform.s3_objects import read_object

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


def handle_records(
    event: dict[str, Any],
    config: CompletionConfig,
    *,
    clients: Clients = aws.client,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """One EventBridge event, or SQS records holding them; a failing record is in `batchItemFailures`.
    `budget_s`: seconds this invocation may spend queueing or finalising pages (None: all of them)."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    if "Records" not in event:
        handle_event(event, config, clients=clients, deadline=deadline)
        return {"batchItemFailures": []}
    failures = []
    for record in event["Records"]:
        try:
            handle_event(json.loads(record["body"]), config, clients=clients, deadline=deadline)
        except Exception:
            log.exception("transform completion failed for message %s", record.get("messageId"))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def handle_event(
    event: dict[str, Any],
    config: CompletionConfig,
    *,
    clients: Clients = aws.client,
    deadline: float | None = None,
) -> dict[str, Any] | None:
    """Fan out (or finalise, as far as `deadline`) and notify for one event; returns the summary when
    this invocation wrote it or it already existed (None if the event is not for us, or the work goes
    on elsewhere: page invocations, or a continuation event).

    Anyone in the account may put an event with our continuation source on the default bus, so nothing
    in an event is trusted beyond the job's name: a job outside the prefix is not even described, and
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
    if not isinstance(name, str) or not name.startswith(config.job_prefix):
        log.warning("ignoring an event for job %r: not named %s*", escape(name), config.job_prefix)
        return None
    job: dict[str, Any] = clients("sagemaker").describe_transform_job(TransformJobName=name)
    status = job["TransformJobStatus"]
    if status not in END_STATES or (continued and status != detail.get("TransformJobStatus")):
        return None  # a stale or reordered event: the job moved on
    s3 = clients("s3")
    plan = _own_plan(s3, job)
    if plan is None:
        return None
    if read_object(s3, notified_uri(plan, status)) is not None:
        return existing_summary(s3, plan, status)  # a duplicate event: already summarised and announced
    start = int(detail.get("next_page", 0)) if continued else 0
    if start == 0:
        save_job(s3, plan, job)  # what the page invocations read instead of asking SageMaker
    queue = config.pages_queue_url
    if queue is None:
        done = fanout.run_here(
            s3, plan, job, clients=clients, topic_arn=config.topic_arn, start=start, deadline=deadline
        )
        if isinstance(done, int):
            _continue(clients, job, done)
            return None
        return done
    if not continued and fanout.already_dispatched(s3, plan, status):
        return None  # a duplicate event: the pages are queued already
    following = fanout.dispatch(clients, queue, plan, status, start=start, deadline=deadline)
    if following is not None:
        _continue(clients, job, following)
    return None


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
