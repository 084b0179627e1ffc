#!/usr/bin/env python3
"""Throughput benchmark: four ways of posing the same images, measured side by side in one run.

  (a) naive     Ultralytics' own loop: `YOLO(model).predict(path)` per image, default settings
  (b) images    the service end to end over HTTP, one image per request, Batch Transform-like concurrency
  (c) manifest  the service fed manifests of S3 references through the local S3 (moto), writing
                keypoint JSON and annotated images back to S3
  (d) forward   the model forward alone on pre-decoded, pre-letterboxed batches (same backend, precision)

Then a soak of `--soak` requests checks that the server's memory stays flat.
Usage: .venv/bin/python benchmarks/throughput.py --model ../shared/models/yolo11n-pose.pt [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO_ROOT.parent / "shared" / "data" / "coco-val-mini" / "images"


@dataclass
class Measurement:
    name: str
    images: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": self.images, "seconds": round(self.seconds, 2)}
        out["images_per_second"] = round(self.images_per_second, 2)
        if self.latencies_ms:
            ordered = sorted(self.latencies_ms)
            out["latency_p50_ms"] = round(statistics.median(ordered), 1)
            out["latency_p99_ms"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1)
        return {**out, **self.extra}


# --- HTTP client: one keep-alive connection per worker thread, as little client CPU as possible ----
class Client:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._local: dict[int, http.client.HTTPConnection] = {}

    def post(self, body: bytes, content_type: str, attributes: str = "") -> tuple[int, bytes, float]:
        import threading

        ident = threading.get_ident()
        connection = self._local.get(ident)
        if connection is None:
            connection = self._local[ident] = http.client.HTTPConnection(self._host, self._port, timeout=600)
        headers = {"Content-Type": content_type}
        if attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        started = time.perf_counter()
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter() - started) * 1000

    def get_json(self, path: str) -> Any:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())


def run_concurrently(count: int, concurrency: int, work: Callable[[int], float]) -> Measurement:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(work, range(count)))
    return Measurement("", count, time.perf_counter() - started, latencies)


# --- the four modes ------------------------------------------------------------------------------------
def bench_naive(model: str, paths: Sequence[Path]) -> Measurement:
    from ultralytics import YOLO

    yolo = YOLO(model)
    yolo.predict(str(paths[0]), verbose=False)  # warm-up, as every mode gets one
    latencies = []
    started = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        yolo.predict(str(path), verbose=False)
        latencies.append((time.perf_counter() - t0) * 1000)
    return Measurement("naive", len(paths), time.perf_counter() - started, latencies)


def bench_images(client: Client, bodies: Sequence[bytes], concurrency: int) -> Measurement:
    def one(i: int) -> float:
        status, data, latency = client.post(bodies[i], "image/jpeg")
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
        return latency

    measured = run_concurrently(len(bodies), concurrency, one)
    measured.name = "images"
    return measured


def bench_manifest(
    client: Client, uris: Sequence[str], out_prefix: str, lines_per_request: int, concurrency: int
) -> Measurement:
    requests = []
    for start in range(0, len(uris), lines_per_request):
        lines = []
        for n, uri in enumerate(uris[start : start + lines_per_request], start):
            lines.append(json.dumps({
                "image": uri,
                "keypoints": f"{out_prefix}keypoints/{n:05d}.jpg.json",
                "annotated": f"{out_prefix}annotated/{n:05d}.jpg",
            }))  # fmt: skip
        requests.append(("\n".join(lines) + "\n").encode())
    failures = 0

    def one(i: int) -> float:
        nonlocal failures
        status, data, latency = client.post(requests[i], "application/jsonlines")
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
        failures += sum('"status":"error"' in line for line in data.decode().splitlines())
        return latency

    measured = run_concurrently(len(requests), concurrency, one)
    if failures:
        raise RuntimeError(f"{failures} manifest lines failed")
    return Measurement(
        "manifest", len(uris), measured.seconds, measured.latencies_ms, {"lines_per_request": lines_per_request}
    )


def bench_forward(settings: Any, bodies: Sequence[bytes], count: int) -> Measurement:
    """Forward passes alone, on the most common canvas shape, batches of the batcher's size."""
    import collections

    import numpy as np

    from batch.inference.decode import decode_image
    from batch.inference.engine import PoseEngine

    engine = PoseEngine.load(settings)
    # Host-side preparation: the pixels are decoded and letterboxed before the clock starts.
    prepared = [
        engine.prepare_decoded(decode_image(b, max_pixels=engine.max_pixels), engine.default_options)
        for b in bodies[:64]
    ]
    shape = collections.Counter(p.canvas.shape for p in prepared).most_common(1)[0][0]
    canvases = [p.canvas for p in prepared if p.canvas.shape == shape]
    batch_size = engine.max_batch_size
    import torch

    host_batch = np.stack([canvases[i % len(canvases)] for i in range(batch_size)])
    on_device = engine.backend.device.type == "cuda"
    device_batch = torch.from_numpy(host_batch).to(engine.backend.device)  # already there: no transfer timed

    def forward() -> torch.Tensor:
        return engine.backend.forward_tensor(device_batch) if on_device else engine.backend.forward(host_batch)

    forward()  # warm-up
    batches = max(1, count // batch_size)
    started = time.perf_counter()
    for _ in range(batches):
        forward()
    if on_device:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return Measurement("forward", batches * batch_size, seconds, extra={"batch_size": batch_size, "shape": list(shape)})


def server_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("POSE_MODEL", "yolo11n-pose.pt"))
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of JPEGs, cycled")
    parser.add_argument("--count", type=int, default=500, help="images per mode (>= 500 for the report)")
    parser.add_argument("--concurrency", type=int, default=0, help="in-flight requests (default: advertised)")
    parser.add_argument("--lines-per-request", type=int, default=64)
    parser.add_argument("--manifest-concurrency", type=int, default=4)
    parser.add_argument("--soak", type=int, default=2000, help="requests in the memory soak (0: skip)")
    parser.add_argument("--naive-count", type=int, default=0, help="images for (a) (default: --count)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    os.environ.setdefault("YOLO_OFFLINE", "1")

    from batch.local.container import ServingContainer
    from batch.local.moto_server import MotoServer
    from batch.settings import Settings

    paths = sorted(args.images.glob("*.jpg"))
    if not paths:
        print(f"no JPEGs in {args.images}", file=sys.stderr)
        return 2
    cycled = list(itertools.islice(itertools.cycle(paths), args.count))
    bodies = [p.read_bytes() for p in cycled]
    env = {"POSE_MODEL": args.model}
    settings = Settings.from_env({**os.environ, **env})
    results: dict[str, Measurement] = {}

    print(f"(a) naive Ultralytics loop over {args.naive_count or args.count} images ...", flush=True)
    results["naive"] = bench_naive(args.model, cycled[: args.naive_count or args.count])
    print("(d) forward alone ...", flush=True)
    results["forward"] = bench_forward(settings, bodies, args.count)

    with MotoServer() as moto, tempfile.TemporaryDirectory() as scratch:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket="bench")
        uris = []
        for n, body in enumerate(bodies):
            s3.put_object(Bucket="bench", Key=f"input/{n:05d}.jpg", Body=body)
            uris.append(f"s3://bench/input/{n:05d}.jpg")
        container = ServingContainer(
            model_dir=Path(scratch),
            environment={**env, "POSE_ALLOWED_BUCKETS": "bench"},
            aws_environment=moto.environment,
        ).start()
        try:
            client = Client(container.url)
            concurrency = args.concurrency or int(client.get_json("/execution-parameters")["MaxConcurrentTransforms"])
            bench_images(client, bodies[:concurrency], concurrency)  # warm-up
            print(f"(b) images mode over HTTP, concurrency {concurrency} ...", flush=True)
            results["images"] = bench_images(client, bodies, concurrency)
            results["images"].extra["concurrency"] = concurrency
            print(f"(c) manifest mode through local S3, {args.lines_per_request} lines/request ...", flush=True)
            results["manifest"] = bench_manifest(
                client, uris, "s3://bench/output/", args.lines_per_request, args.manifest_concurrency
            )
            server_metrics = client.get_json("/metrics")
            soak: dict[str, Any] = {}
            if args.soak:
                pid = container.pid
                print(f"soak: {args.soak} requests ...", flush=True)
                warm = list(itertools.islice(itertools.cycle(bodies), 200))
                bench_images(client, warm, concurrency)
                rss_before = server_rss_mb(pid)
                soak_bodies = list(itertools.islice(itertools.cycle(bodies), args.soak))
                soaked = bench_images(client, soak_bodies, concurrency)
                rss_after = server_rss_mb(pid)
                soak = {
                    "requests": args.soak,
                    "rss_before_mb": round(rss_before, 1),
                    "rss_after_mb": round(rss_after, 1),
                    "rss_growth_mb": round(rss_after - rss_before, 1),
                    "images_per_second": round(soaked.images_per_second, 2),
                }
            server_metrics = client.get_json("/metrics")
        finally:
            container.stop()

    a, b, c, d = (results[k].images_per_second for k in ("naive", "images", "manifest", "forward"))
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "device": server_metrics.get("device"),
        "backend": server_metrics.get("backend"),
        "half": server_metrics.get("half"),
        "model": args.model,
        "modes": {name: m.summary() for name, m in results.items()},
        "ratios": {"b/a": round(b / a, 2), "c/a": round(c / a, 2), "b/d": round(b / d, 2), "c/b": round(c / b, 2)},
        "server": server_metrics,
        "soak": soak,
    }
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    modes = report["modes"]
    labels = {"naive": "(a) naive predict(path)", "images": "(b) images over HTTP", "manifest": "(c) manifest via S3",
              "forward": "(d) forward alone"}  # fmt: skip
    print(f"\ndevice={report['device']} backend={report['backend']} half={report['half']} model={report['model']}")
    print(f"{'mode':28} {'images':>7} {'img/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for key in ("naive", "images", "manifest", "forward"):
        m = modes[key]
        print(f"{labels[key]:28} {m['images']:>7} {m['images_per_second']:>8.2f} "
              f"{m.get('latency_p50_ms', '-'):>8} {m.get('latency_p99_ms', '-'):>8}")  # fmt: skip
    print("ratios: " + "  ".join(f"{k} = {v}" for k, v in report["ratios"].items()))
    server = report["server"]
    print(f"server: mean batch {server.get('mean_batch_size')}, peak RSS {server.get('peak_rss_mb')} MB, "
          f"peak GPU memory {server.get('peak_gpu_memory_mb')} MB")  # fmt: skip
    if report["soak"]:
        soak = report["soak"]
        print(f"soak: {soak['requests']} requests, RSS {soak['rss_before_mb']} -> {soak['rss_after_mb']} MB "
              f"(growth {soak['rss_growth_mb']} MB)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
