"""Print the JSON Schemas of the records PoseBatch writes (the keypoint result, the error record, the
manifest response line, and a video's JSON Lines: its header line and its frame lines) as one JSON object
keyed by schema file name, or write them to schemas/ (--write).

  pose-batch schema | jq '."pose_result.schema.json"'"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def schemas() -> dict[str, dict[str, Any]]:
    from batch.schema import ErrorRecord, ManifestLineResult, PoseResult
    from batch.video.records import FrameRecord, VideoHeader

    return {
        "pose_result.schema.json": PoseResult.model_json_schema(),
        "error_record.schema.json": ErrorRecord.model_json_schema(),
        "manifest_line_result.schema.json": ManifestLineResult.model_json_schema(),
        "video_header.schema.json": VideoHeader.model_json_schema(),
        "video_frame.schema.json": FrameRecord.model_json_schema(),
    }


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print or write the JSON Schemas of the result records",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--write", action="store_true", help=f"write them to {SCHEMA_DIR}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.write:
        print(json.dumps(schemas(), indent=2))
        return 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, schema in schemas().items():
        (SCHEMA_DIR / name).write_text(json.dumps(schema, indent=2) + "\n")
        print(f"wrote {SCHEMA_DIR / name}")
    return 0
