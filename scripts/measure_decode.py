"""Full vs reduced (DCT-scaled) JPEG decoding on 12 MP phone-style photos: time and memory.

Not a test: a measurement to run by hand. The photos are made at run time from ../shared's COCO
images (upscaled to 4032 px with noise, about 3-4 MB each) and never kept. Each way of decoding runs
in its own process, so its peak RSS is its own.

    .venv/bin/python scripts/measure_decode.py [--count 12] [--side 640]

Ways: pillow-full (what the server did before), pillow-draft (Pillow's draft(), what it does now),
simplejpeg (libjpeg-turbo binding, min_width/min_height = DCT scaling too; only if importable).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WAYS = ("pillow-full", "pillow-draft", "simplejpeg")


def vm_hwm() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def measure(way: str, folder: Path, side: int) -> dict[str, float]:
    """Runs in the child: decode every photo the given way, upright, to an RGB array."""
    import numpy as np

    from batch.inference.decode import decode_image

    if way == "simplejpeg":
        import simplejpeg
    files = [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]
    before = vm_hwm()
    times, shapes = [], set()
    for data in files:
        start = time.perf_counter()
        if way == "pillow-full":
            rgb = decode_image(data, max_pixels=10**9).rgb
        elif way == "pillow-draft":
            rgb = decode_image(data, max_pixels=10**9, min_side=side).rgb
        else:  # no EXIF handling in simplejpeg: the photos here are stored upright
            header = simplejpeg.decode_jpeg_header(data)
            scale = max(s for s in (1, 2, 4, 8) if max(header[:2]) / s >= side)
            rgb = simplejpeg.decode_jpeg(data, "RGB", min_height=header[0] // scale, min_width=header[1] // scale)
        times.append(time.perf_counter() - start)
        shapes.add(tuple(np.shape(rgb)))
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "images_per_s": round(len(times) / sum(times), 1),
        "peak_rss_growth_mb": round((vm_hwm() - before) / 2**20, 1),
        "shapes": sorted(str(s) for s in shapes),  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--side", type=int, default=640, help="model input (imgsz) the reduced decode must cover")
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.folder, args.side)))
        return 0
    sys.path.insert(0, str(REPO))
    from benchmarks.photos import phone_jpeg

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = []
        for n, path in enumerate(
            sorted((REPO.parent / "shared/data/coco-val-mini/images").glob("*.jpg"))[: args.count]
        ):
            data = phone_jpeg(path)
            sizes.append(len(data))
            (folder / f"{n:03d}.jpg").write_bytes(data)
        mean_mb = statistics.mean(sizes) / 1e6
        print(f"{args.count} photos, 4032 px, mean {mean_mb:.1f} MB; the reduced decode covers {args.side} px")
        for way in WAYS:
            command = [sys.executable, __file__, "--child", way, "--folder", str(folder), "--side", str(args.side)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{way:13s} unavailable: {last}")
                continue
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{way:13s} {figures['median_ms']:7.1f} ms/image  {figures['images_per_s']:6.1f} img/s (one core)"
                f"  peak RSS +{figures['peak_rss_growth_mb']:.0f} MB  decoded {', '.join(figures['shapes'])}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
