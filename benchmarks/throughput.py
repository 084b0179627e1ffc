#!/usr/bin/env python3
"""Throughput benchmark: four ways of posing the same images, measured side by side in one run, on two
image sets: `coco` (the COCO val images as they are, ~640 px) and `phones` (12 MP ~4 MB phone-size JPEGs
made from them at run time, some EXIF-rotated; see photos.py).

  (a) naive     Ultralytics' own loop: `YOLO(model).predict(path)` per image, default settings
  (b) images    the service end to end over HTTP, one image per request, Batch Transform-like concurrency
  (c) manifest  the service fed manifests of S3 references through the local S3 (moto), writing
                keypoint JSON and annotated images back to S3
  (d) forward   the model forward alone on pre-decoded, pre-letterboxed batches (same backend, precision),
                as many at once as the backend has lanes

On a CPU it also gives the ceiling of (b) on this machine: each image's preparation (header, decode,
letterbox) timed on one thread and shared over the cores, plus the forward at (d)'s rate (modes.ceiling);
b / ceiling says how much of the machine the service turns into results.

(b) is measured after one whole warm-up pass over the same images, whose own rate is reported as
"(b) cold": OpenVINO builds kernels per input shape and batch size on first sight, which a server pays
once, not per image.
Each set gets a fresh server, so its mean batch (bounded batcher stats, /metrics) and peak RSS are its own.
`--backends auto,onnxruntime` measures (b), (c) and (d) for each backend in the same run, side by side
(the first one is the run's headline; (a) is measured once). A backend may carry settings of its own,
`BACKEND:NAME=VALUE[:NAME=VALUE...]`, so that two settings are compared in one run too, e.g.
`--backends auto,openvino:POSE_OPENVINO_PRECISION=f32,auto:POSE_ANNOTATED_MAX_SIDE=1920`.
Cost: images/s and dollars per million images on `--instance-type` (pricing.py; approximate prices).
A soak of `--soak` requests (coco set) checks that the server's memory stays flat.
The video row (`--video-frames`, video.py): frames/s of the video pipeline writing the annotated MP4 against
naive `YOLO.track(clip)` on the same 720p clip, peak RSS of each, and the trackers compared.

Usage: .venv/bin/python benchmarks/throughput.py --model ../shared/models/yolo11n-pose.pt [--json out.json]
Quick: ... --sets coco,phones --count 96 --soak 0 --video-frames 90
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script or through runpy (`pose-batch bench`)
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.modes import (  # noqa: E402
    Client,
    Measurement,
    bench_forward,
    bench_images,
    bench_manifest,
    bench_naive,
    bench_preparation,
    ceiling,
    server_rss_mb,
)
from benchmarks.photos import phone_photos  # noqa: E402
from benchmarks.pricing import PRICE_SOURCE, default_instance, dollars_per_million, price_per_hour  # noqa: E402

DEFAULT_IMAGES = REPO_ROOT.parent / "shared" / "data" / "coco-val-mini" / "images"
PHOTO_CACHE = REPO_ROOT / ".posebatch" / "bench-photos"  # ignored by git
SETS = ("coco", "phones")
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
LABELS = {"naive": "(a) naive predict(path)", "images_cold": "(b) cold: first pass", "images": "(b) images over HTTP",
          "manifest": "(c) manifest via S3", "forward": "(d) forward alone"}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One server configuration compared: a backend and the settings given with it."""

    label: str  # as written on the command line; the key of its figures in the report
    environment: dict[str, str]  # POSE_BACKEND and the overrides


