#!/usr/bin/env python3
"""Soak: the serving container under hostile requests (issue 26, items 1 and 2), with `/ping` timed all
along and the server's peak RSS held against the README's bound (Photos and memory).

Every attack runs in its own loop, all at once, until the time is up:

- a 2 MB body of a million garbage lines (once: RSS 0.66 -> 3.1 GB, a 136 MB answer, `/ping` 28 s);
  now a 413 before anything is split;
- manifests at the line cap (`POSE_MAX_MANIFEST_LINES`) of garbage, of missing S3 objects, and of 70 KB
  lines; every line answered by an error line, the answer streamed;
- a manifest of real COCO images (from the local S3, outputs written back), posed through the pool;
- a 32x32 PNG at the largest imgsz allowed (its canvas charged to the pixel budget), and one above it (400).

SageMaker gives each ping 2 s and replaces a container whose pings fail: the check is that no ping took
2 s or more, and that peak RSS <= idle + 12 bytes x POSE_DECODE_BUDGET_MPIX + twice the bodies in flight.

    benchmarks/hostile_manifest.py --model ../shared/models/yolo11n-pose.pt [--seconds 60] [--json out.json]

`tests/server/test_hostile_manifest.py` runs `soak` briefly against the real server.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
COCO = REPO.parent / "shared" / "data" / "coco-val-mini" / "images"
MODEL = REPO.parent / "shared" / "models" / "yolo11n-pose.pt"
BUCKET = "posebatch-soak"
PING_LIMIT_S = 2.0  # SageMaker's per-ping timeout
BYTES_PER_BUDGET_PIXEL = 12  # the README's bound
JSONL = {"Content-Type": "application/jsonlines"}
ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


@dataclass
class Attack:
    """One kind of hostile request, sent again and again; `check` says what is wrong with an answer."""

    name: str
    body: bytes
    headers: dict[str, str]
    check: Callable[[httpx.Response], str | None]
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@dataclass
class SoakResult:
    seconds: float
    pings: int
    ping_max_s: float
    ping_p99_s: float
    pings_over_limit: int
    ping_errors: int
    idle_rss_mb: float
    peak_rss_mb: float
    rss_bound_mb: float
    budget_peak_mpix: float
    attacks: dict[str, dict[str, Any]]

    @property
    def ok(self) -> bool:
        failed = any(a["failures"] for a in self.attacks.values())
        within = self.pings_over_limit == 0 and self.ping_errors == 0 and self.peak_rss_mb <= self.rss_bound_mb
        return within and not failed


def _lines_answered(expected: int, status: str, code: str | None = None) -> Callable[[httpx.Response], str | None]:
    def check(response: httpx.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        answers = [json.loads(line) for line in response.text.splitlines()]
        if len(answers) != expected:
            return f"{len(answers)} answer lines for {expected} lines"
        wrong = [a for a in answers if a["status"] != status or (code and a.get("error", {}).get("code") != code)]
        return f"{len(wrong)} unexpected answers, first: {json.dumps(wrong[0])[:300]}" if wrong else None

    return check


def _refused(status: int, code: str) -> Callable[[httpx.Response], str | None]:
    def check(response: httpx.Response) -> str | None:
        found = response.json().get("error", {}).get("code") if response.status_code != 200 else None
        return None if (response.status_code, found) == (status, code) else f"{response.status_code}: {found}"

    return check


def _ok_image(response: httpx.Response) -> str | None:
    return None if response.status_code == 200 and "persons" in response.json() else response.text[:200]


def attacks(*, bucket: str, images: list[str], max_lines: int, max_imgsz: int, real_lines: int) -> list[Attack]:
    """The hostile requests, built for a server whose cap is `max_lines` and whose S3 holds `images`."""
    tiny = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 120, 150)).save(tiny, "PNG")
    real = [
        json.dumps({"image": f"s3://{bucket}/{key}", "keypoints": f"s3://{bucket}/out/{n}.json"})
        for n, key in zip(range(real_lines), images * (real_lines // max(len(images), 1) + 1), strict=False)
    ]
    long_line = json.dumps({"image": f"s3://{bucket}/" + "k" * 70_000})
    return [
        Attack("million-line body", b"x\n" * 1_000_000, JSONL, _refused(413, "payload_too_large")),
        Attack(
            "garbage at the line cap",
            b"{not a manifest line\n" * max_lines,
            JSONL,
            _lines_answered(max_lines, "error", "invalid_manifest_line"),
        ),
        Attack(
            "missing objects at the line cap",
            "".join(f"s3://{bucket}/missing/{n}.jpg\n" for n in range(max_lines)).encode(),
            JSONL,
            _lines_answered(max_lines, "error", "s3_error"),
        ),
        Attack("70 KB lines", (long_line + "\n").encode() * 50, JSONL, _lines_answered(50, "error")),
        Attack("real images", ("\n".join(real) + "\n").encode(), JSONL, _lines_answered(len(real), "ok")),
        Attack(
            "32x32 PNG at the imgsz cap",
            tiny.getvalue(),
            {"Content-Type": "image/png", ATTRIBUTES: f"imgsz={max_imgsz}"},
            _ok_image,
        ),
        Attack(
            "imgsz above the cap",
            tiny.getvalue(),
            {"Content-Type": "image/png", ATTRIBUTES: f"imgsz={max_imgsz + 32}"},
            _refused(400, "invalid_custom_attributes"),
        ),
    ]


def _pinger(url: str, stop: Any, out: Connection) -> None:
    """Times `/ping` every 0.1 s until `stop`, in a process of its own: the attackers' threads must not
    delay it (their GIL is not the server's), so what it measures is the server's answer."""
    pings: list[float] = []
    errors: list[str] = []
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = client.get(f"{url}/ping").status_code
                if status != 200:
                    errors.append(f"HTTP {status}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            pings.append(time.monotonic() - started)
            stop.wait(0.1)
    out.send((pings, errors))


def soak(url: str, planned: list[Attack], *, seconds: float, budget_mpix: float) -> SoakResult:
    """Run every attack in a loop for `seconds` while a pinger times `/ping` every 0.1 s."""
    idle_mb = float(httpx.get(f"{url}/metrics", timeout=30).json()["peak_rss_mb"])
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    received, sent = context.Pipe(duplex=False)
    ping_process = context.Process(target=_pinger, args=(url, stop, sent), daemon=True)
    ping_process.start()

    def attacker(attack: Attack, deadline: float) -> None:
        with httpx.Client(timeout=600) as client:
            while time.monotonic() < deadline or attack.requests == 0:
                started = time.monotonic()
                response = client.post(f"{url}/invocations", content=attack.body, headers=attack.headers)
                attack.seconds.append(time.monotonic() - started)
                attack.requests += 1
                problem = attack.check(response)
                if problem is not None:
                    attack.failures.append(problem)

    started = time.monotonic()
    with ThreadPoolExecutor(len(planned)) as pool:
        list(pool.map(lambda a: attacker(a, started + seconds), planned))
    stop.set()
    pings, ping_errors = received.recv() if received.poll(60) else ([], ["the pinger did not report"])
    ping_process.join(30)
    metrics = httpx.get(f"{url}/metrics", timeout=30).json()
    bodies_mb = sum(len(a.body) for a in planned) / 2**20  # one request of each in flight at most
    ordered = sorted(pings)
    return SoakResult(
        seconds=round(time.monotonic() - started, 1),
        pings=len(pings),
        ping_max_s=round(max(pings, default=0.0), 3),
        ping_p99_s=round(ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0, 3),
        pings_over_limit=sum(1 for p in pings if p >= PING_LIMIT_S),
        ping_errors=len(ping_errors),
        idle_rss_mb=idle_mb,
        peak_rss_mb=float(metrics["peak_rss_mb"]),
        rss_bound_mb=round(idle_mb + BYTES_PER_BUDGET_PIXEL * budget_mpix * 1e6 / 2**20 + 2 * bodies_mb, 1),
        budget_peak_mpix=float(metrics.get("decode_budget_peak_mpix", 0.0)),
        attacks={
            a.name: {
                "requests": a.requests,
                "failures": a.failures[:3],
                "mean_s": round(statistics.fmean(a.seconds), 2) if a.seconds else None,
                "body_mb": round(len(a.body) / 2**20, 2),
            }
            for a in planned
        },
    )


def upload_images(s3: Any, bucket: str, count: int) -> list[str]:
    s3.create_bucket(Bucket=bucket)
    keys = []
    for path in sorted(COCO.glob("*.jpg"))[:count]:
        key = f"in/{path.name}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--real-lines", type=int, default=200, help="lines of the real-images manifest")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)

    from batch.local.container import ServingContainer
    from batch.local.moto_server import MotoServer
    from batch.settings import Settings

    settings = Settings.from_env({})
    with MotoServer() as moto:
        images = upload_images(moto.client("s3"), BUCKET, 16)
        container = ServingContainer(
            model_dir=Path(tempfile.mkdtemp(prefix="soak-model-")),
            environment={"POSE_MODEL": args.model, "POSE_ALLOWED_BUCKETS": BUCKET, **moto.environment},
            aws_environment={},
        ).start()
        try:
            planned = attacks(
                bucket=BUCKET,
                images=images,
                max_lines=settings.max_manifest_lines,
                max_imgsz=settings.max_imgsz,
                real_lines=args.real_lines,
            )
            result = soak(container.url, planned, seconds=args.seconds, budget_mpix=settings.decode_budget_mpix)
        finally:
            container.stop()
    report = {**asdict(result), "ok": result.ok}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
