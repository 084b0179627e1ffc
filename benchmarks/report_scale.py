#!/usr/bin/env python3
"""How `pose-batch report` scales: the same report over jobs of growing size, side by side in one run.

Each job is written in the mirrored layout (keypoints/<rel>.json, annotated/<rel>), 1,000 records per folder,
from one real record (the model's result on a COCO image) with its persons' confidences jittered; 1% are error
records. Each report runs in a fresh process, so its peak RSS is its own. A bounded report has a flat peak RSS
and a constant time per record; `--s3` also runs the smallest job through the local S3 (moto), page by page.

Usage: .venv/bin/python benchmarks/report_scale.py --record some/result.json [--sizes 10000 100000] [--s3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ANNOTATED = b"\xff\xd8" + b"\x00" * 16  # never decoded: only the first --thumbnails are read


def write_job(root: Path, template: dict[str, Any], size: int) -> None:
    rng = random.Random(size)
    for index in range(size):
        folder = f"part{index // 1000:05d}"
        rel = f"{folder}/img{index:08d}.jpg"
        (root / "keypoints" / folder).mkdir(parents=True, exist_ok=True)
        if index % 100 == 99:
            record: dict[str, Any] = {"error": {"code": "invalid_image", "message": "the image could not be decoded"}}
        else:
            record = dict(template)
            record["persons"] = [
                {**p, "keypoints": [[x, y, min(1.0, c * rng.uniform(0.5, 1.5))] for x, y, c in p["keypoints"]]}
                for p in template["persons"]
            ]
            if index < 100:
                (root / "annotated" / folder).mkdir(parents=True, exist_ok=True)
                (root / "annotated" / rel).write_bytes(ANNOTATED)
        (root / "keypoints" / f"{rel}.json").write_text(json.dumps(record))


def measure(location: str, env: dict[str, str]) -> dict[str, float]:
    """One report in a fresh process: wall seconds and that process's peak RSS."""
    code = (
        "import json, resource, sys, time\n"
        "from batch.report import build_report\n"
        "started = time.monotonic()\n"
        "outcome = build_report(sys.argv[1])\n"
        "print(json.dumps({'seconds': time.monotonic() - started, 'records': outcome.stats.images,\n"
        "  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, location], capture_output=True, text=True, env=env, check=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def upload(root: Path, s3: Any, bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    files = [p for p in root.rglob("*") if p.is_file()]
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda p: s3.put_object(Bucket=bucket, Key=p.relative_to(root).as_posix(), Body=p.read_bytes()), files
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", type=Path, required=True, help="one PoseResult JSON to replicate")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--s3", action="store_true", help="also the smallest size through moto's S3")
    args = parser.parse_args()
    template = json.loads(args.record.read_text())
    template.pop("annotated_jpeg_base64", None)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    print(f"record: {len(template['persons'])} persons x {len(template['keypoint_names'])} keypoints")
    print(f"{'job':>22} {'records':>9} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            root = Path(tmp, f"job{size}")
            write_job(root, template, size)
            figures = measure(str(root), env)
            rate = figures["records"] / figures["seconds"]
            print(
                f"{'local ' + str(size):>22} {figures['records']:>9,.0f} {figures['seconds']:>8.1f} "
                f"{rate:>10,.0f} {figures['peak_rss_mb']:>12,.0f}"
            )
        if args.s3:
            from batch.local.moto_server import MotoServer

            size = min(args.sizes)
            with MotoServer() as moto:
                s3 = moto.client("s3")
                s3.create_bucket(Bucket="bench")
                upload(Path(tmp, f"job{size}"), s3, "bench")
                figures = measure("s3://bench/", {**env, **moto.environment})
            rate = figures["records"] / figures["seconds"]
            print(
                f"{'moto S3 ' + str(size):>22} {figures['records']:>9,.0f} {figures['seconds']:>8.1f} "
                f"{rate:>10,.0f} {figures['peak_rss_mb']:>12,.0f}"
            )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this driver's own peak RSS: {own:,.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
