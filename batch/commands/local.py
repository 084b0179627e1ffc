"""`pose-batch local up`: run the embedded local AWS (moto: S3, SNS, SQS, EventBridge; the SageMaker and
Lambda stand-ins) until Ctrl-C, with the packaged model uploaded, so that `--local` commands in other
terminals (`pose-batch transform --local ...`) work against it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

MODEL_STATE_FILE = "local-model.json"
MODEL_KEY = "models/posebatch/model.tar.gz"
DEFAULT_MODEL = "yolo11n-pose.pt"  # downloaded by Ultralytics when no checkpoint is given


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("local", help="the embedded local AWS stack", description=__doc__)
    commands = parser.add_subparsers(dest="local_command", required=True)
    up = commands.add_parser("up", help="start the local stack and keep it running until Ctrl-C")
    up.add_argument(
        "--model",
        default=os.environ.get("POSE_MODEL"),
        help="pose checkpoint (.pt) or Ultralytics model name to package and upload (default: $POSE_MODEL, "
        f"else {DEFAULT_MODEL}, downloaded by Ultralytics)",
    )
    up.add_argument("--home", default=".posebatch", help="state folder (other commands find the stack here)")
    up.add_argument("--bucket", default="posebatch-local")
    up.add_argument(
        "--no-async", action="store_true", help="skip the async endpoint and its S3-event trigger (saves a container)"
    )
    up.set_defaults(func=run_up)


def upload_model(s3: Any, bucket: str, checkpoint: Path, workdir: Path) -> str:
    """Package the checkpoint as SageMaker's model.tar.gz and upload it; returns its S3 URI."""
    from batch.model_package import package_checkpoint

    archive = package_checkpoint(checkpoint, workdir / "model.tar.gz")
    s3.upload_file(str(archive), bucket, MODEL_KEY)
    return f"s3://{bucket}/{MODEL_KEY}"


def write_model_state(home: Path, *, model_data: str, image_uri: str) -> Path:
    path = home.resolve() / MODEL_STATE_FILE
    path.write_text(json.dumps({"model_data": model_data, "image_uri": image_uri}, indent=2))
    return path


def read_model_state(home: Path) -> dict[str, str]:
    path = home.resolve() / MODEL_STATE_FILE
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data


def checkpoint_from(value: str | None) -> Path:
    """A local checkpoint file: the path given, or an Ultralytics model name downloaded by Ultralytics
    (default yolo11n-pose.pt); a clear error when neither works (no such file, no internet)."""
    name = value or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.parent != Path(".") or path.suffix != ".pt":
        raise SystemExit(f"model checkpoint {path} does not exist")
    from ultralytics.utils.downloads import attempt_download_asset

    try:
        downloaded = Path(attempt_download_asset(name))
    except Exception as exc:
        downloaded, reason = Path(name), str(exc)
    else:
        reason = "the download produced no file"
    if not downloaded.is_file():
        raise SystemExit(
            f"no model: {name!r} is not a file and Ultralytics could not download it ({reason}); "
            "pass --model PATH/TO/checkpoint.pt or set POSE_MODEL"
        )
    return downloaded


def run_up(args: argparse.Namespace) -> int:
    from batch.local.stack import LocalStack
    from batch.transform.launcher import LOCAL_IMAGE_URI

    checkpoint = checkpoint_from(args.model)
    home = Path(args.home)
    with LocalStack(home, bucket=args.bucket) as stack:
        model_data = upload_model(stack.client("s3"), stack.bucket, checkpoint, stack.home)
        state = write_model_state(stack.home, model_data=model_data, image_uri=LOCAL_IMAGE_URI)
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
            state.unlink(missing_ok=True)
    return 0
