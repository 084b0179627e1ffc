"""The end of a job's finalisation: `_SUMMARY.json` written and the SNS notification sent, once per job
and end state, by whichever invocation completes the last group of pages (`finish`).

Once: the invocation first claims `summary.claim` with a conditional create, so of two that complete the
job together only one writes and notifies; the `notified-<status>` marker, written after the publish,
makes any later event a no-op. A claimer that dies leaves a claim that is taken over after
`CLAIM_LEASE_S` (longer than any Lambda invocation lives) by the retry of the same work. The one window
left: a claimer that dies between publishing and writing its marker is announced twice, never not at all.

Standard library and boto3 only: the Lambda handlers import it.
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Any

from batch.aws import Clients
from batch.orchestration_settings import TRANSFORM_TOPIC_ARN
from batch.s3_uri import S3Uri
from batch.transform.outcomes import claim_uri, existing_summary, write_summary
from batch.transform.plan import JobPlan, summary_uri
from batch.transform.s3_objects import claim, read_object

log = logging.getLogger(__name__)

CLAIM_LEASE_S = 900.0  # Lambda's longest timeout: an older claim's holder is gone
_LISTED_FAILURES = 10


class SummaryPending(RuntimeError):
    """Another invocation holds the claim and has not notified yet: retry this work later (its retry
    finds the notification done, or the claim stale and takes it over)."""


def notified_uri(plan: JobPlan, status: str) -> S3Uri:
    return plan.root.child(f"notified-{status}")


def finish(s3: Any, plan: JobPlan, job: dict[str, Any], *, clients: Clients, topic_arn: str | None) -> dict[str, Any]:
    """Write the summary and notify, once (see the module); returns the summary."""
    status = str(job["TransformJobStatus"])
    marker = notified_uri(plan, status)
    if read_object(s3, marker) is not None:
        return existing_summary(s3, plan, status) or {}
    if not claim(s3, claim_uri(plan, status), lease_s=CLAIM_LEASE_S):
        raise SummaryPending(f"{plan.job_name}: another invocation is writing the summary")
    summary = write_summary(s3, plan, job)
    publish(clients, topic_arn, job, summary)
    s3.put_object(Bucket=marker.bucket, Key=marker.key, Body=b"")
    return summary


def publish(clients: Clients, topic_arn: str | None, job: dict[str, Any], summary: dict[str, Any] | None) -> None:
    if not topic_arn:
        log.warning("no SNS topic (%s unset): not notifying", TRANSFORM_TOPIC_ARN)
        return
    subject, message = format_notification(job, summary)
    clients("sns").publish(
        TopicArn=topic_arn,
        Subject=subject,
        Message=message,
        MessageAttributes={
            "job": {"DataType": "String", "StringValue": job["TransformJobName"]},
            "status": {"DataType": "String", "StringValue": job["TransformJobStatus"]},
        },
    )


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
