"""Run the SageMaker-compatible inference server here, exactly as the container does: GET /ping,
POST /invocations (an image in, its keypoint JSON or annotated JPEG out). Ctrl-C stops it.

  pose-batch serve --model yolo11n-pose.pt --port 8080
  curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' localhost:8080/invocations"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the SageMaker-compatible inference server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="pose checkpoint or Ultralytics model name (instead of $POSE_MODEL)")
    parser.add_argument("--port", type=int, help="port (instead of $SAGEMAKER_BIND_TO_PORT; default 8080)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch.server.__main__ import main

    overrides: dict[str, object] = {}
    if args.model:
        overrides["pose_model"] = args.model
    if args.port:
        overrides["port"] = args.port
    return main(["serve"], overrides=overrides)
