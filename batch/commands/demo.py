"""`pose-batch demo`: the whole Batch Transform flow on the embedded local stack, in one command.

Starts the stack, uploads the model and sample images (Ultralytics' own, or `--images DIR`), launches
the job with the same launcher as on AWS, waits, prints the SNS notification, and copies the outputs
to a local folder, `_REPORT.html` included: its path is the last line printed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

INPUT_PREFIX = "demo/input/"
OUTPUT_PREFIX = "demo/output/"
NOTIFICATION_QUEUE = "posebatch-demo-notifications"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a batch transform job end to end on the local stack", description=__doc__
    )
    parser.add_argument("--images", type=Path, help="a folder of images (default: Ultralytics' sample images)")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="where to copy the outputs")
    parser.add_argument(
        "--model",
        help="checkpoint or Ultralytics model name (default: $POSE_MODEL, else yolo11n-pose.pt)",
    )
    parser.add_argument(
        "--mode", choices=("auto", "images", "manifest"), default="auto", help="as `pose-batch transform --mode`"
    )
    parser.add_argument("--home", default=".posebatch/demo", help="state folder of the demo's stack")
    parser.set_defaults(func=run)


def sample_images() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def upload_folder(s3: Any, bucket: str, folder: Path, prefix: str) -> int:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        s3.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())
    return len(files)


def subscribe_queue(stack: Any, topic_arn: str) -> str:
    sqs = stack.client("sqs")
    url: str = sqs.create_queue(QueueName=NOTIFICATION_QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return url


def receive_notification(sqs: Any, queue_url: str, *, timeout_s: float) -> dict[str, Any] | None:
    """The SNS envelope (Subject, Message, ...) of the first notification, or None on timeout."""
    from batch.polling import poll

    def received() -> dict[str, Any] | None:
        for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            envelope: dict[str, Any] = json.loads(message["Body"])
            return envelope
        return None

    try:
        return poll(received, timeout_s=timeout_s, interval_s=0.0, on_timeout=lambda: "")
    except TimeoutError:
        return None


def download_prefix(s3: Any, bucket: str, prefix: str, into: Path, *, skip: str = "_transform/") -> int:
    count = 0
    from batch.s3_listing import list_objects

    for obj in list_objects(s3, bucket, prefix):
        rel = obj["Key"][len(prefix) :]
        if rel.startswith(skip):
            continue
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(target))
        count += 1
    return count


def run(args: argparse.Namespace) -> int:
    from batch.commands.common import UserError
    from batch.commands.transform import execute
    from batch.local.stack import EmbeddedStack
    from batch.model_package import checkpoint_from, upload_model
    from batch.orchestration_settings import local_finalize_concurrency
    from batch.report.sources import REPORT_NAME
    from batch.settings import Settings
    from batch.transform.completion import TOPIC_NAME
    from batch.transform.launcher import LaunchOptions

    try:
        local_finalize_concurrency()  # read when the stack starts: a bad value is said before anything runs
    except ValueError as exc:
        raise UserError(str(exc)) from None
    checkpoint = checkpoint_from(args.model or Settings.from_env().pose_model)
    images = args.images or sample_images()
    if not images.is_dir():
        raise SystemExit(f"--images {images} is not a folder")
    with EmbeddedStack(Path(args.home)) as stack:
        s3, bucket = stack.client("s3"), stack.bucket
        print(f"local stack up (moto at {stack.moto.url}, SageMaker stand-in at {stack.sagemaker_url})")
        model_data = upload_model(s3, bucket, checkpoint, stack.home)
        count = upload_folder(s3, bucket, images, INPUT_PREFIX)
        print(f"uploaded {count} images from {images} to s3://{bucket}/{INPUT_PREFIX}")
        topic_arn = stack.client("sns").create_topic(Name=TOPIC_NAME)["TopicArn"]
        queue_url = subscribe_queue(stack, topic_arn)
        options = LaunchOptions(
            input=f"s3://{bucket}/{INPUT_PREFIX}",
            output=f"s3://{bucket}/{OUTPUT_PREFIX}",
            model_data=model_data,
            mode=args.mode,
            instance_type="ml.m5.xlarge",
        )
        code, _ = execute(
            options, wait=True, clients=stack.client, poll_s=1.0, summary_wait_s=120.0, outlives_us=False, report=True
        )
        notification = receive_notification(stack.client("sqs"), queue_url, timeout_s=60.0)
        if notification is None:
            print("no SNS notification arrived within 60 s")
            code = code or 1
        else:
            print(f"\nSNS notification on {topic_arn}:\n  Subject: {notification.get('Subject')}")
            print("  " + str(notification.get("Message", "")).replace("\n", "\n  "))
        copied = download_prefix(s3, bucket, OUTPUT_PREFIX, args.out)
        print(f"\ncopied {copied} output files to {args.out.resolve()} (keypoints/, annotated/, _SUMMARY.json)")
    report = args.out / REPORT_NAME
    if report.is_file():
        print(f"open the report: {report.resolve()}")  # last: the first thing a newcomer wants to see
    else:
        print("no report was written (see the message above)", file=sys.stderr)
        code = code or 1
    return code
