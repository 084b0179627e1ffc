"""Launch a SageMaker Batch Transform job over every image under an S3 prefix, on AWS or (--local) on the
running `pose-batch local up` stack. With --wait: progress, then the job's summary and _REPORT.html.
Ctrl-C stops only the waiting: the job keeps running; `pose-batch transform --attach JOB` follows it again.
--conf, --iou, --imgsz and the video flags set the job's container environment (POSE_CONF, POSE_VIDEO_FPS, ...).
The model: --model-package ARN|latest-approved, else --model-data, else the approved default model of the
registry group (`pose-batch models approve`), else $POSEBATCH_MODEL_DATA (with --local: the stack's model).

  pose-batch transform s3://BUCKET/in/ --output s3://BUCKET/out/ --wait
  pose-batch transform --local s3://posebatch-local/input/ --output s3://posebatch-local/output/ --wait"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from batch.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UserError,
    add_local_arguments,
    local_home,
    write_report,
)
from batch.commands.model_choice import add_model_package_arguments, choose
from batch.commands.request_options import add_request_options, with_environment
from batch.orchestration_settings import DeploymentDefaults
from batch.transform.mode_choice import AUTO_MANIFEST_FROM

if TYPE_CHECKING:
    from batch.aws import Clients
    from batch.transform.launcher import LaunchOptions
    from batch.transform.plan import JobPlan


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "transform",
        help="launch a batch transform job over an S3 prefix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DeploymentDefaults.from_env()
    parser.add_argument("input", nargs="?", help="s3://BUCKET/input/prefix/ holding the images")
    parser.add_argument("--output", help="s3://BUCKET/output/prefix/ for keypoints/, annotated/ (required)")
    parser.add_argument("--attach", metavar="JOB", help="follow a job launched earlier (instead of launching one)")
    parser.add_argument(
        "--mode",
        choices=("auto", "images", "manifest"),
        default="auto",
        help="images: one request per image; manifest: JSON Lines shards of S3 references; auto (default): "
        f"manifest from {AUTO_MANIFEST_FROM} images or with any object too large for images mode, else images",
    )
    add_local_arguments(parser, what="run the job on")
    add_request_options(parser)
    parser.add_argument("--wait", action="store_true", help="wait, showing progress, and print a summary")
    parser.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --wait: write _REPORT.html beside _SUMMARY.json at the end (default: on)",
    )
    parser.add_argument("--image-uri", default=defaults.image_uri, help="the serving image (ECR URI)")
    parser.add_argument(
        "--model-data",
        help="s3://.../model.tar.gz (default: the group's approved default model, else $POSEBATCH_MODEL_DATA, "
        "or with --local the stack's model)",
    )
    add_model_package_arguments(parser)
    parser.add_argument("--role-arn", default=defaults.role_arn, help="SageMaker execution role")
    parser.add_argument("--job-name", help="default: posebatch-<mode>-<time>-<random>")
    parser.add_argument("--model-name", help="default: derived from image, model data and environment")
    parser.add_argument("--instance-type", default="ml.g4dn.xlarge")
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument("--max-concurrent", type=int, help="MaxConcurrentTransforms (default per mode)")
    parser.add_argument("--max-payload-mb", type=int, help="MaxPayloadInMB (default per mode)")
    parser.add_argument("--timeout-s", type=int, default=600, help="InvocationsTimeoutInSeconds")
    parser.add_argument("--max-retries", type=int, default=3, help="InvocationsMaxRetries (0-3)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="container environment, e.g. POSE_CONF=0.4 (repeatable)",
    )
    parser.add_argument("--images-per-shard", type=int, default=256, help="manifest mode: largest shard")
    parser.add_argument("--poll-seconds", type=float, default=None, help="status poll interval with --wait")
    parser.add_argument(
        "--summary-wait-s",
        type=float,
        default=60.0,
        help="with --wait: how long to wait for the completion handler's summary",
    )


def options_from_args(args: argparse.Namespace, clients: Clients) -> LaunchOptions:
    from batch.transform.launcher import LOCAL_IMAGE_URI, LOCAL_ROLE_ARN, LaunchError, LaunchOptions

    environment = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LaunchError(f"--env expects KEY=VALUE, got {item!r}")
        environment[key] = value
    environment = with_environment(args, environment)  # a Batch Transform job has no per-request attributes
    image_uri, role_arn = args.image_uri, args.role_arn
    fallback = DeploymentDefaults.from_env().model_data
    if args.local:
        from batch.local.state import read_section

        model = read_section(local_home(args), "model")
        image_uri = image_uri or model.get("image_uri") or LOCAL_IMAGE_URI
        fallback = model.get("model_data")
        role_arn = role_arn or LOCAL_ROLE_ARN
    if not role_arn:  # always needed; the model and image may still come from the registry
        missing = [
            flag
            for flag, given in (
                ("--image-uri", image_uri or args.model_package),
                ("--model-data", args.model_data or fallback or args.model_package),
                ("--role-arn", role_arn),
            )
            if not given
        ]
        raise LaunchError(f"missing {', '.join(missing)} (or their POSEBATCH_* variables)")
    served = choose(args, clients, image_uri=image_uri, model_data=args.model_data, fallback_model_data=fallback).model
    return LaunchOptions(
        input=args.input,
        output=args.output,
        model_data=served.model_data_url,
        model_package=served.model_package_arn,
        mode=args.mode,
        image_uri=served.image_uri,
        role_arn=role_arn,
        job_name=args.job_name,
        model_name=args.model_name,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        max_concurrent=args.max_concurrent,
        max_payload_mb=args.max_payload_mb,
        timeout_s=args.timeout_s,
        max_retries=args.max_retries,
        environment=environment,
        max_images_per_shard=args.images_per_shard,
    )


def clients_for(args: argparse.Namespace) -> Clients:
    """The running local stack's clients with `--local`, AWS's otherwise."""
    from batch import aws

    if args.local:
        from batch.local.state import stack_clients

        return stack_clients(local_home(args))
    return aws.client


def execute(
    options: LaunchOptions,
    *,
    wait: bool,
    clients: Clients | None = None,
    poll_s: float = 5.0,
    summary_wait_s: float = 60.0,
    show_progress: bool = True,
    local: bool = False,
    report: bool = False,
    outlives_us: bool = True,
) -> tuple[int, dict[str, Any] | None]:
    """Launch, and with `wait` follow to the end; returns (exit code, summary). Shared by the demo, whose
    in-process stack dies with it (`outlives_us=False`: Ctrl-C is a plain interrupt, no re-attach hint)."""
    from batch import aws
    from batch.transform.completion import JOB_NAME_PREFIX
    from batch.transform.launcher import launch

    clients = clients or aws.client
    launched = launch(options, s3=clients("s3"), sagemaker=clients("sagemaker"))
    plan = launched.plan
    try:  # from here on the job runs: an interrupt must say so
        print(f"launched transform job {plan.job_name} over {len(plan.keys)} images ({plan.mode} mode)", flush=True)
        if launched.mode.automatic:
            print(f"mode: {launched.mode.describe()}", file=sys.stderr, flush=True)
        warn_refused(plan)
        if not launched.mode.automatic and plan.mode == "images" and len(plan.keys) >= LARGE_JOB_IMAGES:
            print(
                f"note: for {len(plan.keys)} images, --mode manifest finalises 14-48x faster and moves ~3.7x fewer "
                "S3 bytes per image (docs/batch-transform.md, 'Which mode for large jobs')",
                file=sys.stderr,
            )
        if not plan.job_name.startswith(JOB_NAME_PREFIX):
            print(
                f"warning: the stack's completion rule matches jobs named {JOB_NAME_PREFIX}*: without --wait, "
                f"{plan.job_name} is not finalised or announced",
                file=sys.stderr,
            )
        if not wait:
            print(f"follow it with: {attach_hint(plan.job_name, local=local)}")
            return 0, None
        return follow(
            plan,
            clients=clients,
            poll_s=poll_s,
            summary_wait_s=summary_wait_s,
            show_progress=show_progress,
            local=local,
            report=report,
            outlives_us=outlives_us,
        )
    except KeyboardInterrupt:
        if not outlives_us:
            raise
        return detached(plan.job_name, local=local), None


def attach_hint(job_name: str, *, local: bool) -> str:
    return f"pose-batch transform --attach {job_name}" + (" --local" if local else "")


def follow(
    plan: Any,
    *,
    clients: Clients,
    poll_s: float,
    summary_wait_s: float,
    show_progress: bool = True,
    local: bool = False,
    report: bool = False,
    outlives_us: bool = True,
) -> tuple[int, dict[str, Any] | None]:
    """Wait for the job showing progress, then print its summary (and write the report). Ctrl-C leaves
    the job running and says how to come back to it."""
    s3, sagemaker = clients("s3"), clients("sagemaker")
    try:
        from batch.transform.progress import format_report, settle_summary, wait_for_job

        job = wait_for_job(sagemaker, s3, plan, poll_s=poll_s, show_progress=show_progress)
        summary = settle_summary(s3, plan, job, wait_s=summary_wait_s)
    except KeyboardInterrupt:
        if not outlives_us:
            raise
        return detached(plan.job_name, local=local), None
    print(format_report(job, summary))
    if report:
        write_report(str(summary["output"]), s3)
    return (0 if job["TransformJobStatus"] == "Completed" else 1), summary


def detached(job_name: str, *, local: bool) -> int:
    """What Ctrl-C while following a job says: the job goes on, and how to come back to it."""
    where = "in the `pose-batch local up` process" if local else "on SageMaker"
    flag = " --local" if local else ""
    print(
        f"\nstopped waiting; transform job {job_name} keeps running {where}.\n"
        f"  follow it again: {attach_hint(job_name, local=local)}\n"
        f"  its state:       pose-batch status {job_name}{flag}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


MAX_REFUSED_SHOWN = 20
LARGE_JOB_IMAGES = 10_000  # from here manifest mode is the better choice (measured: docs/batch-transform.md)


def warn_refused(plan: JobPlan) -> None:
    """Say, before the job runs, which inputs it will not carry; each gets an error record at the end."""
    if not plan.refused:
        return
    print(f"warning: {len(plan.refused)} input(s) kept out of the job; each gets an error record:", file=sys.stderr)
    for refusal in plan.refused[:MAX_REFUSED_SHOWN]:
        print(f"  {refusal.rel!r}: {refusal.code}: {refusal.message}", file=sys.stderr)
    if len(plan.refused) > MAX_REFUSED_SHOWN:
        print(f"  ... and {len(plan.refused) - MAX_REFUSED_SHOWN} more", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    from batch.transform.launcher import LaunchError

    poll_s = args.poll_seconds or (1.0 if args.local else 10.0)
    clients = clients_for(args)
    if args.attach:
        from batch.transform.progress import load_plan

        try:
            plan = load_plan(clients("sagemaker"), clients("s3"), args.attach)
        except ClientError as exc:
            raise UserError(f"no transform job {args.attach} here: {exc.response['Error'].get('Message')}") from None
        except ValueError as exc:  # not one of ours: no plan to follow
            raise UserError(str(exc)) from None
        code, _ = follow(
            plan, clients=clients, poll_s=poll_s, summary_wait_s=args.summary_wait_s, local=args.local,
            report=args.report,
        )  # fmt: skip
        return code
    if not args.input or not args.output:
        print("pose-batch transform: error: give the input prefix and --output (or --attach JOB)", file=sys.stderr)
        return EXIT_USAGE
    try:
        options = options_from_args(args, clients)
        code, _ = execute(
            options,
            wait=args.wait,
            clients=clients,
            poll_s=poll_s,
            summary_wait_s=args.summary_wait_s,
            local=args.local,
            report=args.report,
        )
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    return code
