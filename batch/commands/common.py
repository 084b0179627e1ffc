"""What every command shares: the exit codes, the one user-error type, the `--local`/`--home` arguments,
and how an exception becomes one message a user can act on (`explain`; `batch.cli` prints it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from batch.orchestration_settings import LOCAL_HOME

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1  # a job, some images, a deployment or an image build failed
EXIT_USAGE = 2  # the command was used wrongly: bad argument, missing file or bucket, no stack
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class UserError(Exception):
    """A mistake the user can fix; the message says how. Exit code 2."""


class CommandFailed(Exception):
    """The command ran and did not reach its goal (a deployment, an image build): exit code 1, with the
    message on stderr like a `UserError`'s. Not for mistakes the user can fix: those are `UserError`."""


def add_local_arguments(parser: argparse.ArgumentParser, *, what: str = "use") -> None:
    parser.add_argument("--local", action="store_true", help=f"{what} the running `pose-batch local up` stack")
    parser.add_argument(
        "--home",
        help=f"the local stack's folder (default: ${LOCAL_HOME}, else $XDG_STATE_HOME/posebatch, "
        "else ~/.local/state/posebatch: the same from any working directory)",
    )


def follow_or_detach(follow: Callable[[], T], what: str, *, local: bool) -> T | None:
    """`follow()`'s result; None after Ctrl-C, having said that `what` keeps running (only the waiting stops)."""
    try:
        return follow()
    except KeyboardInterrupt:
        where = "in the `pose-batch local up` process" if local else "on SageMaker"
        print(f"\nstopped waiting; {what} keeps running {where}", file=sys.stderr)
        return None


def local_home(args: argparse.Namespace) -> Path:
    from batch.local.state import resolve_home

    return resolve_home(args.home)


def explain(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for an exception a user caused or can fix; None for a defect."""
    from batch.errors import ModelLoadError, PoseError
    from batch.local.state import LocalStackUnavailable

    if isinstance(exc, UserError | LocalStackUnavailable):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, CommandFailed):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, ModelLoadError):
        return EXIT_USAGE, f"{exc}. Pass --model with a pose checkpoint (e.g. yolo11n-pose.pt)"
    if isinstance(exc, PoseError):
        return EXIT_USAGE, exc.message
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return EXIT_USAGE, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    return _explain_aws(exc)


def _explain_aws(exc: BaseException) -> tuple[int, str] | None:
    try:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(exc, NoCredentialsError):
        return EXIT_USAGE, "no AWS credentials found: configure them (`aws configure`, AWS_PROFILE) or use --local"
    if isinstance(exc, NoRegionError):
        return EXIT_USAGE, "no AWS region set: export AWS_REGION (e.g. us-east-1)"
    if isinstance(exc, EndpointConnectionError):
        return (
            EXIT_USAGE,
            f"cannot reach {exc.kwargs.get('endpoint_url')}: is the network (or `pose-batch local up`) up?",
        )
    if isinstance(exc, ClientError):
        error: dict[str, Any] = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        bucket = error.get("BucketName") or ""
        if code == "NoSuchBucket":
            return EXIT_USAGE, f"the bucket {bucket or ''} does not exist: check the s3:// URI".replace("  ", " ")
        if code in ("AccessDenied", "403", "AccessDeniedException"):
            return EXIT_USAGE, f"access denied by AWS ({exc.operation_name}): check your credentials and permissions"
        return EXIT_USAGE, f"AWS refused {exc.operation_name}: {code}: {message}"
    return None


def write_report(location: str, s3: Any, *, to_stderr: bool = False) -> None:
    """`_REPORT.html` at an output root (beside `_SUMMARY.json` for a job); a report that fails is said,
    never raised: the results stand without it. `to_stderr` where stdout holds only JSON lines."""
    from batch.report import build_report

    try:
        print(f"report:   {build_report(location, s3=s3).location}", file=sys.stderr if to_stderr else sys.stdout)
    except Exception as exc:
        print(f"report not written: {type(exc).__name__}: {exc}", file=sys.stderr)
