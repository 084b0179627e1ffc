"""On "SageMaker Transform Job State Change": finalise the job's outputs, then publish a human-readable
summary to SNS. The Lambda entry point is `events/transform_completion.py`.

On AWS: EventBridge rule (`EVENT_PATTERN`) -> the Lambda -> the topic in `POSEBATCH_TRANSFORM_TOPIC_ARN`.
Locally: the same rule -> an SQS queue -> this handler (moto cannot target Lambda or SNS from a rule).
It accepts both shapes: the EventBridge event itself, or SQS records whose bodies are such events.

Needs (AWS): `sagemaker:DescribeTransformJob`, `s3:GetObject`/`s3:PutObject` on the output prefix,
`s3:ListBucket` is not needed, `sns:Publish` on the topic.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from batch import aws
from batch.aws import Clients
from batch.orchestration_settings import TRANSFORM_TOPIC_ARN
from batch.s3_uri import S3Uri
from batch.transform.finalize import finalize, read_object
from batch.transform.plan import END_STATES, PLAN_ENV, JobPlan, summary_uri

log = logging.getLogger(__name__)

TOPIC_NAME = "posebatch-transform-complete"
DETAIL_TYPE = "SageMaker Transform Job State Change"
EVENT_PATTERN: dict[str, Any] = {
    "source": ["aws.sagemaker"],
    "detail-type": [DETAIL_TYPE],
    "detail": {"TransformJobStatus": list(END_STATES)},
}
_LISTED_FAILURES = 10


def handle_records(event: dict[str, Any], *, topic_arn: str | None, clients: Clients = aws.client) -> dict[str, Any]:
    """One EventBridge event, or SQS records holding them; a failing record is in `batchItemFailures`."""
    topic = topic_arn
    if "Records" not in event:
        handle_event(event, topic_arn=topic, clients=clients)
        return {"batchItemFailures": []}
    failures = []
    for record in event["Records"]:
        try:
            handle_event(json.loads(record["body"]), topic_arn=topic, clients=clients)
        except Exception:
            log.exception("transform completion failed for message %s", record.get("messageId"))
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def handle_event(
    event: dict[str, Any], *, topic_arn: str | None, clients: Clients = aws.client
) -> dict[str, Any] | None:
    """Finalise and notify for one event; returns the summary (None if the event is not for us)."""
    detail = event.get("detail") or {}
    if event.get("detail-type") != DETAIL_TYPE or detail.get("TransformJobStatus") not in END_STATES:
        log.info("ignoring event %s", event.get("detail-type"))
        return None
    job: dict[str, Any] = clients("sagemaker").describe_transform_job(TransformJobName=detail["TransformJobName"])
    status = job["TransformJobStatus"]
    if status not in END_STATES:  # a stale or reordered event: the job moved on
        return None
    s3 = clients("s3")
    plan_location = (job.get("Environment") or {}).get(PLAN_ENV)
    summary: dict[str, Any] | None = None
    marker: S3Uri | None = None
    if plan_location:
        plan = JobPlan.load(s3, S3Uri.parse(plan_location))
        summary = finalize(s3, plan, job)
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
    if marker is not None:
        s3.put_object(Bucket=marker.bucket, Key=marker.key, Body=b"")
    return summary


def format_notification(job: dict[str, Any], summary: dict[str, Any] | None) -> tuple[str, str]:
    name, status = job["TransformJobName"], job["TransformJobStatus"]
    subject = f"PoseBatch transform {name}: {status}"[:100]
    lines = [f"PoseBatch batch transform job {name} ended: {status}."]
    if summary is not None:
        output = S3Uri.parse(summary["output"], allow_empty_key=True)
        timings = summary.get("timings") or {}
        lines += [
            f"Images: {summary['images']} in total, {summary['done']} done, {summary['failed']} failed.",
            f"Output: {output} (keypoints/, annotated/)",
            f"Summary: {summary_uri(output)}",
        ]
        if timings.get("transform_seconds") is not None:
            lines.append(
                f"Time: {timings['transform_seconds']:.1f} s, {timings.get('images_per_second') or 0:.2f} images/s."
            )
        failures = summary.get("failures") or []
        if failures:
            lines.append(f"Failed images (first {min(len(failures), _LISTED_FAILURES)}):")
            lines += [
                f"  {f['key']}: {f['error']['code']}: {f['error']['message']}" for f in failures[:_LISTED_FAILURES]
            ]
    else:
        lines.append(f"Output: {job.get('TransformOutput', {}).get('S3OutputPath')}")
    if job.get("FailureReason"):
        lines.append(f"Failure reason: {job['FailureReason']}")
    return subject, "\n".join(lines)
