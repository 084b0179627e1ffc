"""Run the embedded local AWS (moto: S3, SNS, SQS, EventBridge; the SageMaker and Lambda stand-ins) until
Ctrl-C, with the packaged model uploaded, so that `--local` commands in other terminals work against it:

  pose-batch local up                      # terminal 1
  pose-batch transform --local s3://posebatch-local/input/ --output s3://posebatch-local/output/ --wait

Its state lives in one per-user folder ($POSEBATCH_LOCAL_HOME, else $XDG_STATE_HOME/posebatch, else
~/.local/state/posebatch), so --local commands find it from any working directory. Ctrl-C, `kill` and
closing the terminal all stop it cleanly."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from typing import Any

from batch.commands.common import UserError, local_home
from batch.model_package import DEFAULT_MODEL
from batch.orchestration_settings import LOCAL_HOME


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="the embedded local AWS stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start the local stack and keep it running until Ctrl-C",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "--model",
        help="pose checkpoint (.pt) or Ultralytics model name to package and upload (default: $POSE_MODEL, "
        f"else {DEFAULT_MODEL}, downloaded by Ultralytics)",
    )
    up.add_argument("--home", help=f"the stack's folder (default: ${LOCAL_HOME} or the per-user state folder)")
    up.add_argument("--bucket", default="posebatch-local")
    up.add_argument(
        "--no-async", action="store_true", help="skip the async endpoint and its S3-event trigger (saves a container)"
    )
    up.set_defaults(func=run_up)


def check_pose_checkpoint(checkpoint: Any) -> None:
    """Refuse a checkpoint the container would refuse (a detect model, a broken file) before starting anything."""
    from batch.errors import ModelLoadError
    from batch.inference.model_source import load_yolo

    try:
        load_yolo(str(checkpoint))
    except ModelLoadError as exc:
        raise UserError(f"{exc}; pass --model with a pose checkpoint (e.g. {DEFAULT_MODEL})") from None


def refuse_a_running_stack(home: Any) -> None:
    from batch.local.state import LocalStackUnavailable, read_state, state_path

    try:
        state = read_state(home)
    except LocalStackUnavailable:
        return  # none, or a stale one that `EmbeddedStack.start` replaces
    raise UserError(
        f"a local stack already runs here (pid {state.get('pid')}, {state_path(home)}): use it, stop it "
        "(Ctrl-C in its terminal), or start another with --home DIR"
    )


def run_up(args: argparse.Namespace) -> int:
    from batch.local.stack import EmbeddedStack
    from batch.local.state import write_state
    from batch.model_package import checkpoint_from, upload_model
    from batch.orchestration_settings import local_finalize_concurrency
    from batch.settings import Settings
    from batch.transform.launcher import LOCAL_IMAGE_URI

    home = local_home(args)
    refuse_a_running_stack(home)
    try:
        local_finalize_concurrency()  # read when the stack starts: a bad value is said before anything runs
    except ValueError as exc:
        raise UserError(str(exc)) from None
    checkpoint = checkpoint_from(args.model or Settings.from_env().pose_model)
    check_pose_checkpoint(checkpoint)
    stop = threading.Event()
    # `kill` (SIGTERM) and a closed terminal (SIGHUP) stop it as cleanly as Ctrl-C: moto and the
    # containers go with it, and the state file is removed.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    with EmbeddedStack(home, bucket=args.bucket) as stack:
        model_data = upload_model(stack.client("s3"), stack.bucket, checkpoint, stack.home)
        write_state(stack.home, model={"model_data": model_data, "image_uri": LOCAL_IMAGE_URI})
        if not args.no_async:
            from batch.local.sagemaker.async_deployment import deploy_local_endpoint

            deployment = deploy_local_endpoint(stack, model_data_url=model_data)
            layout = deployment.layout
            say(f"async endpoint {deployment.endpoint_name} is InService: drop images under")
            say(f"  s3://{layout.input_bucket}/{layout.input_prefix}  ->  results under {layout.output_root}")
        say(f"local stack running (state: {stack.state_file}); in another terminal, from any folder:")
        say(f"  pose-batch transform --local s3://{stack.bucket}/input/ --output s3://{stack.bucket}/output/ --wait")
        if not args.no_async:
            say(f"  pose-batch submit --local s3://{stack.bucket}/{layout.input_prefix} --wait")
        say("  pose-batch deploy --realtime --local && pose-batch invoke --local posebatch-realtime photo.jpg")
        say(f"  pose-batch models list --local   (group {stack.model_package_group}: approving a package deploys it)")
        say(f"model: {model_data}   bucket: s3://{stack.bucket}/")
        say("other AWS tools reach it with:")
        for key, value in stack.environment.items():
            say(f"  export {key}={value}")
        say("Ctrl-C to stop.")
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        say("stopping")
    return 0


def say(line: str) -> None:
    """Print, unless the terminal is gone (SIGHUP): the stack must still stop cleanly."""
    with contextlib.suppress(OSError):
        print(line, flush=True)
