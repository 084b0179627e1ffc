#!/usr/bin/env python3
"""Video benchmark: one 720p clip posed two ways in the same run, each in a fresh process (its own peak RSS):

  naive    Ultralytics' own `YOLO(model).track(clip, stream=True)`: its default tracker (BoT-SORT with
           camera-motion compensation), no video written
  service  PoseBatch's video pipeline (batch/video) through the engine's batcher, as `predict` runs it:
           decode -> batches -> tracker -> JSON Lines, and the annotated H.264 MP4 written

and, for reference, the same frames through the images path (each a JPEG, posed and annotated as an image:
the workaround before videos were taken); then the trackers compared on the same detections: ByteTrack,
BoT-SORT with and without its camera-motion compensation (GMC): milliseconds per frame (the tracker alone,
replaying the service's detections) and, against the clip's known boxes, identity switches and persons
left untracked.

The clip is made at run time (never committed; cached in the ignored `.posebatch/bench-video/`): a COCO-val-mini
photo of a crowd, upscaled, filmed by a panning camera (a crop window moving over it), with a person cut
from another photo walking across; H.264 at crf 23, 30 fps. Its ground truth is the COCO boxes moved with
the camera, and the walker's box.

Usage: .venv/bin/python benchmarks/video.py --model ../shared/models/yolo11n-pose.pt --frames 1000 [--json out.json]
(`benchmarks/throughput.py --video-frames N` runs it as its video row.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

COCO = REPO_ROOT.parent / "shared" / "data" / "coco-val-mini"
CACHE = REPO_ROOT / ".posebatch" / "bench-video"
CROWD = "000000217285.jpg"  # 13 annotated persons
WALKER = ("000000406129.jpg", (164, 154, 199, 438))
WIDTH, HEIGHT, FPS = 1280, 720, 30
SCALE = 2.4  # the crowd photo upscaled, so the 1280x720 window can pan over it
PAN_X, PAN_Y, PAN_PERIOD_S = 110, 60, 6.0
TRACKERS = (("bytetrack", False), ("botsort", True), ("botsort", False))
MIN_BOX_HEIGHT = 60  # ground-truth persons smaller than this (pixels) are not scored


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: int
    truth: list[list[tuple[float, float, float, float]]]  # per frame, per person (fixed order): the box


def _crowd_boxes() -> list[tuple[float, float, float, float]]:
    data = json.loads((COCO / "person_keypoints.json").read_text())
    image_id = next(i["id"] for i in data["images"] if i["file_name"] == CROWD)
    boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == image_id and not a.get("iscrowd")]
    return [(x, y, x + w, y + h) for x, y, w, h in boxes]


def make_clip(frames: int, cache: Path = CACHE) -> Clip:
    """The panning-camera clip and its ground truth (made once per frame count)."""
    import av
    import cv2
    from PIL import Image

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"crowd-pan-{WIDTH}x{HEIGHT}-{FPS}fps-{frames}.mp4"
    with Image.open(COCO / "images" / CROWD) as photo:
        crowd = np.asarray(photo.convert("RGB"))
    big = cv2.resize(crowd, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
    name, (wx, wy, ww, wh) = WALKER
    with Image.open(COCO / "images" / name) as photo:
        walker_photo = np.asarray(photo.convert("RGB"))
    walker = walker_photo[wy - 20 : wy + wh + 20, wx - 20 : wx + ww + 20]
    walker = cv2.resize(walker, (round(walker.shape[1] * 420 / walker.shape[0]), 420), interpolation=cv2.INTER_AREA)
    crowd_boxes = [(x1 * SCALE, y1 * SCALE, x2 * SCALE, y2 * SCALE) for x1, y1, x2, y2 in _crowd_boxes()]
    centre_x, centre_y = (big.shape[1] - WIDTH) // 2, (big.shape[0] - HEIGHT) // 2
    truth = []
    writing = not path.is_file()
    output = av.open(str(path), mode="w") if writing else None
    stream: Any = None
    if output is not None:
        stream = output.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    for index in range(frames):
        t = index / FPS
        ox = round(centre_x + PAN_X * math.sin(2 * math.pi * t / PAN_PERIOD_S))
        oy = round(centre_y + PAN_Y * math.sin(4 * math.pi * t / PAN_PERIOD_S))
        walker_x = round(40 + (WIDTH - walker.shape[1] - 80) * ((t / 20.0) % 1.0))  # crosses every 20 s
        walker_y = HEIGHT - walker.shape[0] - 10
        boxes = [(x1 - ox, y1 - oy, x2 - ox, y2 - oy) for x1, y1, x2, y2 in crowd_boxes]
        boxes.append(
            (walker_x + 20.0, walker_y + 20.0, walker_x + walker.shape[1] - 20.0, walker_y + walker.shape[0] - 20.0)
        )
        truth.append(boxes)
        if output is not None:
            frame = np.ascontiguousarray(big[oy : oy + HEIGHT, ox : ox + WIDTH])
            frame[walker_y : walker_y + walker.shape[0], walker_x : walker_x + walker.shape[1]] = walker
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            for packet in stream.encode(video_frame):
                output.mux(packet)
    if output is not None:
        for packet in stream.encode():
            output.mux(packet)
        output.close()
    return Clip(path, frames, truth)


# --- the two ways, each run in a fresh process ---------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def naive_track(model: str, clip: str, frames: int) -> dict[str, Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    yolo = YOLO(model)
    yolo.predict(np.zeros((HEIGHT, WIDTH, 3), np.uint8), verbose=False)  # warm-up, as every mode gets one
    started = time.perf_counter()
    seen = sum(1 for _ in yolo.track(clip, stream=True, verbose=False))
    seconds = time.perf_counter() - started
    return {"frames": seen, "seconds": round(seconds, 2), "frames_per_second": round(seen / seconds, 2),
            "peak_rss_mb": round(_peak_rss_mb(), 1), "tracker": "botsort (Ultralytics' default, GMC on)"}  # fmt: skip


def service(model: str, clip: str, environment: dict[str, str], keep: str | None = None) -> dict[str, Any]:
    import asyncio
    import tempfile

    from batch.inference.engine import PoseEngine
    from batch.settings import Settings
    from batch.video.flows import pose_video_files

    engine = PoseEngine.load(Settings.from_env({**os.environ, "POSE_MODEL": model, **environment}))
    before_batches, before_frames = engine.batch_stats.batches, engine.batch_stats.images  # the warm-up's
    loaded_rss = _rss_mb()  # the model loaded and warmed up: what the video adds is measured from here

    samples: list[float] = []  # RSS every 0.2 s while the video runs: flat memory shows as no growth

    def sample(stop: threading.Event) -> None:
        while not stop.wait(0.2):
            samples.append(_rss_mb())

    async def run(out: Path) -> tuple[Any, float]:
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(stop,), daemon=True)
        sampler.start()
        started = time.perf_counter()
        header = await pose_video_files(
            engine, Path(clip), engine.default_options, source=Path(clip).name,
            keypoints=Path(keep or out / "clip.jsonl"), annotated=out / "clip.mp4",
        )  # fmt: skip
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        await engine.close()
        return header, seconds

    with tempfile.TemporaryDirectory() as out:
        header, seconds = asyncio.run(run(Path(out)))
        mp4_mb = (Path(out) / "clip.mp4").stat().st_size / 2**20
    stats = engine.batch_stats
    batches = stats.batches - before_batches
    return {
        "frames": header.frames_posed,
        "seconds": round(seconds, 2),
        "frames_per_second": round(header.frames_posed / seconds, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_video_mb": round(loaded_rss, 1),
        # after the first tenth of the video (kernels for its shapes compiled, queues full) and at the end
        "rss_after_first_tenth_mb": round(samples[len(samples) // 10], 1) if samples else None,
        "rss_at_end_mb": round(samples[-1], 1) if samples else None,
        "mean_batch": round((stats.images - before_frames) / batches, 2) if batches else 0.0,
        "backend": f"{engine.backend.name} {engine.backend.precision}",
        "tracker": _tracker_label(header.tracking.tracker, header.tracking.gmc),
        "annotated_mp4_mb": round(mp4_mb, 2),
    }  # fmt: skip


def images_path(model: str, clip: str, frames: int) -> dict[str, Any]:
    """The same frames through the images path (what extracting frames as JPEGs gave before): each frame a
    JPEG (quality 95, encoded before timing), posed with its annotated JPEG, as many at once as predict does."""
    import asyncio

    import av
    import cv2

    from batch.inference.engine import PoseEngine
    from batch.settings import Settings

    engine = PoseEngine.load(Settings.from_env({**os.environ, "POSE_MODEL": model}))
    jpegs = []
    with av.open(clip) as container:
        for frame in container.decode(video=0):
            jpegs.append(
                cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            )
            if len(jpegs) == frames:
                break

    async def run() -> float:
        limit = asyncio.Semaphore(2 * engine.max_batch_size)

        async def one(data: bytes) -> None:
            async with limit:
                await engine.predict(data, annotate=True)

        started = time.perf_counter()
        await asyncio.gather(*(one(j) for j in jpegs))
        seconds = time.perf_counter() - started
        await engine.close()
        return seconds

    seconds = asyncio.run(run())
    return {"frames": len(jpegs), "seconds": round(seconds, 2), "frames_per_second": round(len(jpegs) / seconds, 2)}


def _tracker_label(name: str | None, gmc: bool | None) -> str:
    return f"{name}" + ("" if gmc is None else (" +gmc" if gmc else " no gmc"))


def _in_fresh_process(function: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# --- trackers ------------------------------------------------------------------------------------
def compare_trackers(clip: Clip, detections: Path) -> dict[str, Any]:
    """Each tracker over the same detections (the service's JSON Lines, tracking off): its own time per
    frame (decoding excluded) and its identities against the clip's ground truth."""
    import av

    from batch.schema import ImageSize, Person, PoseResult, Thresholds
    from batch.video.tracking import PersonTracker, TrackerChoice

    lines = detections.read_text().splitlines()[1:]
    persons = [
        [Person(**{k: v for k, v in p.items() if k != "track_id"}) for p in json.loads(line)["persons"]]
        for line in lines
    ]
    frames = []
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == len(persons):
                break
    size, thresholds = ImageSize(width=WIDTH, height=HEIGHT), Thresholds(conf=0.25, iou=0.7, max_det=300, imgsz=640)
    results = [
        PoseResult(model="m", image=size, keypoint_names=[], skeleton=[], persons=p, thresholds=thresholds)
        for p in persons
    ]
    compared = {}
    for name, gmc in TRACKERS:
        tracker = PersonTracker(TrackerChoice(name, gmc), FPS)
        spent = 0.0
        assigned = []
        for result, bgr in zip(results, frames, strict=True):
            started = time.perf_counter()
            assigned.append(tracker.assign(result, bgr))
            spent += time.perf_counter() - started
        label = _tracker_label(name, None if name == "bytetrack" else gmc)
        compared[label] = {"ms_per_frame": round(spent / len(results) * 1000, 2), **identities(clip, results, assigned)}
    return compared  # fmt: skip


def identities(clip: Clip, results: list[Any], assigned: list[list[int | None]]) -> dict[str, Any]:
    """Against the ground truth: each true person (scored while >= MIN_BOX_HEIGHT px tall and inside the frame)
    matched to a detection by IoU >= 0.5; its track id switches, and its matched frames without an id."""
    last: dict[int, int] = {}
    switches = matched = untracked = 0
    for boxes, result, ids in zip(clip.truth, results, assigned, strict=False):
        for truth_index, box in enumerate(boxes):
            if box[3] - box[1] < MIN_BOX_HEIGHT or box[0] < 0 or box[1] < 0 or box[2] > WIDTH or box[3] > HEIGHT:
                continue
            found, best, best_iou = False, None, 0.5
            for person, track_id in zip(result.persons, ids, strict=True):
                overlap = _iou(box, person.box)
                if overlap >= best_iou:
                    found, best, best_iou = True, track_id, overlap
            if not found:
                continue  # no detection for this person in this frame: the detector's miss, not the tracker's
            matched += 1
            if best is None:
                untracked += 1
                continue
            if truth_index in last and last[truth_index] != best:
                switches += 1
            last[truth_index] = best
    return {
        "matched": matched,
        "id_switches": switches,
        "untracked_share": round(untracked / matched, 4) if matched else None,
    }


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --- the row ---------------------------------------------------------------------------------------
def video_row(model: str, frames: int, *, trackers: bool = True, cache: Path = CACHE) -> dict[str, Any]:
    """The video row of the throughput benchmark."""
    print(f"[video] clip: {frames} frames of {WIDTH}x{HEIGHT} at {FPS} fps in {cache} (made once) ...", flush=True)
    clip = make_clip(frames, cache)
    print("[video] naive YOLO.track(clip) ...", flush=True)
    naive = _in_fresh_process(naive_track, model, str(clip.path), frames)
    print("[video] service: the video pipeline, writing the annotated MP4 ...", flush=True)
    ours = _in_fresh_process(service, model, str(clip.path), {})
    print("[video] the same frames through the images path (JPEGs, annotated) ...", flush=True)
    as_images = _in_fresh_process(images_path, model, str(clip.path), min(frames, 300))
    mb = round(clip.path.stat().st_size / 2**20, 2)
    row: dict[str, Any] = {
        "clip": {"frames": frames, "width": WIDTH, "height": HEIGHT, "fps": FPS, "mb": mb},
        "naive": naive,
        "service": ours,
        "images_path": as_images,
        "service/naive": round(ours["frames_per_second"] / naive["frames_per_second"], 2),
        "service/images_path": round(ours["frames_per_second"] / as_images["frames_per_second"], 2),
    }  # fmt: skip
    if trackers:
        print("[video] trackers on the same detections ...", flush=True)
        detections = cache / f"detections-{frames}.jsonl"
        _in_fresh_process(service, model, str(clip.path), {"POSE_VIDEO_TRACK": "false"}, str(detections))
        row["trackers"] = compare_trackers(clip, detections)
    return row


def print_row(row: dict[str, Any]) -> None:
    clip, naive, ours = row["clip"], row["naive"], row["service"]
    print(f"\n[video] {clip['frames']} frames, {clip['width']}x{clip['height']} at {clip['fps']} fps ({clip['mb']} MB)")
    print(f"{'':34} {'frames/s':>9} {'peak RSS MB':>12}")
    print(f"{'(a) naive YOLO.track(clip)':34} {naive['frames_per_second']:>9.2f} {naive['peak_rss_mb']:>12.1f}")
    print(
        f"{'service + annotated MP4':34} {ours['frames_per_second']:>9.2f} {ours['peak_rss_mb']:>12.1f}  "
        f"({ours['backend']}, {ours['tracker']}, mean batch {ours['mean_batch']})"
    )
    print(f"service RSS: {ours['rss_before_video_mb']} MB loaded, {ours['rss_after_first_tenth_mb']} MB after the "
          f"first tenth of the video, {ours['rss_at_end_mb']} MB at its end")  # fmt: skip
    print(f"{'images path (frames as JPEGs)':34} {row['images_path']['frames_per_second']:>9.2f}")
    print(f"service/naive = {row['service/naive']}, service/images path = {row['service/images_path']}")
    for label, measured in row.get("trackers", {}).items():
        print(f"tracker {label:16} {measured['ms_per_frame']:>6.2f} ms/frame  id switches "
              f"{measured['id_switches']:>3}  untracked {measured['untracked_share']}  "
              f"(of {measured['matched']} matched)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("POSE_MODEL", "yolo11n-pose.pt"))
    parser.add_argument("--frames", type=int, default=1000, help="frames in the 720p clip")
    parser.add_argument("--no-trackers", dest="trackers", action="store_false", help="skip the tracker comparison")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    row = video_row(args.model, args.frames, trackers=args.trackers)
    print_row(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
