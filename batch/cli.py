"""`pose-batch`: one console command; each subcommand lives in `batch/commands/<name>.py` and exposes
`register(subparsers)`. Heavy imports (torch, boto3, the SDK) happen inside the subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

_COMMAND_MODULES = (
    "serve",
    "predict",
    "package_model",
    "schema",
    "demo",
    "local",
    "transform",
    "submit",
    "dlq",
    "deploy",
    "bench",
    "stack",
    "image",
    "report",
    "eval",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pose-batch", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"batch.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not getattr(args, "passes_extra_arguments", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra_arguments = extra
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    code = args.func(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
