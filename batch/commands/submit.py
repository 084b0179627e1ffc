"""Asynchronous inference of one S3 image or every image under a prefix, on AWS or (--local) on the running
`pose-batch local up` stack. One JSON line per file on stdout: "queued" (without --wait), then "ok" or
"error" with --wait; non-image files get a "skipped" line. With --wait progress shows on stderr (a bar on a
terminal, else a line every 30 s) and Ctrl-C keeps the lines already printed: the endpoint goes on with the
rest, writing to the same outputs.

Outputs mirror the input key below the trigger's input prefix (`input/site-a/x.jpg` ->
`keypoints/site-a/x.jpg.json`), as an S3 upload would; elsewhere the whole key is kept (--input-root
changes this). --conf, --iou, --imgsz and the video flags go with every request as custom attributes (a retry
after a container failure sends them again); left out, the endpoint's defaults apply. With --model-package
ARN|latest-approved the endpoint must serve that package now (its results then name the package's model);
otherwise exit 2, naming what it serves. Exit 1 if any image failed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from batch.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    UserError,
    add_local_arguments,
    local_home,
    write_report,
)
from batch.commands.model_choice import add_model_package_arguments, group_of
from batch.commands.request_options import add_request_options, as_custom_attributes

if TYPE_CHECKING:
    from batch.async_client import Outcome, Submission
    from batch.aws import Clients

DEFAULT_ENDPOINT = "posebatch-async"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="asynchronous inference of S3 images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uri", help="s3://bucket/key of an image, or s3://bucket/prefix/ for all images under it")
    parser.add_argument("--endpoint", help=f"async endpoint name (default: the local one, or {DEFAULT_ENDPOINT})")
    parser.add_argument("--output", help="output root s3://bucket/prefix/ (default: from the endpoint's S3OutputPath)")
    parser.add_argument("--input-root", help="the prefix whose layout outputs mirror (default: see above)")
    parser.add_argument("--wait", action="store_true", help="wait for every outcome, showing progress")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait with --wait")
    parser.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --wait: write _REPORT.html at the output root, over every result there (default: on)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="AWS calls in flight at once")
    add_model_package_arguments(parser)
    add_local_arguments(parser, what="submit to")
    add_request_options(parser)
    parser.set_defaults(func=run)


class _Printer:
    """Prints each outcome the moment it is known (so Ctrl-C loses nothing finished) and shows progress
    (a bar on a terminal, else a plain line every 30 s and at the end)."""

    def __init__(self, wait: bool) -> None:
        self.wait = wait
        self.outcomes: list[Outcome] = []
        self.accepted = 0
        self.bar: Any = None

    def submitted(self, submitted: list[Submission | Outcome]) -> None:
        from batch.async_client import Submission

        self.accepted = sum(isinstance(s, Submission) for s in submitted)
        if self.wait and self.accepted:
            from batch.progress_display import ProgressDisplay

            self.bar = ProgressDisplay(total=self.accepted, desc="waiting")

    def outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        line = json.dumps(outcome.as_dict(), ensure_ascii=False)
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
            if outcome.inference_id is not None and outcome.status != "queued":
                self.bar.advance(1)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from batch import aws
    from batch.async_client import AsyncPoseClient, run_sync

    endpoint, input_root = args.endpoint, args.input_root
    options = as_custom_attributes(args)  # checked before anything is sent
    clients: Clients = aws.client
    if args.local:
        from batch.local.state import read_section, stack_clients

        clients = stack_clients(local_home(args))
        state = read_section(local_home(args), "async")
        if not state:
            raise UserError("the local stack runs without an async endpoint: restart it without --no-async")
        endpoint = endpoint or state.get("endpoint_name")
        if input_root is None and args.uri.startswith(state.get("input_uri", "\0")):
            input_root = state["input_uri"]  # mirror outputs exactly as the S3 trigger does
    endpoint = endpoint or DEFAULT_ENDPOINT
    if args.model_package:
        from batch.registry.packages import RegistryError
        from batch.registry.selection import require_serving

        try:
            require_serving(clients("sagemaker"), endpoint, args.model_package, group_of(args))
        except RegistryError as exc:
            raise UserError(str(exc)) from None
    client = AsyncPoseClient(
        endpoint, output_uri=args.output, concurrency=args.concurrency, clients=clients, options=options
    )
    printer = _Printer(args.wait)
    try:
        run_sync(
            client.run(
                args.uri,
                wait=args.wait,
                timeout_s=args.timeout,
                input_root=input_root,
                on_submitted=printer.submitted,
                on_outcome=printer.outcome,
            )
        )
    except KeyboardInterrupt:
        printer.close()
        finished = sum(o.inference_id is not None for o in printer.outcomes)
        left = max(printer.accepted - finished, 0)
        print(
            f"\nstopped waiting: {finished} outcome(s) printed above; {left} image(s) are still being processed "
            f"by endpoint {client.endpoint_name}: their results will appear under "
            f"{client.output_root or 'its output root'}keypoints/",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    printer.close()
    outcomes = printer.outcomes
    if not outcomes:
        raise UserError(f"no files at {args.uri}: check the bucket and prefix (a prefix ends with '/')")
    if not any(o.status != "skipped" for o in outcomes):
        print(f"pose-batch submit: no images at {args.uri} (only other files, listed above)", file=sys.stderr)
        return EXIT_FAILED
    if args.wait and args.report and client.output_root:
        write_report(client.output_root, clients("s3"), to_stderr=True)
    return EXIT_FAILED if any(o.status == "error" for o in outcomes) else 0
