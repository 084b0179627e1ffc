"""Show where a Batch Transform job launched by `pose-batch transform` stands: its state, how many of its
images have output, why it failed, where its summary is. `--wait` follows it to the end (as `transform
--attach JOB`)."""

from __future__ import annotations

import argparse
from typing import Any

from batch.commands.common import UserError, add_local_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="where a transform job stands (re-attach with --wait)", description=__doc__
    )
    parser.add_argument("job", help="the transform job's name (printed by `pose-batch transform`)")
    add_local_arguments(parser, what="look on")
    parser.add_argument("--wait", action="store_true", help="follow the job to the end, showing progress")
    parser.add_argument(
        "--report", action=argparse.BooleanOptionalAction, default=True, help="with --wait: write _REPORT.html"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    from batch.commands.transform import clients_for, follow
    from batch.transform.outcomes import existing_summary
    from batch.transform.progress import images_with_output, load_plan

    clients = clients_for(args)
    s3, sagemaker = clients("s3"), clients("sagemaker")
    try:
        plan = load_plan(sagemaker, s3, args.job)
    except ClientError as exc:
        raise UserError(f"no transform job {args.job} here: {exc.response['Error'].get('Message')}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.wait:
        code, _ = follow(plan, clients=clients, poll_s=1.0 if args.local else 10.0, summary_wait_s=60.0,
                         local=args.local, report=args.report)  # fmt: skip
        return code
    job = sagemaker.describe_transform_job(TransformJobName=args.job)
    status = job["TransformJobStatus"]
    print(f"job:      {args.job} ({status})")
    print(f"images:   {images_with_output(s3, plan)} of {len(plan.keys)} with output ({plan.mode} mode)")
    if job.get("FailureReason"):
        print(f"reason:   {job['FailureReason']}")
    summary = existing_summary(s3, plan, status) if status in ("Completed", "Failed", "Stopped") else None
    if summary:
        print(f"summary:  {summary['output']}_SUMMARY.json ({summary['done']} done, {summary['failed']} failed)")
    else:
        print(f"follow:   pose-batch status {args.job} --wait" + (" --local" if args.local else ""))
    return 0 if status != "Failed" else 1
