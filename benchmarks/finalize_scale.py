"""Scale of the Batch Transform finaliser, fanned out (issue 25): the time from the job's end to
`_SUMMARY.json` as a function of images and concurrency, on the local stack's moto server, and its
extrapolation to 10 million images on S3.

Each run is the real path, with processes standing in for Lambda invocations: synthetic `.out` files as a
job leaves them (no inference), then the completion handler in a process of its own (it records the job
and queues the page tasks on the pages queue) and C long-lived page processes polling that queue, one task
at a time, as warm Lambda containers under the event source's MaximumConcurrency = C. The clock starts when
the completion handler starts ("the job ended") and stops at the summary's `finalized_at`. Each process
reports its peak RSS (VmHWM): memory per invocation.

    .venv/bin/python benchmarks/finalize_scale.py                       # the default matrix, ~5 minutes
    .venv/bin/python benchmarks/finalize_scale.py --manifest 25600 --images 1280 --concurrency 1 2

What the synthetic outputs hold (as before):
- manifest mode: one `.out` per 256-image shard, one JSON line per image with a realistic result (one
  person, 17 keypoints); 1 % error lines, and every 50th shard lacks its last line (missing_result).
- images mode: one `.out` per image, a transport envelope with the record and a 2 KB JPEG stand-in;
  1 % error records; every 500th image carries a 12 MB JPEG (streamed in 5 MiB parts); 1 % lack `.out`.

Honest limits: moto is one Python process answering a few hundred S3 calls a second on a shared 2-core
machine, so here concurrency stops paying at about 2 (moto is the bottleneck, not the finaliser); S3 from
Lambda answers each invocation's calls in 10-30 ms with no shared ceiling of that kind. So the
extrapolation takes the measured cost per task at concurrency 1 (moto's, an upper bound for S3), divides
the 10-million-image job's tasks over C invocations, adds the measured queueing and reduce costs and
Lambda's ramp-up, and checks it against S3's documented request rates per prefix.
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
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch import transport_envelope
from batch.local.moto_server import MotoServer
from batch.orchestration_settings import CompletionConfig
from batch.s3_listing import list_objects
from batch.transform import completion, fanout, outcomes
from batch.transform.plan import PAGE_SIZE, PLAN_ENV, JobPlan, Mode, Shard, build_shards

BUCKET = "posebatch-bench"
RESULTS = Path(__file__).resolve().parent / "results" / "finalize-scale.json"
TEN_MILLION = 10_000_000
TARGET_S = {"manifest": 600.0, "images": 3600.0}  # issue 25: at most 10 and 60 minutes
ACCOUNT_CONCURRENCY = 1000  # Lambda's default concurrent executions per account
LAMBDA_RAMP_S = 60.0  # SQS event sources add up to 300 concurrent invocations a minute: C <= 300 within it
# S3's documented rates per partitioned prefix (it partitions further under sustained load).
S3_PUT_PER_S, S3_GET_PER_S = 3500, 5500
# One SendMessageBatch from Lambda, at the high end (moto's queue slows as it grows: not a stand-in for it).
SQS_CALL_S = 0.030
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


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM belongs to the address space exec made. (`ru_maxrss` is not
    it: Linux carries the forking parent's high-water mark over into the child.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _clients(service: str) -> Any:
    import boto3

    return boto3.client(service)


# --- the invocations (child processes) -----------------------------------------------------------
def dispatch_process(event: dict[str, Any], queue_url: str) -> dict[str, Any]:
    """The completion handler, once: records the job and queues its tasks."""
    started = time.monotonic()
    completion.handle_event(event, CompletionConfig(pages_queue_url=queue_url), clients=_clients)
    return {"seconds": round(time.monotonic() - started, 3), "peak_rss_mb": peak_rss_mb()}


def page_process(queue_url: str, stop_file: Path) -> dict[str, Any]:
    """A warm page Lambda: one task at a time from the queue until told to stop."""
    sqs = _clients("sqs")
    tasks, busy = [], 0.0
    print("ready", flush=True)
    while not stop_file.exists():
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            started = time.monotonic()
            record = {"messageId": message["MessageId"], "body": message["Body"]}
            answer = fanout.handle_task_records({"Records": [record]}, clients=_clients, topic_arn=None, job_prefix="")
            seconds = time.monotonic() - started
            busy += seconds
            task = fanout.Task.parse(message["Body"])
            tasks.append({"pages": task.end - task.start, "seconds": round(seconds, 3)})
            if not answer["batchItemFailures"]:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return {"tasks": tasks, "busy_seconds": round(busy, 3), "peak_rss_mb": peak_rss_mb()}


# --- the driver ----------------------------------------------------------------------------------------
def fill(s3: Any, plan: JobPlan, workers: int = 16) -> float:
    """Write the job's `.out` files as the transform job would have left them."""
    started = time.monotonic()
    out = plan.transform_output_uri

    def put(rel: str, body: bytes) -> None:
        s3.put_object(Bucket=BUCKET, Key=out.child(rel + ".out").key, Body=body)

    record = json.dumps(RESULT).encode()
    small_jpeg, big_jpeg = b"\xff\xd8" + os.urandom(2048), b"\xff\xd8" + os.urandom(12 * 1024 * 1024)
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


