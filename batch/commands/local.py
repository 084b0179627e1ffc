"""`pose-batch local up`: run the embedded local AWS (moto: S3, SNS, SQS, EventBridge; the SageMaker and
Lambda stand-ins) until Ctrl-C, with the packaged model uploaded, so that `--local` commands in other
terminals (`pose-batch transform --local ...`) work against it."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from batch.model_package import DEFAULT_MODEL


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("local", help="the embedded local AWS stack", description=__doc__)
    commands = parser.add_subparsers(dest="local_command", required=True)
    up = commands.add_parser("up", help="start the local stack and keep it running until Ctrl-C")
    up.add_argument(
        "--model",
        help="pose checkpoint (.pt) or Ultralytics model name to package and upload (default: $POSE_MODEL, "
        f"else {DEFAULT_MODEL}, downloaded by Ultralytics)",
    )
    up.add_argument("--home", default=".posebatch", help="state folder (other commands find the stack here)")
    up.add_argument("--bucket", default="posebatch-local")
    up.add_argument(
        "--no-async", action="store_true", help="skip the async endpoint and its S3-event trigger (saves a container)"
    )
    up.set_defaults(func=run_up)


def run_up(args: argparse.Namespace) -> int:
    from batch.local.stack import EmbeddedStack
    from batch.local.state import write_state
    from batch.model_package import checkpoint_from, upload_model
    from batch.settings import Settings
    from batch.transform.launcher import LOCAL_IMAGE_URI

    checkpoint = checkpoint_from(args.model or Settings.from_env().pose_model)
    home = Path(args.home)
    with EmbeddedStack(home, bucket=args.bucket) as stack:
        model_data = upload_model(stack.client("s3"), stack.bucket, checkpoint, stack.home)
        write_state(stack.home, model={"model_data": model_data, "image_uri": LOCAL_IMAGE_URI})
        if not args.no_async:
            from batch.local.async_deployment import deploy_local_endpoint

            deployment = deploy_local_endpoint(stack, model_data_url=model_data)
            layout = deployment.layout
            print(f"async endpoint {deployment.endpoint_name} is InService: drop images under")
            print(f"  s3://{layout.input_bucket}/{layout.input_prefix}  ->  results under {layout.output_root}")
        print("local stack running; in another shell:")
        for key, value in stack.environment.items():
            print(f"  export {key}={value}")
        print(f"model: {model_data}   bucket: s3://{stack.bucket}/")
        print(
            f"  pose-batch transform --local --home {home} s3://{stack.bucket}/input/ "
            f"--output s3://{stack.bucket}/output/ --wait"
        )
        print("Ctrl-C to stop.")
        sys.stdout.flush()
        stop = threading.Event()
        # `kill` (SIGTERM) stops it as cleanly as Ctrl-C: moto and the containers go with it.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            print("stopping")
    return 0
