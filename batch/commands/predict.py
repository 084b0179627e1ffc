"""Pose local image and video files or folders with the same engine the server uses (no server, no AWS),
writing the layout every flow writes, below --out:

  keypoints/<rel>.json   the result, or the image's error record
  annotated/<rel>        the annotated JPEG (annotated/<rel>.jpg when the input is not a JPEG)
  keypoints/<rel>.jsonl  a video's header line, then one line per posed frame with track ids (or its error record)
  annotated/<rel>        a video's annotated H.264 MP4 (annotated/<rel>.mp4 when it is not an .mp4)
  _REPORT.html           counts, plots, failures, thumbnails, videos (--no-report: not)

<rel> keeps each file's path below the folder given (or below the inputs' common folder), so a/x.jpg and
b/x.jpg never overwrite each other. Files in folders that are neither images nor videos get a "skipped" line.
A link is posed under its own name (what it points to, wherever that is); links to folders are not followed;
a FIFO or device named like an image gets an error record. An input whose annotated name is another input's
own (x.png beside x.png.jpg) gets an error record instead of overwriting it. --out must not overlap an
input (exit 2).

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
from batch.commands.request_options import add_request_options, settings_changes
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
    add_request_options(parser)
    parser.add_argument("--no-report", dest="report", action="store_false", help="skip writing _REPORT.html")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Found:
    images: list[tuple[Path, str]]  # (file, its relative path in the output layout): images and videos
    skipped: list[tuple[Path, str]]  # (file in a folder given, why it is not posed)


def collect_images(inputs: list[Path]) -> Found:
    """Every image and video under the inputs with its relative path below their common folder; `UserError`
    for an input that does not exist.

    Paths are made absolute without resolving links: a link is posed (what it points to, wherever that is)
    under its own name, so a link to another image of the folder gets outputs of its own and a link out
    of the folder is no error. Links to folders are not followed (no loops): they are reported skipped."""
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    absolute = [Path(os.path.abspath(p)) for p in inputs]
    bases = [p if p.is_dir() else p.parent for p in absolute]
    base = Path(os.path.commonpath(bases))
    images: list[tuple[Path, str]] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for item in absolute:
        for path in _files(item, skipped) if item.is_dir() else [item]:
            if item.is_dir() and not input_type_for(path.name):
                skipped.append((path, "not an image or video file"))
                continue
            rel = path.relative_to(base).as_posix()
            if rel not in seen:  # an input inside another input folder is posed once
                seen.add(rel)
                images.append((path, rel))
    return Found(images, skipped)


def _files(folder: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    """The files below `folder` in a stable order; links to files count as files (a broken link too: its
    error record says why), links to folders are reported in `skipped`."""
    found: list[Path] = []
    for directory, folders, files in os.walk(folder):  # never follows links to folders
        folders.sort()
        for name in folders:
            if os.path.islink(os.path.join(directory, name)):
                skipped.append((Path(directory, name), "a link to a folder (not followed)"))
        found += [Path(directory, name) for name in sorted(files)]
    return found


def check_output_folder(out: Path, inputs: list[Path]) -> None:
    """`UserError` when --out and an input overlap: writing the outputs would overwrite inputs (and pose
    them again on the next run). Real paths here, links resolved: what matters is where bytes land."""
    target = Path(os.path.realpath(out))
    for given in inputs:
        real = Path(os.path.realpath(given))
        if real.is_dir() and (target == real or real in target.parents):
            raise UserError(
                f"--out {out} is inside the input folder {given}: the outputs would overwrite or join its "
                "files; choose an --out outside the inputs"
            )
        if target in real.parents:
            raise UserError(
                f"the input {given} is inside --out {out}: the outputs could overwrite it; "
                "choose an --out outside the inputs"
            )


def run(args: argparse.Namespace) -> int:
    from batch.settings import Settings

    found = collect_images(args.inputs)
    check_output_folder(args.out, args.inputs)
    for path, why in found.skipped:
        print(f"{path}: skipped ({why})")
    if not found.images:
        extensions = sorted({*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS})
        raise UserError(
            f"no images or videos found in {', '.join(map(str, args.inputs))} "
            f"(looked for {', '.join('.' + e for e in extensions)} files, in subfolders too)"
        )
    settings = _settings(args, Settings.from_env())
    outcomes = asyncio.run(_pose_all(settings, found.images, args.out, _annotated_names_taken(found.images)))
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

    given = settings_changes(args)
    if args.model is not None:
        given["pose_model"] = args.model
    if args.imgsz is not None:  # the serving cap (POSE_MAX_IMGSZ) guards a shared server, not a local run
        given["max_imgsz"] = max(settings.max_imgsz, args.imgsz)
    if args.frame_stride is not None:
        given["video_fps"] = None  # a stride given replaces a rate from the environment
    try:
        return settings.updated(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"bad option: {problems}") from None


def _annotated_names_taken(images: list[tuple[Path, str]]) -> dict[str, str]:
    """rel -> the input that keeps its annotated name (`a.png` beside `a.png.jpg`; `batch.output_layout`)."""
    from batch.output_layout import annotated_name_owners

    return annotated_name_owners({rel for _, rel in images})


async def _pose_all(
    settings: Any, images: list[tuple[Path, str]], out: Path, taken: dict[str, str] | None = None
) -> list[bool]:
    from batch.errors import AnnotatedNameTaken, PoseError, error_record
    from batch.inference.engine import PoseEngine
    from batch.output_layout import annotated_key, annotated_name_taken_message, keypoints_key
    from batch.regular_file import open_regular_file, read_regular_file
    from batch.video.flows import error_lines, pose_video_files

    engine = PoseEngine.load(settings)
    limit = asyncio.Semaphore(MAX_IN_FLIGHT)
    video_limit = asyncio.Semaphore(MAX_VIDEOS_IN_FLIGHT)
    taken_names = taken or {}

    def check_name(rel: str) -> None:
        if rel in taken_names:
            raise AnnotatedNameTaken(annotated_name_taken_message(rel, taken_names[rel]))

    def write(rel_key: str, data: bytes) -> None:
        target = out / rel_key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    async def pose_video(path: Path, rel: str) -> bool:
        async with video_limit:
            try:
                check_name(rel)
                open_regular_file(path).close()  # a FIFO or a device named like a video: its record, no hang
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
                check_name(rel)
                # A FIFO or a link to a device named like an image gets an error record, never a hang.
                data = read_regular_file(path, settings.max_s3_object_bytes)
                prediction = await engine.predict(data, annotate=True)
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
    from batch.report.sources import read_local_file

    try:  # failure thumbnails come from the inputs
        print(f"report: {build_report(str(out), inputs=lambda rel: read_local_file(by_rel[rel])).location}")
    except Exception as exc:  # the results are written; a report that fails must not hide them
        print(f"report not written: {type(exc).__name__}: {exc}", file=sys.stderr)
