"""`pose-batch report s3://BUCKET/output/prefix/ | ./folder`: build `_REPORT.html` beside the job's
records (one streaming pass; thumbnails only for the first N results and the failures shown)."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

from batch.report import DEFAULT_MAX_FAILURES, DEFAULT_THUMBNAILS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="build _REPORT.html from a job's outputs (S3 prefix or local folder)",
        description=__doc__,
    )
    parser.add_argument("location", help="the job's output: s3://bucket/prefix/ or a local folder")
    parser.add_argument(
        "--input",
        help="where the input images live (folder or s3:// prefix), for failure thumbnails; "
        "default: the input named in _SUMMARY.json",
    )
    parser.add_argument(
        "--thumbnails", type=int, default=DEFAULT_THUMBNAILS, help="annotated thumbnails of the first N results"
    )
    parser.add_argument(
        "--max-failures",
        type=int,
        default=DEFAULT_MAX_FAILURES,
        help="failures listed with a thumbnail; the rest are counted ('and K more')",
    )
    parser.add_argument("--workers", type=int, default=32, help="S3 reads in flight (one GET per record)")
    parser.add_argument("--open", action="store_true", help="open the report in a web browser")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from batch.errors import PoseError
    from batch.report import build_report

    if args.thumbnails < 0 or args.max_failures < 0 or args.workers < 1:
        print("error: --thumbnails and --max-failures must be >= 0, --workers >= 1", file=sys.stderr)
        return 2
    try:
        outcome = build_report(
            args.location,
            inputs=args.input,
            sample_size=args.thumbnails,
            max_failures=args.max_failures,
            workers=args.workers,
        )
    except (PoseError, OSError, ClientError, BotoCoreError) as exc:
        print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 2
    stats, videos = outcome.stats, outcome.videos
    if stats.images == 0 and videos.videos == 0:
        print(f"warning: no keypoint records found under {args.location}", file=sys.stderr)
    with_videos = f", {videos.videos:,} videos ({videos.failed:,} failed)" if videos.videos else ""
    counts = f"{stats.images:,} records ({stats.ok:,} posed, {stats.failed:,} failed){with_videos}"
    print(f"{counts} in {outcome.seconds:.1f} s")
    print(f"report: {outcome.location}")
    if args.open:
        _open(outcome.location)
    return 0


def _open(location: str) -> None:
    if location.startswith("s3://"):
        print("--open: the report is in S3; download it (aws s3 cp) to view it", file=sys.stderr)
    elif not webbrowser.open(Path(location).as_uri()):
        print("--open: no web browser found here", file=sys.stderr)
