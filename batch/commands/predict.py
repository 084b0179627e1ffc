"""Pose local image and video files or folders with the same engine the server uses (no server, no AWS),
writing the layout every flow writes, below --out:

  keypoints/<rel>.json   the result, or the image's error record
  annotated/<rel>        the annotated JPEG (annotated/<rel>.jpg when the input is not a JPEG)
  keypoints/<rel>.jsonl  a video's header line, then one line per posed frame with track ids (or its error record)
  annotated/<rel>        a video's annotated H.264 MP4 (annotated/<rel>.mp4 when it is not an .mp4)
  _REPORT.html           counts, plots, failures, thumbnails, videos (--no-report: not)

<rel> keeps each file's path below the folder given (or below the inputs' common folder), so a/x.jpg and
b/x.jpg never overwrite each other. Files in folders that are neither images nor videos get a "skipped" line.

  pose-batch predict photos/ --out poses/ --model yolo11n-pose.pt
  pose-batch predict clip.mp4 --out poses/ --fps 5 --tracker botsort"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch.commands.common import EXIT_FAILED, UserError
from batch.content_types import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, input_type_for, video_type_for

MAX_IN_FLIGHT = 8  # images read and decoded at once: memory stays bounded on any folder size
MAX_VIDEOS_IN_FLIGHT = 2  # each streams its frames through the same batcher; more only adds memory


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="pose local image files (no server, no AWS)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="image or video files, or folders")
    parser.add_argument("--out", type=Path, default=Path("pose-output"), help="output folder (default: pose-output)")
    parser.add_argument("--model", help="pose checkpoint or Ultralytics model name (instead of $POSE_MODEL)")
    parser.add_argument("--conf", type=float, help="confidence threshold (default: $POSE_CONF, 0.25)")
    parser.add_argument("--iou", type=float, help="NMS IoU threshold (default: $POSE_IOU, 0.7)")
    parser.add_argument("--imgsz", type=int, help="model input size, a multiple of 32 (default: $POSE_IMGSZ, 640)")
    video = parser.add_argument_group("videos")
    sampling = video.add_mutually_exclusive_group()
    sampling.add_argument("--frame-stride", type=int, metavar="N", help="pose every Nth frame (default: every frame)")
    sampling.add_argument("--fps", type=float, metavar="X", help="pose X frames per second of video, by timestamp")
    video.add_argument(
        "--track", action=argparse.BooleanOptionalAction, default=None, help="track persons across frames (default: on)"
    )
    video.add_argument("--tracker", choices=("bytetrack", "botsort"), help="Ultralytics' tracker to use")
    video.add_argument(
        "--gmc", action=argparse.BooleanOptionalAction, default=None, help="BoT-SORT's camera-motion compensation"
    )
    parser.add_argument("--no-report", dest="report", action="store_false", help="skip writing _REPORT.html")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Found:
    images: list[tuple[Path, str]]  # (file, its relative path in the output layout): images and videos
    skipped: list[Path]  # files in the folders given that are neither


def collect_images(inputs: list[Path]) -> Found:
    """Every image and video under the inputs with its relative path below their common folder; `UserError`
    for an input that does not exist."""
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    bases = [p.resolve() if p.is_dir() else p.resolve().parent for p in inputs]
    base = Path(os.path.commonpath(bases))
    images: list[tuple[Path, str]] = []
    skipped: list[Path] = []
    for item in inputs:
        files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for path in files:
            if item.is_dir() and not input_type_for(path.name):
                skipped.append(path)
            else:
                images.append((path, path.resolve().relative_to(base).as_posix()))
    return Found(images, skipped)


def run(args: argparse.Namespace) -> int:
    from batch.settings import Settings

    found = collect_images(args.inputs)
    for path in found.skipped:
        print(f"{path}: skipped (not an image or video file)")
    if not found.images:
        extensions = sorted({*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS})
        raise UserError(
            f"no images or videos found in {', '.join(map(str, args.inputs))} "
            f"(looked for {', '.join('.' + e for e in extensions)} files, in subfolders too)"
        )
    settings = _settings(args, Settings.from_env())
    outcomes = asyncio.run(_pose_all(settings, found.images, args.out))
    failed = len(outcomes) - sum(outcomes)
    print(
        f"{sum(outcomes)} posed, {failed} failed, {len(found.skipped)} skipped; outputs in {args.out.resolve()}"
        f" (keypoints/, annotated/)"
    )
    if args.report:
        _write_report(args.out, dict((rel, path) for path, rel in found.images))
    return EXIT_FAILED if failed else 0


def _settings(args: argparse.Namespace, settings: Any) -> Any:
    """The flags as settings (the defaults every file gets); a bad value is a user error."""
    from pydantic import ValidationError

    changes = {
        "pose_model": args.model,
        "conf": args.conf,
        "iou": args.iou,
        "imgsz": args.imgsz,
        "video_frame_stride": args.frame_stride,
        "video_fps": args.fps,
        "video_track": args.track,
        "video_tracker": args.tracker,
        "video_gmc": args.gmc,
    }
    given = {name: value for name, value in changes.items() if value is not None}
    if args.frame_stride is not None:
        given["video_fps"] = None  # a stride given replaces a rate from the environment
    try:
        return settings.updated(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"bad option: {problems}") from None


async def _pose_all(settings: Any, images: list[tuple[Path, str]], out: Path) -> list[bool]:
    from batch.errors import PoseError, error_record
    from batch.inference.engine import PoseEngine
    from batch.output_layout import annotated_key, keypoints_key
    from batch.video.flows import error_lines, pose_video_files

    engine = PoseEngine.load(settings)
    limit = asyncio.Semaphore(MAX_IN_FLIGHT)
    video_limit = asyncio.Semaphore(MAX_VIDEOS_IN_FLIGHT)

    def write(rel_key: str, data: bytes) -> None:
        target = out / rel_key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    async def pose_video(path: Path, rel: str) -> bool:
        async with video_limit:
            try:
                header = await pose_video_files(
                    engine,
                    path,
                    engine.default_options,
                    source=rel,
                    keypoints=out / keypoints_key(rel),
                    annotated=out / annotated_key(rel),
                )
            except (PoseError, OSError) as exc:
                error = exc if isinstance(exc, PoseError) else PoseError(f"cannot read the file: {exc}")
                code = error.code if isinstance(exc, PoseError) else "unreadable_file"
                write(keypoints_key(rel), error_lines(code, error.message))
                print(f"{path}: ERROR {code}: {error.message}")
                return False
            ended = f"; {header.error.code}: {header.error.message}" if header.error else ""
            print(
                f"{path}: {header.frames_posed} of {header.frames_decoded} frames posed, "
                f"{header.tracking.tracks} track(s){ended}"
            )
            return True

    async def pose_one(path: Path, rel: str) -> bool:
        if video_type_for(path.name):
            return await pose_video(path, rel)
        async with limit:
            try:
                prediction = await engine.predict(path.read_bytes(), annotate=True)
            except (PoseError, OSError) as exc:
                message = exc.message if isinstance(exc, PoseError) else f"cannot read the file: {exc}"
                code = exc.code if isinstance(exc, PoseError) else "unreadable_file"
                write(keypoints_key(rel), json.dumps(error_record(code, message), indent=2).encode())
                print(f"{path}: ERROR {code}: {message}")
                return False
            result = prediction.result.model_copy(update={"source": rel})
            write(keypoints_key(rel), result.model_dump_json(indent=2, exclude_none=True).encode())
            if prediction.annotated is not None:
                write(annotated_key(rel), prediction.annotated)
            print(f"{path}: {len(result.persons)} person(s)")
            return True

    try:
        return list(await asyncio.gather(*(pose_one(path, rel) for path, rel in images)))
    finally:
        await engine.close()


def _write_report(out: Path, by_rel: dict[str, Path]) -> None:
    from batch.report import build_report

    try:  # failure thumbnails come from the inputs
        print(f"report: {build_report(str(out), inputs=lambda rel: by_rel[rel].read_bytes()).location}")
    except Exception as exc:  # the results are written; a report that fails must not hide them
        print(f"report not written: {type(exc).__name__}: {exc}", file=sys.stderr)