def parse_variant(text: str, known: frozenset[str]) -> Variant:
    """`BACKEND[:NAME=VALUE...]`; raises ValueError saying what is wrong."""
    backend, *overrides = text.split(":")
    if backend not in BACKENDS:
        raise ValueError(f"{text!r}: the backend must be one of {', '.join(BACKENDS)}")
    environment = {"POSE_BACKEND": backend}
    for override in overrides:
        name, sep, value = override.partition("=")
        if not sep or name not in known or name == "POSE_BACKEND":
            raise ValueError(f"{text!r}: {override!r} is not NAME=VALUE with NAME a PoseBatch setting (POSE_...)")
        environment[name] = value
    return Variant(text, environment)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("POSE_MODEL", "yolo11n-pose.pt"))
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of COCO JPEGs, cycled")
    parser.add_argument("--sets", default="coco,phones", help="comma-separated: coco, phones")
    parser.add_argument("--count", type=int, default=500, help="images per mode, coco set (>= 500 for the report)")
    parser.add_argument("--phone-count", type=int, default=0, help="images per mode, phones set (default: --count)")
    parser.add_argument("--naive-count", type=int, default=0, help="images for (a) (default: the set's count)")
    parser.add_argument("--photo-cache", type=Path, default=PHOTO_CACHE, help="where the phone photos are kept")
    parser.add_argument("--device", help="POSE_DEVICE for the server and (d) (default: the environment's, or auto)")
    parser.add_argument(
        "--backends",
        default="",
        help="comma-separated POSE_BACKEND values to compare, each optionally with settings of its own: "
        "BACKEND:NAME=VALUE[:NAME=VALUE...] (default: the environment's POSE_BACKEND)",
    )
    parser.add_argument("--concurrency", type=int, default=0, help="in-flight requests (default: advertised)")
    parser.add_argument("--lines-per-request", type=int, default=64)
    parser.add_argument("--manifest-concurrency", type=int, default=4)
    parser.add_argument("--soak", type=int, default=2000, help="requests in the memory soak, coco set (0: skip)")
    parser.add_argument("--instance-type", help="for the cost figures (default: ml.c7i.xlarge on CPU, ml.g5.xlarge)")
    parser.add_argument("--price-per-hour", type=float, help="USD per hour, instead of the built-in table")
    parser.add_argument("--video-frames", type=int, default=1000, help="frames of the 720p video row (0: skip it)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    from batch.settings import Settings

    default_backend = os.environ.get("POSE_BACKEND", "auto")
    texts = [b.strip() for b in args.backends.split(",") if b.strip()] or [default_backend]
    try:
        args.variants = [parse_variant(text, Settings.environment_names()) for text in texts]
    except ValueError as exc:
        parser.error(f"--backends: {exc}")
    if len({v.label for v in args.variants}) < len(args.variants):
        parser.error("--backends: the same entry twice")
    if not args.sets or any(s not in SETS for s in args.sets):
        parser.error(f"--sets takes a comma-separated list of {', '.join(SETS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")

    from pydantic import ValidationError

    from batch.inference.engine import PoseEngine
    from batch.local.moto_server import MotoServer
    from batch.settings import Settings

    coco = sorted(args.images.glob("*.jpg"))
    if not coco:
        print(f"no JPEGs in {args.images}", file=sys.stderr)
        return 2
    env = {"POSE_MODEL": args.model, **({"POSE_DEVICE": args.device} if args.device else {})}
    # For (d) and the ceiling, shared by the sets: one engine per variant compared.
    try:  # every variant's settings checked before the first model loads
        settings = [Settings.from_env({**os.environ, **env, **v.environment}) for v in args.variants]
    except ValidationError as exc:
        print(f"--backends: a setting's value is not valid: {exc}", file=sys.stderr)
        return 2
    engines = [(variant, PoseEngine.load(s)) for variant, s in zip(args.variants, settings, strict=True)]
    engine = engines[0][1]
    instance = args.instance_type or default_instance(str(engine.backend.device))
    dollars_per_hour = price_per_hour(instance, args.price_per_hour)

    sets: dict[str, Any] = {}
    with MotoServer() as moto:
        for name in args.sets:
            count = args.count if name == "coco" else (args.phone_count or args.count)
            if name == "phones":
                print(f"phone photos: {min(count, len(coco))} in {args.photo_cache} (made once) ...", flush=True)
                paths = phone_photos(coco[:count], args.photo_cache)
            else:
                paths = coco
            sets[name] = run_set(name, paths, count, args, env, engines, moto)
            add_cost(sets[name], dollars_per_hour)

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "model": args.model,
        "device": str(engine.backend.device),
        "backend": engine.backend.name,  # the first of --backends: the sets' headline figures
        "variants": {v.label: v.environment for v in args.variants},
        "precision": engine.backend.precision,
        "cost": {
            "instance_type": instance,
            "dollars_per_hour": dollars_per_hour,
            "source": "--price-per-hour" if args.price_per_hour is not None else PRICE_SOURCE,
        },
        "sets": sets,
    }
    if args.video_frames > 0:
        from benchmarks.video import video_row

        report["video"] = video_row(args.model, args.video_frames)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def run_set(
    name: str,
    paths: list[Path],
    count: int,
    args: argparse.Namespace,
    env: dict[str, str],
    engines: list[tuple[Variant, Any]],
    moto: Any,
) -> dict[str, Any]:
    """(a) once, then (b), (c), (d) and the ceiling for every backend (variant); the first backend's figures are the
    set's headline (`modes`, `ratios`, ...), the others go under `backends`, each with its own ratios."""
    unique = [p.read_bytes() for p in paths[:count]]
    cycled = list(itertools.islice(itertools.cycle(paths[:count]), count))
    print(f"[{name}] (a) naive Ultralytics loop over {args.naive_count or count} images ...", flush=True)
    naive = bench_naive(args.model, cycled[: args.naive_count or count])

    s3 = moto.client("s3")
    bucket = f"bench-{name}"
    s3.create_bucket(Bucket=bucket)
    for n, body in enumerate(unique):  # each distinct image once; the manifest cycles through them
        s3.put_object(Bucket=bucket, Key=f"input/{n:05d}.jpg", Body=body)
    per_backend = {
        variant.label: run_backend(name, variant, engine, unique, count, naive, args, env, moto, bucket)
        for variant, engine in engines
    }
    headline = per_backend[args.variants[0].label]
    return {
        "images": len(unique),
        "count": count,
        "mean_image_mb": round(sum(map(len, unique)) / len(unique) / 2**20, 2),
        **headline,
        "backends": per_backend,
    }


