#!/usr/bin/env python3
"""Issue 14's scenario by hand, with figures: a burst of COCO images dropped under the local stack's
async input prefix, the serving container SIGKILLed once `--kill-after` records exist, then a wait
until every image has a record at its mirrored keypoints key (or the deadline). Prints inputs,
results, error records, missing, failure objects (invocations that failed on the endpoint), the time
until the replacement container passed /ping and until the last record, and whether a drop after
the fault got its result. Not a CI test (minutes on two cores); tests/async_/test_async_faults.py
runs a small version.

Usage: .venv/bin/python benchmarks/async_kill_burst.py [--images 240] [--kill-after 90]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COCO = REPO.parent / "shared" / "data" / "coco-val-mini" / "images"
MODEL = REPO.parent / "shared" / "models" / "yolo11n-pose.pt"
BUCKET, IN, OUT = "posebatch-burst", "async/input/", "async/output/"


def keys(s3: Any, prefix: str) -> list[str]:
    from batch.s3_listing import list_objects

    return [o["Key"] for o in list_objects(s3, BUCKET, prefix)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--kill-after", type=int, default=90)
    parser.add_argument("--deadline", type=float, default=900.0)
    args = parser.parse_args()

    from batch.local.sagemaker.async_deployment import deploy_local_endpoint
    from batch.local.sagemaker.async_endpoint_service import endpoints_of
    from batch.local.stack import EmbeddedStack
    from batch.model_package import package_checkpoint
    from batch.orchestration_settings import RetryPolicy

    sources = sorted(COCO.glob("*.jpg"))
    home = Path(tempfile.mkdtemp(prefix="posebatch-burst-"))
    with EmbeddedStack(home, bucket=BUCKET) as stack:
        s3 = stack.client("s3")
        archive = package_checkpoint(MODEL, home / "model.tar.gz")
        s3.upload_file(str(archive), BUCKET, "models/model.tar.gz")
        deployment = deploy_local_endpoint(
            stack,
            model_data_url=f"s3://{BUCKET}/models/model.tar.gz",
            input_prefix=IN,
            output_prefix=OUT,
            retry=RetryPolicy(attempts=3, backoff_s=2.0),
            startup_timeout_s=600,
        )
        runner = endpoints_of(stack).runner(deployment.endpoint_name)
        assert runner is not None
        instance = runner.instances[0]
        bodies = [p.read_bytes() for p in sources]
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda i: s3.put_object(Bucket=BUCKET, Key=f"{IN}burst/{i:04d}.jpg", Body=bodies[i % len(bodies)]),
                    range(args.images),
                )
            )
        while len(keys(s3, f"{OUT}keypoints/burst/")) < args.kill_after:
            time.sleep(0.2)
        done_at_kill = len(keys(s3, f"{OUT}keypoints/burst/"))
        instance.container.kill()
        killed = time.monotonic()
        deadline = killed + args.deadline
        while len(keys(s3, f"{OUT}keypoints/burst/")) < args.images and time.monotonic() < deadline:
            time.sleep(0.5)
        last_record = time.monotonic()
        records = [
            json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys(s3, f"{OUT}keypoints/burst/")
        ]
        errors = [r["error"]["code"] for r in records if "error" in r]
        s3.put_object(Bucket=BUCKET, Key=f"{IN}after/person.jpg", Body=bodies[0])
        after_deadline = time.monotonic() + 180
        while not keys(s3, f"{OUT}keypoints/after/") and time.monotonic() < after_deadline:
            time.sleep(0.5)
        after = keys(s3, f"{OUT}keypoints/after/")
        after_ok = bool(after) and "persons" in json.loads(s3.get_object(Bucket=BUCKET, Key=after[0])["Body"].read())
        figures = {
            "inputs": args.images,
            "records_when_killed": done_at_kill,
            "results": len(records) - len(errors),
            "error_records": len(errors),
            "error_codes": sorted(set(errors)),
            "missing": args.images - len(records),
            "failure_objects": len(keys(s3, f"{OUT}_async/failures/")),
            "replacements": instance.replacements,
            "kill_to_replacement_in_service_s": round(instance.replaced_at[-1] - killed, 1)
            if instance.replaced_at
            else None,
            "kill_to_last_record_s": round(last_record - killed, 1),
            "burst_total_s": round(last_record - started, 1),
            "drop_after_fault_got_result": after_ok,
        }
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
