"""Pack a pose checkpoint (.pt) into SageMaker's model.tar.gz; upload it to S3 and pass its URI as the
model data (`pose-batch transform --model-data s3://...`).

  pose-batch package-model yolo11n-pose.pt -o model.tar.gz"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from batch.commands.common import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "package-model",
        help="pack a .pt checkpoint into SageMaker's model.tar.gz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", type=Path, help="the pose checkpoint (.pt)")
    parser.add_argument("-o", "--output", type=Path, default=Path("model.tar.gz"), help="default: model.tar.gz")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch.model_package import package_checkpoint

    try:
        path = package_checkpoint(args.checkpoint, args.output)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {path} ({path.stat().st_size:,} bytes); upload it to S3 and pass it as the model data URL")
    return 0
