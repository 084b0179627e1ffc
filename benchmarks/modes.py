"""The four ways of posing the same images, each measured on its own (see throughput.py)."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


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
        try:
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def close(self) -> None:
        """Closes every worker thread's connection (they stay open for reuse until then)."""
        for connection in self._local.values():
            connection.close()
        self._local.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def bench_forward(engine: Any, bodies: Sequence[bytes], count: int) -> Measurement:
    """Forward passes alone, on the most common canvas shape, batches of the batcher's size, as many at
    once as the backend has lanes (OpenVINO's streams), as the service runs them."""
    import collections

    import numpy as np
    import torch

    # Host-side preparation: the pixels are decoded and letterboxed before the clock starts; only the
    # canvases are kept (16 decoded phone photos would hold 0.6 GB).
    from batch.inference.decode import decode_image

    canvases_all = [
        engine.prepare_decoded(decode_image(b, max_pixels=engine.max_pixels), engine.default_options).canvas
        for b in bodies[:16]
    ]
    shape = collections.Counter(c.shape for c in canvases_all).most_common(1)[0][0]
    canvases = [c for c in canvases_all if c.shape == shape]
    batch_size = engine.max_batch_size
    lanes = engine.backend.lanes
    host_batch = np.stack([canvases[i % len(canvases)] for i in range(batch_size)])
    on_device = engine.backend.device.type == "cuda"
    device_batch = torch.from_numpy(host_batch).to(engine.backend.device)  # already there: no transfer timed

    def forward(_: int = 0) -> None:
        engine.backend.forward_tensor(device_batch) if on_device else engine.backend.forward(host_batch)

    with ThreadPoolExecutor(lanes) as pool:
        list(pool.map(forward, range(lanes)))  # warm-up, every lane
        batches = max(lanes, count // batch_size)
        started = time.perf_counter()
        list(pool.map(forward, range(batches)))
        if on_device:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    extra = {"batch_size": batch_size, "lanes": lanes, "shape": list(shape), "precision": engine.backend.precision}
    return Measurement("forward", batches * batch_size, seconds, extra=extra)


def bench_preparation(engine: Any, bodies: Sequence[bytes]) -> Measurement:
    """What the service does for each image besides the forward, on one thread: read the header, decode
    (at the reduced scale it would use), letterbox. Divided over the cores it gives, with (d), the most
    that (b) could reach on this machine: see `ceiling`."""
    from batch.inference.decode import decode

    def prepare(body: bytes) -> None:
        planned = engine.plan(body, engine.default_options)  # the CPU path, also where a GPU would decode
        engine.prepare_decoded(decode(planned.source, scale=planned.scale), engine.default_options)

    prepare(bodies[0])  # warm-up
    started = time.perf_counter()
    for body in bodies:
        prepare(body)
    return Measurement("preparation", len(bodies), time.perf_counter() - started)


def ceiling(preparation: Measurement, forward: Measurement, cores: int) -> float:
    """Images/s if the cores did nothing but prepare and forward each image, with no time lost to HTTP,
    NMS, JSON, threads waiting or the benchmark's client: 1 / (prep/cores + 1/forward). On a CPU, where
    preparation and forward share the same cores, (b) cannot pass it; on a GPU the forward is not on the
    cores, and the bound is the smaller of the two rates instead (not computed here)."""
    prep_seconds = preparation.seconds / preparation.images
    return 1.0 / (prep_seconds / cores + 1.0 / forward.images_per_second)


def server_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
