"""`pose-batch predict IMAGE_OR_DIR ... --out DIR`: pose local files through the same engine the server
uses, writing `<name>.json` and the annotated `<name>` JPEG for each. Bad files get `<name>.error.json`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from batch.content_types import image_type_for


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("predict", help="pose local image files (no server, no AWS)")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--out", type=Path, default=Path("pose-output"), help="output folder")
    parser.add_argument("--model", help="pose checkpoint or Ultralytics model name (instead of $POSE_MODEL)")
    parser.add_argument("--no-report", dest="report", action="store_false", help="skip writing _REPORT.html")
    parser.set_defaults(func=run)


def collect_images(inputs: list[Path]) -> list[Path]:
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if image_type_for(p.name)))
        else:
            found.append(item)
    return found


def run(args: argparse.Namespace) -> int:
    from batch.errors import PoseError, error_record
    from batch.inference.engine import PoseEngine
    from batch.settings import Settings

    settings = Settings.from_env()
    if args.model:
        settings = settings.updated(pose_model=args.model)
    engine = PoseEngine.load(settings)
    images = collect_images(args.inputs)
    args.out.mkdir(parents=True, exist_ok=True)

    async def pose_one(path: Path) -> bool:
        try:
            prediction = await engine.predict(path.read_bytes(), annotate=True)
        except (PoseError, OSError) as exc:
            message = exc.message if isinstance(exc, PoseError) else str(exc)
            code = exc.code if isinstance(exc, PoseError) else "unreadable_file"
            error = error_record(code, message)
            (args.out / f"{path.name}.error.json").write_text(json.dumps(error, indent=2))
            print(f"{path}: ERROR {message}")
            return False
        (args.out / f"{path.name}.json").write_text(prediction.result.model_dump_json(indent=2, exclude_none=True))
        if prediction.annotated is not None:
            (args.out / path.name).with_suffix(".jpg").write_bytes(prediction.annotated)
        print(f"{path}: {len(prediction.result.persons)} person(s)")
        return True

    async def pose_all() -> list[bool]:
        try:
            return await asyncio.gather(*(pose_one(p) for p in images))
        finally:
            await engine.close()

    outcomes = asyncio.run(pose_all())
    print(f"{sum(outcomes)} posed, {len(outcomes) - sum(outcomes)} failed; outputs in {args.out.resolve()}")
    if args.report:
        from batch.report import build_report

        by_name = {p.name: p for p in images}  # failure thumbnails come from the inputs
        try:
            print(f"report: {build_report(str(args.out), inputs=lambda rel: by_name[rel].read_bytes()).location}")
        except (OSError, ValueError) as exc:  # the results are written; a report that fails must not hide them
            print(f"report not written: {exc}")
    return 0 if all(outcomes) else 1
