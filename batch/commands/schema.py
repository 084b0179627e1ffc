"""`pose-batch schema [--write]`: print (or write to schemas/) the JSON Schema of the records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def schemas() -> dict[str, dict[str, Any]]:
    from batch.schema import ErrorRecord, ManifestLineResult, PoseResult

    return {
        "pose_result.schema.json": PoseResult.model_json_schema(),
        "error_record.schema.json": ErrorRecord.model_json_schema(),
        "manifest_line_result.schema.json": ManifestLineResult.model_json_schema(),
    }


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("schema", help="print or write the JSON Schemas of the result records")
    parser.add_argument("--write", action="store_true", help=f"write them to {SCHEMA_DIR}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name, schema in schemas().items():
        text = json.dumps(schema, indent=2) + "\n"
        if args.write:
            SCHEMA_DIR.mkdir(exist_ok=True)
            (SCHEMA_DIR / name).write_text(text)
            print(f"wrote {SCHEMA_DIR / name}")
        else:
            print(f"# {name}\n{text}")
    return 0