def make_job(moto: MotoServer, mode: Mode, images: int) -> tuple[JobPlan, float]:
    s3 = moto.client("s3")
    name = f"posebatch-bench-{mode}-{images}"
    plan = JobPlan(
        name,
        mode,
        f"s3://{BUCKET}/in-{name}/",
        f"s3://{BUCKET}/out-{name}/",
        keys=[f"camera/{i // 1000:04d}/IMG_{i:07d}.jpg" for i in range(images)],
    )
    if mode == "manifest":
        plan.shards = build_shards(plan, 1)
    plan.save(s3)
    fill_s = fill(s3, plan)
    moto.client("sagemaker").create_transform_job(
        TransformJobName=name,
        ModelName="bench",
        Environment={PLAN_ENV: str(plan.plan_uri)},
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": plan.input}}},
        TransformOutput={"S3OutputPath": str(plan.transform_output_uri)},
        TransformResources={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1},
    )
    print(f"{mode}: {images} images, {plan.page_count} pages; outputs written in {fill_s:.1f} s", flush=True)
    return plan, fill_s


def reset(s3: Any, plan: JobPlan) -> None:
    """Forget a previous run's finalisation (the outputs it wrote are simply written again)."""
    keys = [obj["Key"] for obj in list_objects(s3, BUCKET, plan.root.child("finalized/").key)]
    keys += [plan.root.child("notified-Completed").key, plan.output_uri.child("_SUMMARY.json").key]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]})


