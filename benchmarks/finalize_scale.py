"""Scale of the Batch Transform finaliser (issue 9): synthetic job outputs for many images on the local
stack's moto server (no inference), then the completion handler run exactly as the Lambda runs it, one
invocation at a time: each invocation is a fresh process (its peak RSS is what Lambda's memory limit
sees) that calls `batch.transform.completion.handle_event` with a time budget; when the budget runs out
the handler puts its continuation event on (moto's) EventBridge, a rule routes it to an SQS queue, and
the next invocation starts from it, until one writes `_SUMMARY.json` and notifies SNS.

    .venv/bin/python benchmarks/finalize_scale.py                     # manifest 100,000 + images 5,120
    .venv/bin/python benchmarks/finalize_scale.py --manifest-images 20000 --images-images 1024 --budget-s 10

What the synthetic outputs hold:
- manifest mode: one `.out` per 256-image shard, one JSON line per image with a realistic result (one
  person, 17 keypoints); 1 % error lines, and every 50th shard lacks its last line (missing_result).
- images mode: one `.out` per image, a transport envelope with the record and a 2 KB JPEG stand-in;
  1 % error records; every 500th image carries a 12 MB JPEG (streamed in 5 MiB parts); 1 % lack `.out`.

Honest limits: moto's server answers ~150 S3 calls/s on this shared 2-core machine (S3 from a Lambda
does thousands, at 10-30 ms each), so absolute times are moto's; per-page time, the number of pages and
the peak memory per invocation are what scale. Images mode does a GET and two PUTs per image, so it is
run at a smaller size here and extrapolated per page.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch import transport_envelope
from batch.local.moto_server import MotoServer
from batch.orchestration_settings import DEFAULT_FINALIZE_BUDGET_S
from batch.transform import completion
from batch.transform.plan import PAGE_SIZE, PLAN_ENV, JobPlan, Mode, Shard, build_shards

BUCKET = "posebatch-bench"
RESULTS = Path(__file__).resolve().parent / "results" / "finalize-scale.json"
TEN_MILLION = 10_000_000
PERSON = {
    "score": 0.91,
    "box": [48.1, 398.2, 245.3, 902.6],
    "keypoints": [[141.2 + i, 446.0 + i, 0.97] for i in range(17)],
}
RESULT = {
    "model": "yolo11n-pose.pt",
    "image": {"width": 4032, "height": 3024},
    "keypoint_names": [f"kp{i}" for i in range(17)],
    "skeleton": [[15, 13], [13, 11]],
    "persons": [PERSON],
    "thresholds": {"conf": 0.25, "iou": 0.7, "max_det": 300, "imgsz": 640},
}
ERROR = {"error": {"code": "invalid_image", "message": "cannot identify image file"}}


# --- one invocation (a child process, like one Lambda invocation) --------------------------------
def invoke(event: dict[str, Any], budget_s: float, topic_arn: str) -> dict[str, Any]:
    import boto3

    clients = {name: boto3.client(name) for name in ("s3", "sagemaker", "sns", "events")}
    started = time.monotonic()
    summary = completion.handle_event(
        event, topic_arn=topic_arn, clients=clients.__getitem__, deadline=started + budget_s
    )
    peak_kb = peak_rss_kb()
    return {
        "start_page": int((event.get("detail") or {}).get("next_page", 0)),
        "seconds": round(time.monotonic() - started, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "summary": summary is not None,
        "summary_failures_listed": len(summary["failures"]) if summary else None,
    }


def peak_rss_kb() -> int:
    """This process's own peak RSS: VmHWM belongs to the address space exec made. (`ru_maxrss` is not
    it: Linux carries the forking parent's high-water mark over into the child.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --- the driver --------------------------------------------------------------------------------------
def fill(s3: Any, plan: JobPlan, workers: int = 16) -> float:
    """Write the job's `.out` files as the transform job would have left them."""
    started = time.monotonic()
    out = plan.transform_output_uri

    def put(rel: str, body: bytes) -> None:
        key = out.child(rel + ".out").key
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    record = json.dumps(RESULT).encode()
    small_jpeg = b"\xff\xd8" + os.urandom(2048)
    big_jpeg = b"\xff\xd8" + os.urandom(12 * 1024 * 1024)
    error = json.dumps(ERROR).encode()

    def image(index_rel: tuple[int, str]) -> None:
        index, rel = index_rel
        if index % 100 == 37:
            return  # no .out: no_transform_output
        if index % 100 == 11:
            put(rel, error)
        else:
            put(rel, transport_envelope.encode(record, big_jpeg if index % 500 == 250 else small_jpeg))

    def shard(index_shard: tuple[int, Shard]) -> None:
        index, item = index_shard
        images = item.images[:-1] if index % 50 == 49 else item.images
        lines = []
        for i, rel in enumerate(images):
            uri = str(plan.image_uri(rel))
            if i % 100 == 11:
                lines.append({"image": uri, "status": "error", "error": ERROR["error"]})
            else:
                lines.append({"image": uri, "status": "ok", "result": RESULT, "outputs": {}})
        put(item.rel, "".join(json.dumps(line) + "\n" for line in lines).encode())

    with ThreadPoolExecutor(workers) as pool:
        if plan.mode == "images":
            list(pool.map(image, enumerate(plan.keys)))
        else:
            list(pool.map(shard, enumerate(plan.shards)))
    return time.monotonic() - started


