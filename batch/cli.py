"""PoseBatch: pose estimation (Ultralytics YOLO pose) over many images, locally, on SageMaker Batch Transform,
on an asynchronous endpoint, or on a real-time one; models from the SageMaker Model Registry.

Start with `pose-batch predict photos/ --out poses/` (local files, no AWS), or `pose-batch local up` and then
`pose-batch transform --local ...` / `pose-batch submit --local ...` in another terminal.

exit codes: 0 success; 1 a job, some images, a deployment or an image build failed; 2 a usage or user error
(the message says what to do); 130 interrupted (Ctrl-C). Logs go to stderr; --verbose shows debug logs and tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

# Each subcommand lives in `batch/commands/<name>.py` and exposes `register(subparsers)`; heavy imports
# (torch, boto3) happen inside the subcommands.
_COMMAND_MODULES = (
    "predict",
    "serve",
    "package_model",
    "schema",
    "demo",
    "local",
    "transform",
    "status",
    "submit",
    "dlq",
    "deploy",
    "invoke",
    "models",
    "bench",
    "stack",
    "image",
    "report",
    "eval",
    "train",
    "pipeline",
)
# Commands whose INFO logs are what the user came for (a server's access log).
_INFO_LOGGING = {"serve"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pose-batch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs, and tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"batch.commands.{name}").register(subparsers)
    return parser


def configure_logging(verbose: bool, command: str) -> None:
    """Logs go to stderr, so stdout holds only what the user asked for (results, JSON)."""
    level = logging.DEBUG if verbose else logging.INFO if command in _INFO_LOGGING else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    from batch.commands.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, explain

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not getattr(args, "passes_extra_arguments", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra_arguments = extra
    configure_logging(args.verbose, args.command)
    name = f"pose-batch {args.command}"
    try:
        return int(args.func(args) or 0)
    except SystemExit as exc:  # `raise SystemExit("message")`: a user error said in words
        if not isinstance(exc.code, str):
            raise
        print(f"{name}: error: {exc.code}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        explained = explain(exc)
        if explained is not None:
            code, message = explained
            print(f"{name}: error: {message}", file=sys.stderr)
            return code
        print(
            f"{name}: unexpected error: {type(exc).__name__}: {exc}"
            + ("" if args.verbose else "\n(run `pose-batch --verbose ...` for the traceback, and report it)"),
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
