"""`pose-batch stack package|deploy|delete`: the whole AWS stack (infra/template.yaml) in one command.

`package` writes the Lambda zip (the handlers and exactly the project modules they import); `deploy`
creates the artifacts bucket if needed, uploads the zip and model.tar.gz, and creates or updates the
stack through a CloudFormation change set, printing each resource's progress and then what to do next;
`delete` removes the stack and says what stays behind. See docs/aws-deploy.md."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from batch.commands.common import CommandFailed, UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("stack", help="package, deploy or delete the AWS stack", description=__doc__)
    actions = parser.add_subparsers(dest="stack_action", required=True)

    package = actions.add_parser("package", help="write DIR/lambda.zip")
    package.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")
    package.set_defaults(func=run_package)

    deploy = actions.add_parser("deploy", help="create or update the stack")
    deploy.add_argument("--stack", default="posebatch", help="stack name, lower case (default: posebatch)")
    deploy.add_argument("--model", required=True, help="a .pt checkpoint, a model.tar.gz, or an s3:// URI of one")
    deploy.add_argument("--image", help="serving image URI (default: this account's ECR posebatch:latest)")
    deploy.add_argument("--instance-type", default="ml.g5.xlarge", help="async endpoint instance type")
    deploy.add_argument("--max-instances", type=int, default=2, help="async endpoint autoscaling maximum")
    deploy.add_argument(
        "--reserved-concurrency", type=int, default=5, help="per Lambda; 0 = none (accounts with a quota of 10)"
    )
    deploy.add_argument("--trigger-concurrency", type=int, default=4, help="SQS event source MaximumConcurrency")
    deploy.add_argument(
        "--finalize-concurrency",
        type=int,
        default=100,
        help="Batch Transform page invocations at once (2-1000; docs/batch-transform.md, 'Finalisation at any scale')",
    )
    deploy.add_argument("--input-prefix", default="input/", help="async input prefix (triggers inference)")
    deploy.add_argument("--batch-input-prefix", default="batch-input/", help="Batch Transform input prefix")
    deploy.add_argument("--output-prefix", default="output/")
    deploy.add_argument("--artifacts-bucket", help="default: <stack>-artifacts-<account>-<region>, created")
    deploy.add_argument("--notify-email", metavar="ADDR", help="subscribe ADDR to the completion and alarm topics")
    deploy.set_defaults(func=run_deploy)

    delete = actions.add_parser("delete", help="delete the stack (the data bucket is kept)")
    delete.add_argument("--stack", default="posebatch")
    delete.set_defaults(func=run_delete)


def run_package(args: argparse.Namespace) -> int:
    from batch.stack.lambda_zip import UnsupportedImport, build_lambda_zip, project_root

    try:
        path, closure = build_lambda_zip(project_root(), args.out)
    except UnsupportedImport as exc:  # the checkout's Lambda code imports what Lambda lacks
        raise CommandFailed(str(exc)) from None
    print(f"wrote {path} ({path.stat().st_size:,} bytes): {', '.join(sorted(closure.modules))}")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    from batch.stack.cloudformation import StackError
    from batch.stack.deploy import StackOptions, deploy, next_steps
    from batch.stack.lambda_zip import UnsupportedImport

    if not 2 <= args.finalize_concurrency <= 1000:  # the event source's MaximumConcurrency range
        raise UserError(f"--finalize-concurrency must be 2-1000, got {args.finalize_concurrency}")
    options = StackOptions(
        stack_name=args.stack,
        model=args.model,
        image_uri=args.image,
        instance_type=args.instance_type,
        max_instances=args.max_instances,
        reserved_concurrency=args.reserved_concurrency,
        trigger_max_concurrency=args.trigger_concurrency,
        finalize_concurrency=args.finalize_concurrency,
        input_prefix=args.input_prefix,
        batch_input_prefix=args.batch_input_prefix,
        output_prefix=args.output_prefix,
        notify_email=args.notify_email,
        artifacts_bucket=args.artifacts_bucket,
    )
    try:
        result = deploy(options, print)
    except (StackError, UnsupportedImport) as exc:  # it ran and failed
        raise CommandFailed(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        # StackInputError (the stack name, not a checkout), a --model that is no file, no checkpoint or
        # no s3:// URI (InvalidS3Uri), an unreadable keypoints.yaml beside it: the stack was not touched.
        raise UserError(str(exc)) from None
    print(f"stack {args.stack}: {result.action}")
    for line in next_steps(result.outputs):
        print(line)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from batch.stack.cloudformation import StackError
    from batch.stack.deploy import delete

    try:
        delete(args.stack, print)
    except StackError as exc:
        raise CommandFailed(str(exc)) from None
    return 0
