#!/usr/bin/env python3
"""The serverless endpoint's cold start on the local stack: `--runs` fresh serverless endpoints, each deployed
the way `pose-batch deploy --realtime --serverless` deploys it, then called with one COCO image through plain
boto3 `invoke_endpoint`: the first call finds no container (cold), the next ones a warm one.

Reported per run and as medians, in seconds:
- `cold_start`: from the container's start to its first answer (what the stand-in records);
- `model_load`: of which, until the container passed /ping (process start, imports, model load);
- `first_request`: the first call as the client saw it (cold start plus the HTTP path);
- `warm_request`: the median of `--warm` calls after it.

On AWS a cold start adds the provisioning of the serverless capacity and the image pull to what is measured
here (the image is several GB with torch): docs/realtime-and-registry.md says how to read the figure.

Usage: .venv/bin/python benchmarks/serverless_cold_start.py [--runs 3] [--warm 5] [--backend auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COCO = REPO.parent / "shared" / "data" / "coco-val-mini" / "images"
MODEL = REPO.parent / "shared" / "models" / "yolo11n-pose.pt"
BUCKET = "posebatch-cold-start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh serverless endpoints, one after the other")
    parser.add_argument("--warm", type=int, default=5, help="warm calls after each cold one")
    parser.add_argument("--backend", default="auto", help="POSE_BACKEND of the container (default: auto)")
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="share one exported-model cache between the runs (default: each container starts with an empty "
        "one, as a new container on AWS does: the image keeps the cache under /tmp)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")

    from batch.deploy.realtime_endpoint import RealtimeEndpointSpec, Serverless, deploy
    from batch.local.sagemaker.async_deployment import LOCAL_IMAGE, LOCAL_ROLE
    from batch.local.sagemaker.endpoint_service import endpoints_of
    from batch.local.stack import EmbeddedStack
    from batch.model_package import package_checkpoint
    from batch.serving_model import ServingModel
    from benchmarks.throughput import cpu_model

    image = sorted(COCO.glob("*.jpg"))[0].read_bytes()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(Path(tmp) / "stack", bucket=BUCKET) as stack:
        archive = package_checkpoint(MODEL, Path(tmp) / "model.tar.gz")
        stack.client("s3").upload_file(str(archive), BUCKET, "models/model.tar.gz")
        sagemaker, runtime = stack.client("sagemaker"), stack.client("sagemaker-runtime")
        for run in range(args.runs):
            spec = RealtimeEndpointSpec(
                endpoint_name=f"cold-start-{run}",
                model=ServingModel(LOCAL_IMAGE, f"s3://{BUCKET}/models/model.tar.gz"),
                execution_role_arn=LOCAL_ROLE,
                serverless=Serverless(args.memory_mb, 5),
                environment={
                    "POSE_BACKEND": args.backend,
                    "POSE_ONNX_CACHE_DIR": str(Path(tmp) / ("cache" if args.warm_cache else f"cache-{run}")),
                },
            )
            deploy(spec, sagemaker, poll_s=0.5)

            def call(name: str = spec.endpoint_name) -> float:
                started = time.monotonic()
                answer = runtime.invoke_endpoint(EndpointName=name, Body=image, ContentType="image/jpeg")
                json.loads(answer["Body"].read())
                return time.monotonic() - started

            first = call()
            warm = [call() for _ in range(args.warm)]
            (cold,) = endpoints_of(stack).fleet(spec.endpoint_name).cold_starts
            runs.append(
                {
                    "cold_start": round(cold.seconds, 2),
                    "model_load": round(cold.ping_seconds, 2),
                    "first_request": round(first, 2),
                    "warm_request": round(statistics.median(warm), 3),
                }
            )
            print(json.dumps({"run": run, **runs[-1]}), flush=True)
            sagemaker.delete_endpoint(EndpointName=spec.endpoint_name)
    report = {
        "cpu": cpu_model() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_after": [round(x, 1) for x in os.getloadavg()],  # other work on the machine meanwhile
        "backend": args.backend,
        "exported_model_cache": "shared" if args.warm_cache else "empty at each start",
        "runs": runs,
        "median": {key: statistics.median(r[key] for r in runs) for key in runs[0]},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
