"""CloudFormation through change sets: one code path creates or updates a stack, shows per-resource
progress from DescribeStackEvents while it waits, and names the first failing resource and its reason.
Plain boto3 (botocore validates every call against the service model)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

# Templates passed inline; larger ones must go through TemplateURL.
MAX_TEMPLATE_BODY_BYTES = 51_200
_CAPABILITIES = ["CAPABILITY_IAM"]
# A change set with nothing to do fails with one of these reasons (wording differs between paths).
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed", "The submitted information didn't")
EventPrinter = Callable[[dict[str, Any]], None]


class StackError(RuntimeError):
    """A deployment or deletion that did not reach its goal; the message says which resource and why."""


@dataclass(frozen=True)
class DeployResult:
    action: str  # "created", "updated" or "up-to-date"
    outputs: dict[str, str]


def stack_status(cfn: Any, stack_name: str) -> str | None:
    """The stack's status, None when there is no such stack."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deploy_stack(
    cfn: Any,
    stack_name: str,
    template_body: str,
    parameters: dict[str, str],
    *,
    on_event: EventPrinter,
    poll_s: float = 5.0,
    timeout_s: float = 3600.0,
    template_url: str | None = None,
) -> DeployResult:
    """Create or update `stack_name` with a change set and wait for it to settle. A template over the
    inline limit goes by `template_url` (the same template, uploaded to S3)."""
    inline = len(template_body.encode()) <= MAX_TEMPLATE_BODY_BYTES
    if not inline and template_url is None:
        raise StackError(f"template is over {MAX_TEMPLATE_BODY_BYTES} bytes: pass it through S3 (TemplateURL)")
    template = {"TemplateBody": template_body} if inline else {"TemplateURL": template_url}
    status = stack_status(cfn, stack_name)
    if status == "ROLLBACK_COMPLETE":
        raise StackError(
            f"stack {stack_name} is in ROLLBACK_COMPLETE (its first creation failed) and cannot be updated: "
            f"run `pose-batch stack delete --stack {stack_name}`, then deploy again"
        )
    if status is not None and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise StackError(f"stack {stack_name} is busy ({status}); wait for it to finish")
    change_type = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
    name = f"posebatch-{datetime.now(timezone.utc):%Y%m%d%H%M%S}"
    cfn.create_change_set(
        StackName=stack_name,
        ChangeSetName=name,
        ChangeSetType=change_type,
        **template,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
        Capabilities=_CAPABILITIES,
        Tags=[{"Key": "project", "Value": "posebatch"}],
    )
    described = _wait_change_set(cfn, stack_name, name, poll_s, timeout_s)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if any(text in reason for text in _NO_CHANGES):
            cfn.delete_change_set(StackName=stack_name, ChangeSetName=name)
            return DeployResult("up-to-date", stack_outputs(cfn, stack_name))
        raise StackError(f"change set {name} failed: {reason}")
    for change in described.get("Changes", []):
        rc = change.get("ResourceChange", {})
        on_event({"change": rc.get("Action"), "LogicalResourceId": rc.get("LogicalResourceId"), **rc})
    marker = latest_event_id(cfn, stack_name)
    cfn.execute_change_set(StackName=stack_name, ChangeSetName=name)
    final = wait_for_stack(cfn, stack_name, marker, on_event=on_event, poll_s=poll_s, timeout_s=timeout_s)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackError(f"stack {stack_name} ended {final}: {first_failure(cfn, stack_name, marker)}")
    return DeployResult("created" if change_type == "CREATE" else "updated", stack_outputs(cfn, stack_name))


def delete_stack(
    cfn: Any, stack_name: str, *, on_event: EventPrinter, poll_s: float = 5.0, timeout_s: float = 3600.0
) -> bool:
    """Delete the stack and wait; False when there was none."""
    if stack_status(cfn, stack_name) is None:
        return False
    stack_id = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackId"]
    marker = latest_event_id(cfn, stack_id)
    cfn.delete_stack(StackName=stack_name)
    # A deleted stack is only found by its id.
    final = wait_for_stack(cfn, stack_id, marker, on_event=on_event, poll_s=poll_s, timeout_s=timeout_s)
    if final not in ("DELETE_COMPLETE", None):
        raise StackError(f"stack {stack_name} ended {final}: {first_failure(cfn, stack_id, marker)}")
    return True


def _wait_change_set(cfn: Any, stack_name: str, name: str, poll_s: float, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described: dict[str, Any] = cfn.describe_change_set(StackName=stack_name, ChangeSetName=name)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return described
        if time.monotonic() > deadline:
            raise StackError(f"change set {name} still {described['Status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def wait_for_stack(
    cfn: Any,
    stack: str,
    after: str | None,
    *,
    on_event: EventPrinter,
    poll_s: float,
    timeout_s: float,
) -> str | None:
    """Poll until the stack leaves *_IN_PROGRESS, passing each new stack event to `on_event` once."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        status = stack_status(cfn, stack)
        for event in events_after(cfn, stack, after):
            if event["EventId"] not in seen:
                seen.add(event["EventId"])
                on_event(event)
        if status is None or not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise StackError(f"stack {stack} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def first_failure(cfn: Any, stack: str, after: str | None) -> str:
    """'Resource (Type): reason' of the first resource that failed after event `after` (the root
    cause; later failures are usually 'Resource creation cancelled')."""
    for event in events_after(cfn, stack, after):
        if event.get("ResourceStatus", "").endswith("_FAILED") and event.get("LogicalResourceId") != stack:
            return (
                f"{event['LogicalResourceId']} ({event.get('ResourceType')}): "
                f"{event.get('ResourceStatusReason', 'no reason given')}"
            )
    return "no failed resource reported"


def latest_event_id(cfn: Any, stack: str) -> str | None:
    """The newest event's id: the operation that follows is everything after it. Event ids, not
    time stamps, so a skewed local clock cannot hide or repeat events."""
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return str(events[0]["EventId"]) if events else None


def events_after(cfn: Any, stack: str, after: str | None) -> list[dict[str, Any]]:
    """The stack's events newer than event `after`, oldest first (the API pages them newest first)."""
    events: list[dict[str, Any]] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack):
        for event in page["StackEvents"]:
            if event["EventId"] == after:
                return events[::-1]
            events.append(event)
    return events[::-1]


def format_event(event: dict[str, Any]) -> str:
    """One progress line: `CREATE_COMPLETE  DataBucket (AWS::S3::Bucket)  reason`."""
    if "change" in event:
        return f"  change: {event.get('change', '?'):<8} {event.get('LogicalResourceId')} ({event.get('ResourceType')})"
    reason = event.get("ResourceStatusReason") or ""
    return (
        f"  {event.get('ResourceStatus', ''):<20} {event.get('LogicalResourceId')} ({event.get('ResourceType')})"
        f"{'  ' + reason if reason else ''}"
    )