def run_backend(
    name: str,
    variant: Variant,
    engine: Any,
    unique: list[bytes],
    count: int,
    naive: Measurement,
    args: argparse.Namespace,
    env: dict[str, str],
    moto: Any,
    bucket: str,
) -> dict[str, Any]:
    from batch.local.container import ServingContainer

    bodies = list(itertools.islice(itertools.cycle(unique), count))
    uris = [f"s3://{bucket}/input/{n % len(unique):05d}.jpg" for n in range(count)]
    label = f"[{name}/{variant.label}]"
    results: dict[str, Measurement] = {"naive": naive}
    outputs = f"s3://{bucket}/output/{args.variants.index(variant)}/"  # key-safe: labels hold ':' and '='
    print(f"{label} (d) forward alone ...", flush=True)
    results["forward"] = bench_forward(engine, bodies, count)
    on_cpu = engine.backend.device.type == "cpu"
    preparation = bench_preparation(engine, unique[: min(len(unique), 48)]) if on_cpu else None
    with tempfile.TemporaryDirectory() as scratch:
        container = ServingContainer(
            model_dir=Path(scratch),
            environment={**env, **variant.environment, "POSE_ALLOWED_BUCKETS": bucket},
            aws_environment=moto.environment,
        ).start(startup_timeout_s=300)
        try:
            client = Client(container.url)
            concurrency = args.concurrency or int(client.get_json("/execution-parameters")["MaxConcurrentTransforms"])
            # Warm-up: one whole pass over the images. OpenVINO builds its kernels for each input shape and
            # batch size the first time it sees them (80-190 ms each, measured; COCO-val-mini has 11 canvas
            # shapes, the batcher 8 sizes), once per server: a job of many images pays that once, so (b)
            # is measured after it. The pass's own rate is reported too, as (b) cold.
            print(f"{label} (b) warm-up pass, concurrency {concurrency} ...", flush=True)
            results["images_cold"] = bench_images(client, bodies, concurrency)
            before = client.get_json("/metrics")
            print(f"{label} (b) images mode over HTTP, concurrency {concurrency} ...", flush=True)
            results["images"] = bench_images(client, bodies, concurrency)
            results["images"].extra["concurrency"] = concurrency
            after_images = client.get_json("/metrics")
            print(f"{label} (c) manifest mode via local S3, {args.lines_per_request} lines/request ...", flush=True)
            results["manifest"] = bench_manifest(
                client, uris, outputs, args.lines_per_request, args.manifest_concurrency
            )
            after_manifest = client.get_json("/metrics")
            soak = run_soak(client, bodies, concurrency, container.pid, args.soak) if name == "coco" else {}
            server = client.get_json("/metrics")
            client.close()
        finally:
            container.stop()

    a, b, c, d = (results[k].images_per_second for k in ("naive", "images", "manifest", "forward"))
    out: dict[str, Any] = {
        "backend": server.get("backend"),
        "precision": server.get("precision"),
        "modes": {key: m.summary() for key, m in results.items()},
        "ratios": {"b/a": round(b / a, 2), "b/d": round(b / d, 2), "c/a": round(c / a, 2), "c/b": round(c / b, 2)},
        "mean_batch": {
            "images": mean_batch(before, after_images),
            "manifest": mean_batch(after_images, after_manifest),
        },
        "server_peak_rss_mb": server.get("peak_rss_mb"),
        "server": server,
        "soak": soak,
    }
    # One line as soon as a backend is measured, so a run cut short still says what it found.
    rates = "  ".join(f"{k}={results[k].images_per_second:.1f}" for k in ("naive", "images_cold", "images", "manifest"))
    print(f"{label} img/s: {rates}  forward={d:.1f}; b/a={b / a:.2f} b/d={b / d:.2f} c/b={c / b:.2f}", flush=True)
    if preparation is not None:
        cores = os.cpu_count() or 1
        bound = ceiling(preparation, results["forward"], cores)
        out["ceiling"] = {
            "preparation_ms_per_image_one_thread": round(preparation.seconds / preparation.images * 1000, 1),
            "cores": cores,
            "images_per_second": round(bound, 2),
            "b/ceiling": round(b / bound, 2),
            "ceiling/a": round(bound / a, 2),
            "ceiling/d": round(bound / d, 2),
        }
    return out