def run_mode(moto: MotoServer, mode: Mode, images: int, budget_s: float, topic: str, queue: str) -> dict[str, Any]:
    s3, sagemaker, sqs = moto.client("s3"), moto.client("sagemaker"), moto.client("sqs")
    plan = JobPlan(
        f"posebatch-bench-{mode}",
        mode,
        f"s3://{BUCKET}/in-{mode}/",
        f"s3://{BUCKET}/out-{mode}/",
        keys=[f"camera/{i // 1000:04d}/IMG_{i:07d}.jpg" for i in range(images)],
    )
    if mode == "manifest":
        plan.shards = build_shards(plan, 1)
    started = time.monotonic()
    plan.save(s3)
    plan_s = time.monotonic() - started
    fill_s = fill(s3, plan)
    print(f"{mode}: {images} images, {plan.page_count} pages; plan {plan_s:.1f} s, outputs {fill_s:.1f} s", flush=True)
    sagemaker.create_transform_job(
        TransformJobName=plan.job_name,
        ModelName="bench",
        Environment={PLAN_ENV: str(plan.plan_uri)},
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": plan.input}}},
        TransformOutput={"S3OutputPath": str(plan.transform_output_uri)},
        TransformResources={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1},
    )
    event: dict[str, Any] | None = {
        "source": "aws.sagemaker",
        "detail-type": completion.DETAIL_TYPE,
        "detail": {"TransformJobName": plan.job_name, "TransformJobStatus": "Completed"},
    }
    invocations = []
    while event is not None:
        child = subprocess.run(
            [sys.executable, __file__, "--invoke", json.dumps(event), "--budget-s", str(budget_s), "--topic", topic],
            capture_output=True,
            text=True,
            env={**os.environ, **moto.environment},
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"invocation failed:\n{child.stderr[-4000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        invocations.append(result)
        print(f"  invocation {len(invocations)}: {result}", flush=True)
        event = None if result["summary"] else next_continuation(sqs, queue)
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out-{mode}/_SUMMARY.json")["Body"].read())
    return report(plan, summary, invocations, plan_s, fill_s, budget_s)


def next_continuation(sqs: Any, queue: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            return dict(json.loads(message["Body"]))
    raise TimeoutError("no continuation event arrived")


def report(
    plan: JobPlan,
    summary: dict[str, Any],
    invocations: list[dict[str, Any]],
    plan_s: float,
    fill_s: float,
    budget_s: float,
) -> dict[str, Any]:
    pages = plan.page_count
    page_s = summary["timings"]["finalize_seconds"] / pages  # the pages' own times, summed by the finaliser
    summarize_s = summary["timings"]["summarize_seconds"]  # reading every page's outcome, in the last invocation
    pages_10m = -(-TEN_MILLION // (plan.image_count // pages))
    per_invocation = max(1, int(DEFAULT_FINALIZE_BUDGET_S // page_s))
    return {
        "mode": plan.mode,
        "images": plan.image_count,
        "pages": pages,
        "images_per_page": PAGE_SIZE if plan.mode == "images" else plan.image_count // pages,
        "done": summary["done"],
        "failed": summary["failed"],
        "plan_write_seconds": round(plan_s, 1),
        "outputs_write_seconds": round(fill_s, 1),
        "budget_seconds_per_invocation": budget_s,
        "invocations": invocations,
        "invocation_count": len(invocations),
        "total_seconds": round(sum(i["seconds"] for i in invocations), 1),
        "seconds_per_page": round(page_s, 3),
        "images_per_second": round(plan.image_count / sum(i["seconds"] for i in invocations), 1),
        "peak_rss_mb_max": max(i["peak_rss_mb"] for i in invocations),
        "summarize_seconds": summarize_s,
        "extrapolation_10m": {
            "pages": pages_10m,
            "page_seconds_total": round(pages_10m * page_s),
            "summarize_seconds": round(summarize_s * pages_10m / pages, 1),
            "invocations_at_default_budget": -(-pages_10m // per_invocation),
            "default_budget_seconds": DEFAULT_FINALIZE_BUDGET_S,
            "peak_rss_mb": "as measured: one page's work, independent of the job's size",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest-images", type=int, default=100_000)
    parser.add_argument("--images-images", type=int, default=5_120)
    parser.add_argument("--budget-s", type=float, default=20.0, help="finalising time per invocation")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--invoke", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.invoke:
        print(json.dumps(invoke(json.loads(args.invoke), args.budget_s, args.topic)))
        return
    results = []
    with MotoServer() as moto:
        s3, sqs, sns, events = (moto.client(n) for n in ("s3", "sqs", "sns", "events"))
        s3.create_bucket(Bucket=BUCKET)
        moto.client("sagemaker").create_model(
            ModelName="bench", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
        )
        topic = sns.create_topic(Name=completion.TOPIC_NAME)["TopicArn"]
        queue = sqs.create_queue(QueueName="continuations")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="continue", EventPattern=json.dumps(completion.CONTINUE_PATTERN), State="ENABLED")
        events.put_targets(Rule="continue", Targets=[{"Id": "q", "Arn": queue_arn}])
        runs: list[tuple[Mode, int]] = [("manifest", args.manifest_images), ("images", args.images_images)]
        for mode, count in runs:
            if count:
                results.append(run_mode(moto, mode, count, args.budget_s, topic, queue))
    document = {
        "benchmark": "finalize_scale",
        "backend": "moto server (local stack's S3, SQS, SNS, EventBridge), one process per invocation",
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    for result in results:
        print(
            f"{result['mode']}: {result['images']} images in {result['invocation_count']} invocations, "
            f"{result['seconds_per_page']} s/page, peak RSS {result['peak_rss_mb_max']} MB; "
            f"10M: {result['extrapolation_10m']}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
