"""`pose-batch dlq {show,redrive,fail}`: the S3 trigger's dead-letter queue, on AWS (`--stack`) or on
the running local stack (`--local`).

Its messages are images whose submission failed `maxReceiveCount` times (throttling, an endpoint that
was down or deleted, a missing permission); each already has a `submission_failed` error record.
`redrive` once the cause is fixed: the images are submitted again and their results replace the
records. `fail` when they should not run: each gets a `dead_lettered` error record and the message is
deleted. One JSON line on stdout says what was done.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from batch.commands.common import UserError, local_home


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dlq", help="re-drive or fail the S3 trigger's dead letters", description=__doc__)
    parser.add_argument("action", choices=("show", "redrive", "fail"))
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="the CloudFormation stack (`pose-batch stack deploy`)")
    target.add_argument("--local", action="store_true", help="the running `pose-batch local up` stack")
    # The same per-user folder as `local up` and every other --local command, from any working directory.
    parser.add_argument("--home", help="the local stack's folder (default: as for `pose-batch local up`)")
    parser.add_argument("--limit", type=int, help="at most this many messages")
    parser.add_argument("--reason", default="marked failed by pose-batch dlq fail", help="said in the records")
    parser.set_defaults(func=run)


def _targets(args: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    """Clients, and the queues and layout: the stack's outputs on AWS, the state file locally."""
    if args.local:
        from batch.local.state import read_section, stack_clients

        home = local_home(args)
        state = read_section(home, "async")
        return stack_clients(home), {
            "queue": state.get("events_queue_url", ""),
            "dead_letters": state.get("dead_letter_url", ""),
            "input": state.get("input_uri", ""),
            "output": state.get("output_uri", ""),
        }
    from batch import aws
    from batch.stack.cloudformation import stack_outputs

    outputs = stack_outputs(aws.client("cloudformation"), args.stack)
    return aws.client, {
        "queue": outputs.get("InputEventsQueueUrl", ""),
        "dead_letters": outputs.get("InputEventsDeadLetterQueueUrl", ""),
        "input": outputs.get("InputUri", ""),
        "output": outputs.get("OutputUri", ""),
    }


def run(args: argparse.Namespace) -> int:
    from batch.async_inference import dead_letters
    from batch.async_inference.layout import AsyncLayout

    clients, where = _targets(args)
    if not all(where.values()):
        missing = ", ".join(k for k, v in where.items() if not v)
        where_from = "the local stack's state" if args.local else f"stack {args.stack!r}'s outputs"
        raise UserError(
            f"no S3 trigger queues in {where_from} (missing: {missing}); deploy the stack with "
            "`pose-batch stack deploy`, or start the local one with `pose-batch local up`"
        )
    sqs = clients("sqs")
    if args.action == "show":
        attributes = sqs.get_queue_attributes(
            QueueUrl=where["dead_letters"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        print(json.dumps({"queue": where["dead_letters"], "messages": int(attributes["ApproximateNumberOfMessages"])}))
        return 0
    if args.action == "redrive":
        report = dead_letters.redrive(sqs, where["dead_letters"], where["queue"], limit=args.limit)
    else:
        layout = AsyncLayout.create(where["input"], where["output"])
        report = dead_letters.fail(
            sqs, clients("s3"), where["dead_letters"], layout, reason=args.reason, limit=args.limit
        )
    print(json.dumps({"action": args.action, **report.as_dict()}, ensure_ascii=False))
    return 0
