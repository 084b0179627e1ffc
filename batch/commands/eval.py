"""`pose-batch eval OUTPUT --annotations person_keypoints.json`: COCO keypoint AP (pycocotools' OKS
evaluation) of a job's keypoint records (S3 prefix or local folder) against COCO-format annotations.

Records are matched to images[].file_name by relative key, then by base name; annotated images without a
record count as images with no detection. Per-joint figures, over the ground-truth persons matched to a
detection at OKS >= 0.5: mean KS, the mean per-keypoint similarity exp(-d^2 / (2 * area * (2 * sigma)^2))
(1 = exact, COCO's per-keypoint sigma), and PCK, the share of labelled keypoints with KS >= 0.5.
Run the job at a low confidence threshold (conf=0.001) for a meaningful AP, as COCO's own evaluation does."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="COCO keypoint AP of a job's outputs against COCO annotations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("location", help="the job's output: s3://bucket/prefix/ or a local folder")
    parser.add_argument(
        "--annotations", type=Path, required=True, help="COCO person_keypoints JSON (images, annotations, categories)"
    )
    parser.add_argument(
        "--only-matched", action="store_true", help="score only the annotated images that have a record"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from batch.evaluation import EvaluationError, as_text, evaluate
    except ImportError as exc:  # pycocotools lives in the `eval` extra
        print(f"error: {exc}; install it with: pip install 'posebatch[eval]'", file=sys.stderr)
        return 2
    from botocore.exceptions import BotoCoreError, ClientError

    from batch.errors import PoseError
    from batch.report.sources import open_source

    try:
        result = evaluate(args.annotations, open_source(args.location), only_matched=args.only_matched)
    except (EvaluationError, PoseError, OSError, ClientError, BotoCoreError) as exc:
        print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), indent=2) if args.json else as_text(result))
    return 0