def child(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def last_json(process: subprocess.Popen[str], timeout_s: float = 600) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"an invocation failed:\n{err[-4000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def run(moto: MotoServer, plan: JobPlan, concurrency: int, work: Path) -> dict[str, Any]:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    reset(s3, plan)
    queue = sqs.create_queue(QueueName=f"pages-{concurrency}", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    env = {**os.environ, **moto.environment}
    stop = work / f"stop-{plan.job_name}-{concurrency}"
    stop.unlink(missing_ok=True)
    pages = [child(["--page-process", queue, str(stop)], env) for _ in range(concurrency)]
    for process in pages:  # warm: each has imported everything and holds its clients
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    event = {
        "detail-type": completion.DETAIL_TYPE,
        "detail": {"TransformJobName": plan.job_name, "TransformJobStatus": "Completed"},
    }
    ended = time.time()
    dispatcher = last_json(child(["--dispatch", json.dumps(event), queue], env))
    summary = None
    while summary is None:
        summary = outcomes.existing_summary(s3, plan, "Completed")
        if summary is None:
            time.sleep(0.2)  # polling for the summary; the page processes run to the end on their own
    stop.touch()
    workers = [last_json(process) for process in pages]
    sqs.delete_queue(QueueUrl=queue)
    to_summary = datetime.fromisoformat(summary["finalized_at"]).timestamp() - ended
    tasks = [t for w in workers for t in w["tasks"]]
    result = {
        "mode": plan.mode,
        "images": plan.image_count,
        "pages": plan.page_count,
        "concurrency": concurrency,
        "seconds_to_summary": round(to_summary, 2),
        "images_per_second": round(plan.image_count / to_summary, 1),
        "done": summary["done"],
        "failed": summary["failed"],
        "dispatch_seconds": dispatcher["seconds"],
        "tasks": len(tasks),
        "task_seconds_mean": round(sum(t["seconds"] for t in tasks) / len(tasks), 3),
        "page_seconds_mean": round(sum(t["seconds"] for t in tasks) / sum(t["pages"] for t in tasks), 3),
        "summarize_seconds": summary["timings"]["summarize_seconds"],
        "peak_rss_mb": {"dispatcher": dispatcher["peak_rss_mb"], "pages": [w["peak_rss_mb"] for w in workers]},
    }
    print(f"  C={concurrency}: {result}", flush=True)
    return result


def queueing_rate(moto: MotoServer, tasks: int = 1000) -> float:
    """Tasks queued per second by `fanout.dispatch` (SendMessageBatch, 8 in flight) into moto, on a plan
    header of `tasks` one-page tasks (queueing reads nothing else of the plan). Recorded, not extrapolated:
    moto's queue costs more per message the longer it is, which SQS's does not."""
    plan = JobPlan("posebatch-queueing", "images", f"s3://{BUCKET}/q/", f"s3://{BUCKET}/q-out/", page_count=tasks)
    sqs = moto.client("sqs")
    queue = sqs.create_queue(QueueName="queueing")["QueueUrl"]
    started = time.monotonic()
    fanout.dispatch(moto.client, queue, plan, "Completed")
    rate = tasks / (time.monotonic() - started)
    sqs.delete_queue(QueueUrl=queue)
    print(f"queueing: {rate:.0f} tasks/s", flush=True)
    return rate


def extrapolate(mode: Mode, measured: dict[str, Any], concurrencies: list[int]) -> dict[str, Any]:
    """10 million images on S3 from the concurrency-1 run of the largest job of `mode` (see the module)."""
    images_per_page = PAGE_SIZE if mode == "images" else measured["images"] / measured["pages"]
    pages = -(-TEN_MILLION // int(images_per_page))
    tasks = -(-pages // fanout.TASK_PAGES[mode])
    groups = -(-pages // outcomes.GROUP_PAGES)
    # The handler's own start (describe, plan, job record) as measured, then its SendMessageBatch calls.
    dispatch_s = measured["dispatch_seconds"] + -(-tasks // 10) / 8 * SQS_CALL_S
    measured_groups = -(-measured["pages"] // outcomes.GROUP_PAGES)
    summarize_s = measured["summarize_seconds"] / measured_groups * groups
    work_s = pages * measured["page_seconds_mean"]
    # S3's floor if it never partitioned below the top-level prefixes: the PUTs of records and annotated
    # images (images mode) or of the error records and outcomes (manifest mode), the GETs of the .out files.
    if mode == "images":
        puts_per_prefix, gets = TEN_MILLION, TEN_MILLION
    else:
        puts_per_prefix, gets = TEN_MILLION // 100 + pages, pages
    s3_floor_s = max(puts_per_prefix / S3_PUT_PER_S, gets / S3_GET_PER_S)
    by_concurrency = {}
    for c in concurrencies:
        total = LAMBDA_RAMP_S + dispatch_s + work_s / c + summarize_s
        by_concurrency[str(c)] = {
            "seconds": round(max(total, s3_floor_s + summarize_s)),
            "minutes": round(max(total, s3_floor_s + summarize_s) / 60, 1),
            "within_target": max(total, s3_floor_s + summarize_s) <= TARGET_S[mode],
        }
    return {
        "pages": pages,
        "tasks": tasks,
        "groups": groups,
        "page_work_seconds": round(work_s),
        "dispatch_seconds": round(dispatch_s, 1),
        "summarize_seconds": round(summarize_s, 1),
        "lambda_ramp_seconds": LAMBDA_RAMP_S,
        "s3_floor_seconds": round(s3_floor_s),
        "target_seconds": TARGET_S[mode],
        "by_concurrency": by_concurrency,
        "basis": "concurrency-1 per-page cost on moto (an upper bound for S3); the handler's measured start plus "
        "its SendMessageBatch calls, 8 in flight at 30 ms each; the summary's measured cost per group; 60 s for "
        "Lambda's SQS ramp-up; S3's floor at 3,500 PUT/s and 5,500 GET/s per top-level prefix",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=int, nargs="*", default=[25_600, 102_400], help="job sizes")
    parser.add_argument("--images", type=int, nargs="*", default=[1_280, 5_120], help="job sizes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--extrapolate-to", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--dispatch", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--page-process", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dispatch:
        print(json.dumps(dispatch_process(json.loads(args.dispatch[0]), args.dispatch[1])))
        return
    if args.page_process:
        print(json.dumps(page_process(args.page_process[0], Path(args.page_process[1]))))
        return
    runs: list[dict[str, Any]] = []
    extrapolations: dict[str, Any] = {}
    started = time.monotonic()
    with MotoServer() as moto:
        moto.client("s3").create_bucket(Bucket=BUCKET)
        moto.client("sagemaker").create_model(
            ModelName="bench", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
        )
        work = Path(os.environ.get("TMPDIR", "/tmp"))
        queued_per_s = queueing_rate(moto)
        matrix: list[tuple[Mode, list[int]]] = [("manifest", args.manifest), ("images", args.images)]
        for mode, sizes in matrix:
            for images in sizes:
                plan, fill_s = make_job(moto, mode, images)
                for concurrency in args.concurrency:
                    runs.append({**run(moto, plan, concurrency, work), "outputs_write_seconds": round(fill_s, 1)})
            base = [r for r in runs if r["mode"] == mode and r["concurrency"] == min(args.concurrency)]
            if base:
                largest = max(base, key=lambda r: r["images"])
                extrapolations[mode] = extrapolate(mode, largest, args.extrapolate_to)
    document = {
        "benchmark": "finalize_scale (fanned out)",
        "backend": "moto server (the local stack's S3, SQS, SNS); one process per invocation: the completion "
        "handler, and C warm page processes polling the pages queue",
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "wall_seconds": round(time.monotonic() - started, 1),
        "account_concurrency_default": ACCOUNT_CONCURRENCY,
        "queued_tasks_per_second_on_moto": round(queued_per_s),
        "runs": runs,
        "extrapolation_10m_on_s3": extrapolations,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    for name, found in extrapolations.items():
        times = ", ".join(f"C={c}: {v['minutes']} min" for c, v in found["by_concurrency"].items())
        print(f"{name}, 10M images on S3: {times}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
