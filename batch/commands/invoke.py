"""`pose-batch invoke ENDPOINT FILE...`: pose local images on a real-time (or serverless) endpoint, on AWS or
(--local) on the running `pose-batch local up` stack, through SageMaker's InvokeEndpoint.

One JSON line per file on stdout, in the order given: its `PoseResult` (with `source`, the file as given),
or the container's error record (`{"error": {"code", "message"}}`, also said on stderr). Folders are
searched for images. --annotated DIR also writes each annotated JPEG there (`DIR/<rel>`, `<rel>.jpg` for
other formats), from the same request. Exit 1 if any file failed.

  pose-batch invoke posebatch-realtime photo.jpg --local --annotated annotated/"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch.commands.common import EXIT_FAILED, UserError, add_local_arguments, local_home

if TYPE_CHECKING:
    from batch.aws import Clients

# SageMaker's InvokeEndpoint takes at most 6 MB (serverless: 4 MB); bigger files are refused with 413.
MAX_REQUEST_BYTES = 6 * 1024 * 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="pose local images on a real-time endpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("endpoint", help="the endpoint's name (`pose-batch deploy --realtime` prints it)")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="images (or folders of images)")
    parser.add_argument("--annotated", type=Path, metavar="DIR", help="also write the annotated JPEGs here")
    parser.add_argument(
        "--attributes",
        metavar="K=V;...",
        help="per-request options as custom attributes, e.g. 'conf=0.4;imgsz=640'",
    )
    add_local_arguments(parser, what="invoke on")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batch import aws
    from batch.commands.predict import collect_images

    clients: Clients = aws.client
    if args.local:
        from batch.local.state import stack_clients

        clients = stack_clients(local_home(args))
    found = collect_images(args.files)
    for skipped, why in found.skipped:
        print(f"{skipped}: skipped ({why})", file=sys.stderr)
    if not found.images:
        raise UserError(f"no images in {', '.join(str(f) for f in args.files)}")
    runtime = clients("sagemaker-runtime")
    failed = 0
    for path, rel in found.images:
        ok = _invoke_one(runtime, args, path, rel)
        failed += not ok
    return EXIT_FAILED if failed else 0


def _invoke_one(runtime: Any, args: argparse.Namespace, path: Path, rel: str) -> bool:
    from botocore.exceptions import ClientError

    from batch import content_types, transport_envelope
    from batch.output_layout import ANNOTATED_FOLDER, annotated_key
    from batch.regular_file import FileTooLarge, read_regular_file

    try:
        # A FIFO or a link to a device would block or never end; a file over the limit is refused here
        # rather than read whole into memory and refused by SageMaker.
        body = read_regular_file(path, MAX_REQUEST_BYTES)
    except OSError as exc:
        return _unsent(path, "payload_too_large" if isinstance(exc, FileTooLarge) else "unreadable_file", str(exc))
    request: dict[str, Any] = {
        "EndpointName": args.endpoint,
        "Body": body,
        "ContentType": content_types.image_type_for(path.name) or "application/x-image",
        "Accept": content_types.ENVELOPE if args.annotated else content_types.JSON,
    }
    if args.attributes:
        request["CustomAttributes"] = args.attributes
    try:
        answer = runtime.invoke_endpoint(**request)
    except ClientError as exc:
        return _failed(args, path, exc)
    opened = transport_envelope.open_body(iter([answer["Body"].read()]))
    record = opened.record
    if "error" in record:  # an error record in a 200 (a Batch Transform container), said like any other
        print(json.dumps(record), flush=True)
        print(f"{path}: {record['error'].get('code')}: {record['error'].get('message')}", file=sys.stderr)
        return False
    record = {"schema_version": record.get("schema_version"), "source": str(path), **record}
    print(json.dumps(record, ensure_ascii=False), flush=True)
    if args.annotated and opened.jpeg is not None:
        target = args.annotated / Path(annotated_key(rel)).relative_to(ANNOTATED_FOLDER)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(opened.jpeg.read())
    return True


def _unsent(path: Path, code: str, message: str) -> bool:
    """The error line of a file that was never sent."""
    print(json.dumps({"error": {"code": code, "message": f"cannot send the file: {message}"}}), flush=True)
    print(f"{path}: {code}: {message}", file=sys.stderr)
    return False


def _failed(args: argparse.Namespace, path: Path, exc: Any) -> bool:
    """One error line for the file, and the reason on stderr; a missing endpoint is the user's mistake."""
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code == "ValidationError" and "not found" in message:
        raise UserError(f"no endpoint {args.endpoint} here: {message}") from None
    original = exc.response.get("OriginalMessage")
    record: dict[str, Any] = {"error": {"code": _error_code(code), "message": message}}
    if original:  # the container's own error record, passed on by SageMaker's ModelError
        with contextlib.suppress(ValueError):
            record = json.loads(original)
    print(json.dumps(record), flush=True)
    print(f"{path}: {code}: {message}", file=sys.stderr)
    return False


def _error_code(aws_code: str) -> str:
    return {"413": "payload_too_large", "ModelError": "model_error", "ThrottlingException": "throttled"}.get(
        aws_code, "invocation_failed"
    )
