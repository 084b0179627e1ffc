"""Which Batch Transform mode for large jobs of real photos: the same photos through `--mode images` and
`--mode manifest` on the embedded stack (real container, real model, CPU), side by side in one run.

Photos are made at run time from the COCO images in ../shared (`tests/transform/photos.py`): 12 MP JPEGs
of about 4 MB, a third stored sideways with an EXIF orientation, and one PNG over 10 MB. Per mode it
reports the job's images/s, the finalisation time (the completion handler's, from the summary) and the
bytes that pass through the finaliser (the job's `.out` files, which it reads; in images mode it also
writes every annotated JPEG again).

    .venv/bin/python benchmarks/mode_choice.py --photos 24

Both modes run with the launcher's defaults (manifest mode reads the photos under the container's own
S3 read limit, `POSE_MAX_S3_OBJECT_MB`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.commands.transform import execute
from batch.local.stack import EmbeddedStack
from batch.model_package import upload_model
from batch.s3_listing import list_objects
from batch.transform.launcher import LaunchOptions
from tests.transform.photos import WITH_PEOPLE, large_png, phone_jpeg

BUCKET = "posebatch-modes"
MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "yolo11n-pose.pt"
RESULTS = Path(__file__).resolve().parent / "results" / "mode-choice.json"


def make_photos(count: int) -> dict[str, bytes]:
    photos = {"screens/capture.png": large_png(WITH_PEOPLE[1], seed=99).body}
    for i in range(count - 1):
        name = WITH_PEOPLE[i % len(WITH_PEOPLE)]
        photos[f"phone/IMG_{i:04d}.jpg"] = phone_jpeg(name, rotated=i % 3 == 0, seed=i).body
    return photos


def prefix_bytes(s3: Any, prefix: str) -> tuple[int, int]:
    objects = list(list_objects(s3, BUCKET, prefix))
    return len(objects), sum(int(o["Size"]) for o in objects)


def run_mode(stack: EmbeddedStack, model_data: str, mode: str) -> dict[str, Any]:
    s3 = stack.client("s3")
    output = f"out-{mode}/"
    options = LaunchOptions(
        input=f"s3://{BUCKET}/photos/",
        output=f"s3://{BUCKET}/{output}",
        model_data=model_data,
        mode=mode,  # type: ignore[arg-type]
        instance_type="ml.m5.xlarge",
    )
    started = time.monotonic()
    code, summary = execute(
        options, wait=True, poll_s=0.5, summary_wait_s=300, show_progress=False, clients=stack.client
    )
    wall = time.monotonic() - started
    assert summary is not None and code == 0, summary
    out_files, out_bytes = prefix_bytes(s3, f"{output}_transform/{summary['job_name']}/out/")
    _, annotated_bytes = prefix_bytes(s3, f"{output}annotated/")
    timings = summary["timings"]
    return {
        "mode": mode,
        "images": summary["images"],
        "done": summary["done"],
        "failed": summary["failed"],
        "transform_seconds": timings["transform_seconds"],
        "images_per_second": timings["images_per_second"],
        "finalize_seconds": timings["finalize_seconds"],
        "summarize_seconds": timings.get("summarize_seconds"),
        "launch_to_summary_seconds": round(wall, 1),
        "out_files": out_files,
        "out_megabytes_read_by_finaliser": round(out_bytes / 1e6, 1),
        "annotated_megabytes": round(annotated_bytes / 1e6, 1),
        "finaliser_megabytes_moved": round((out_bytes + (annotated_bytes if mode == "images" else 0)) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    photos = make_photos(args.photos)
    print(f"{len(photos)} photos, {sum(map(len, photos.values())) / 1e6:.0f} MB", flush=True)
    with tempfile.TemporaryDirectory() as home:
        stack = EmbeddedStack(Path(home), bucket=BUCKET).start()
        try:
            s3 = stack.client("s3")
            for rel, body in photos.items():
                s3.put_object(Bucket=BUCKET, Key=f"photos/{rel}", Body=body)
            model_data = upload_model(s3, BUCKET, MODEL, stack.home)
            results = []
            for mode in ("images", "manifest"):
                results.append(run_mode(stack, model_data, mode))
                print(json.dumps(results[-1]), flush=True)
        finally:
            stack.stop()
    document = {
        "benchmark": "mode_choice",
        "backend": "embedded stack, 1 instance, CPU",
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "photos": len(photos),
        "input_megabytes": round(sum(map(len, photos.values())) / 1e6, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
