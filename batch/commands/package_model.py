"""`pose-batch package-model CHECKPOINT -o model.tar.gz`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("package-model", help="pack a .pt checkpoint into SageMaker's model.tar.gz")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("model.tar.gz"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch.model_package import package_checkpoint

    try:
        path = package_checkpoint(args.checkpoint, args.output)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"wrote {path} ({path.stat().st_size:,} bytes); upload it to S3 and pass it as the model data URL")
    return 0
