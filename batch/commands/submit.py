"""`pose-batch submit s3://bucket/input/[key] [--wait]`: asynchronous inference of one image or every
image under a prefix, on AWS or (`--local`) on the running `pose-batch local up` stack. With `--wait`,
one JSON line per image (result location or error) on stdout; exit 1 if any image failed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batch.aws import Clients

DEFAULT_ENDPOINT = "posebatch-async"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("submit", help="asynchronous inference of S3 images", description=__doc__)
    parser.add_argument("uri", help="s3://bucket/key of an image, or s3://bucket/prefix/ for all images under it")
    parser.add_argument("--endpoint", help=f"async endpoint name (default: the local one, or {DEFAULT_ENDPOINT})")
    parser.add_argument("--output", help="output root s3://bucket/prefix/ (default: from the endpoint's S3OutputPath)")
    parser.add_argument(
        "--input-root", help="the prefix whose layout outputs mirror (default: the submitted prefix or folder)"
    )
    parser.add_argument("--wait", action="store_true", help="wait for every outcome and print them")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait with --wait")
    parser.add_argument("--concurrency", type=int, default=16, help="AWS calls in flight at once")
    parser.add_argument("--local", action="store_true", help="use the running `pose-batch local up` stack")
    parser.add_argument("--home", default=".posebatch", help="the local stack's state folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch import aws
    from batch.async_client import AsyncPoseClient, run_sync
    from batch.errors import error_record

    endpoint, input_root = args.endpoint, args.input_root
    clients: Clients = aws.client
    if args.local:
        from batch.local.state import read_section, stack_clients

        clients = stack_clients(Path(args.home))
        state = read_section(Path(args.home), "async")
        endpoint = endpoint or state.get("endpoint_name")
        if input_root is None and args.uri.startswith(state.get("input_uri", "\0")):
            input_root = state["input_uri"]  # mirror outputs exactly as the S3 trigger does
    client = AsyncPoseClient(
        endpoint or DEFAULT_ENDPOINT, output_uri=args.output, concurrency=args.concurrency, clients=clients
    )
    outcomes = run_sync(client.run(args.uri, wait=args.wait, timeout_s=args.timeout, input_root=input_root))
    for outcome in outcomes:
        print(json.dumps(outcome.as_dict(), ensure_ascii=False))
    failed = [o for o in outcomes if o.error is not None]
    if not outcomes:
        print(json.dumps(error_record("no_images", f"no images at {args.uri}")))
        return 1
    return 1 if failed else 0