def cpu_model() -> str:
    """The CPU's name (the figures differ a lot between CPUs: AMX, AVX512_BF16 or neither)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def mean_batch(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The mean batch between two /metrics readings (the batcher keeps lifetime counts, not a log)."""
    batches = after["batches"] - before["batches"]
    return round((after["images"] - before["images"]) / batches, 2) if batches else 0.0


def run_soak(client: Client, bodies: list[bytes], concurrency: int, pid: int, requests: int) -> dict[str, Any]:
    if not requests:
        return {}
    print(f"soak: {requests} requests ...", flush=True)
    bench_images(client, list(itertools.islice(itertools.cycle(bodies), 200)), concurrency)
    rss_before = server_rss_mb(pid)
    soaked = bench_images(client, list(itertools.islice(itertools.cycle(bodies), requests)), concurrency)
    rss_after = server_rss_mb(pid)
    return {
        "requests": requests,
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_growth_mb": round(rss_after - rss_before, 1),
        "images_per_second": round(soaked.images_per_second, 2),
    }


def add_cost(result: dict[str, Any], dollars_per_hour: float) -> None:
    for measured in (result, *result["backends"].values()):
        for mode in measured["modes"].values():
            mode["dollars_per_million"] = dollars_per_million(mode["images_per_second"], dollars_per_hour)


def print_report(report: dict[str, Any]) -> None:
    cost = report["cost"]
    print(f"\ndevice={report['device']} ({report['machine']['cpu_model']}, {report['machine']['cpus']} cpus) "
          f"model={report['model']}; cost on {cost['instance_type']} at "
          f"${cost['dollars_per_hour']}/h ({cost['source']})")  # fmt: skip
    for name, result in report["sets"].items():
        print(f"\n[{name}] {result['images']} distinct images, {result['mean_image_mb']} MB mean, "
              f"{result['count']} per mode")  # fmt: skip
        for label, measured in result["backends"].items():
            settings = " ".join(f"{k}={v}" for k, v in report["variants"][label].items())
            print(f"-- {settings}: {measured['backend']} {measured['precision']}")
            print(f"{'mode':26} {'images':>6} {'img/s':>7} {'$/M img':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for key in ("naive", "images_cold", "images", "manifest", "forward"):
                m = measured["modes"][key]
                print(f"{LABELS[key]:26} {m['images']:>6} {m['images_per_second']:>7.2f} "
                      f"{m['dollars_per_million']:>8.2f} {m.get('latency_p50_ms', '-'):>8} "
                      f"{m.get('latency_p99_ms', '-'):>8}")  # fmt: skip
            print("ratios: " + "  ".join(f"{k} = {v}" for k, v in measured["ratios"].items()))
            if "ceiling" in measured:
                bound = measured["ceiling"]
                print(f"ceiling on {bound['cores']} cores: {bound['images_per_second']} img/s (preparation "
                      f"{bound['preparation_ms_per_image_one_thread']} ms/image on one thread + forward at (d)); "
                      f"b/ceiling = {bound['b/ceiling']}, ceiling/a = {bound['ceiling/a']}, "
                      f"ceiling/d = {bound['ceiling/d']}")  # fmt: skip
            print(f"mean batch: images {measured['mean_batch']['images']}, manifest "
                  f"{measured['mean_batch']['manifest']}; server peak RSS {measured['server_peak_rss_mb']} MB, "
                  f"peak GPU memory {measured['server'].get('peak_gpu_memory_mb')} MB")  # fmt: skip
            if measured["soak"]:
                soak = measured["soak"]
                print(f"soak: {soak['requests']} requests, RSS {soak['rss_before_mb']} -> {soak['rss_after_mb']} MB "
                      f"(growth {soak['rss_growth_mb']} MB)")  # fmt: skip
    if "video" in report:
        from benchmarks.video import print_row

        print_row(report["video"])


if __name__ == "__main__":
    sys.exit(main())
