"""Videos through the three flows with the real container and model on the local stack: `pose-batch
predict`, a video dropped under the async input prefix, and `transform --mode manifest` give their two
outputs at the interface's paths, and identical frame records for the same file; a bad video gets its
`invalid_video` record at `keypoints/<rel>.jsonl` in each; images mode refuses videos."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from batch.async_client import AsyncPoseClient, Outcome
from batch.cli import build_parser
from batch.commands.request_options import as_custom_attributes
from batch.commands.transform import execute
from batch.polling import poll
from batch.report import ReportOutcome, build_report
from batch.transform.launcher import LaunchOptions, build_plan
from batch.transform.plan import JobPlan
from tests.cli.commands import environment, pose_batch
from tests.conftest import MODEL_PATH
from tests.transform.jobs import TransformStack, objects
from tests.video.clips import Scene, write_clip
from tests.video.conftest import WALK, WALK_FRAMES

pytestmark = pytest.mark.slow

BUCKET = "posebatch-video"
ASYNC_IN, ASYNC_OUT = "async/input/", "async/output/"
BATCH_IN, BATCH_OUT = "videos/input/", "videos/output/"
BROKEN = b"this is a text file with a video's name\n" * 8


@dataclass
class Flows:
    inputs: dict[str, bytes]  # rel -> file
    predict: dict[str, bytes]  # output key (keypoints/..., annotated/...) -> bytes, per flow
    asynchronous: dict[str, bytes]
    manifest: dict[str, bytes]
    summary: dict[str, Any]
    stdout: str
    images_mode: JobPlan
    s3_report: ReportOutcome
    submitted: list[Outcome]


def clips(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    walk = write_clip(folder / "walk.mp4", WALK, WALK_FRAMES)
    phone = write_clip(folder / "phone.mov", Scene(width=240, height=320, person_height=260, step=2), 4, rotation=-90)
    return {"clips/walk.mp4": walk.read_bytes(), "phone.mov": phone.read_bytes(), "bad/broken.mp4": BROKEN}


def run_predict(inputs: dict[str, bytes], tmp: Path) -> tuple[dict[str, bytes], str]:
    source, out = tmp / "in", tmp / "out"
    for rel, body in inputs.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(body)
    done = pose_batch("predict", str(source), "--out", str(out), "--model", str(MODEL_PATH),
                      cwd=tmp, env=environment(tmp))  # fmt: skip
    assert done.returncode == 1, done.stderr  # one input (broken.mp4) failed
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    return files, done.stdout


def run_async(stack: TransformStack, inputs: dict[str, bytes]) -> tuple[dict[str, bytes], list[Outcome]]:
    from batch.local.sagemaker.async_deployment import deploy_local_endpoint

    deployment = deploy_local_endpoint(
        stack.stack,
        model_data_url=stack.model_data,
        input_prefix=ASYNC_IN,
        output_prefix=ASYNC_OUT,
        startup_timeout_s=300,
        write_state_file=False,
    )
    s3 = stack.stack.client("s3")
    for rel, body in inputs.items():
        s3.put_object(Bucket=BUCKET, Key=ASYNC_IN + rel, Body=body)
    wanted = {f"keypoints/{rel}.jsonl" for rel in inputs}

    def arrived() -> dict[str, bytes] | None:
        found = objects(s3, BUCKET, ASYNC_OUT)
        return found if wanted <= found.keys() else None

    outputs = poll(arrived, timeout_s=240, interval_s=0.5, on_timeout=lambda: "async video outputs did not arrive")
    # `submit`'s client on a video and a bad one: its outcome is the header line (read alone) or the error record
    # with the command's video flags, as `pose-batch submit --frame-stride 2 --no-track` sends them
    flags = build_parser().parse_args(["submit", "s3://x/", "--frame-stride", "2", "--no-track"])
    client = AsyncPoseClient(deployment.endpoint_name, clients=stack.stack.client, options=as_custom_attributes(flags))
    uris = [f"s3://{BUCKET}/{ASYNC_IN}{rel}" for rel in ("phone.mov", "bad/broken.mp4")]
    root = f"s3://{BUCKET}/{ASYNC_IN}"  # the same keys as the S3 events gave: the outputs are replaced, not added
    submitted = [o for uri in uris for o in asyncio.run(client.run(uri, wait=True, timeout_s=180, input_root=root))]
    return outputs, submitted


def run_manifest(stack: TransformStack, inputs: dict[str, bytes]) -> tuple[dict[str, bytes], dict[str, Any]]:
    s3 = stack.stack.client("s3")
    for rel, body in inputs.items():
        s3.put_object(Bucket=BUCKET, Key=BATCH_IN + rel, Body=body)
    options = LaunchOptions(
        input=f"s3://{BUCKET}/{BATCH_IN}",
        output=f"s3://{BUCKET}/{BATCH_OUT}",
        model_data=stack.model_data,
        mode="manifest",
        instance_type="ml.m5.xlarge",
    )
    code, summary = execute(
        options, wait=True, poll_s=0.5, summary_wait_s=90, show_progress=False, clients=stack.stack.client
    )
    assert code == 0 and summary is not None  # broken.mp4 fails alone: the job completes
    return objects(s3, BUCKET, BATCH_OUT), summary


def images_plan(stack: TransformStack) -> JobPlan:
    """What images mode would run over a prefix holding a video and an image (the plan only; no job)."""
    s3 = stack.stack.client("s3")
    for key, body in (("mixed/clip.mp4", b"video"), ("mixed/photo.jpg", b"image")):
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    options = LaunchOptions(
        input=f"s3://{BUCKET}/mixed/", output=f"s3://{BUCKET}/mixed-out/", model_data="s3://m/x", mode="images"
    )
    auto = build_plan(s3, replace(options, mode="auto"), "auto-job")[2]
    assert auto.mode == "manifest" and "videos" in auto.reason  # --mode auto: a video means manifest mode
    return build_plan(s3, options, "images-job")[0]


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flows]:
    tmp = tmp_path_factory.mktemp("video-flows")
    inputs = clips(tmp / "clips")
    stack = TransformStack.start(tmp / "stack", MODEL_PATH, bucket=BUCKET)
    try:
        # The three flows side by side, as they would run on a shared machine (each starts its own model).
        with ThreadPoolExecutor(3) as pool:
            predicted = pool.submit(run_predict, inputs, tmp / "predict")
            manifest = pool.submit(run_manifest, stack, inputs)
            asynchronous = pool.submit(run_async, stack, inputs)
            (files, stdout), (outputs, summary) = predicted.result(), manifest.result()
            async_outputs, submitted = asynchronous.result()
        report = build_report(f"s3://{BUCKET}/{ASYNC_OUT}", s3=stack.stack.client("s3"))
        yield Flows(inputs, files, async_outputs, outputs, summary, stdout, images_plan(stack), report, submitted)
    finally:
        stack.stack.stop()


def lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def test_each_flow_writes_the_interfaces_paths(flows: Flows) -> None:
    expected = {
        "keypoints/clips/walk.mp4.jsonl",
        "annotated/clips/walk.mp4",
        "keypoints/phone.mov.jsonl",
        "annotated/phone.mov.mp4",
        "keypoints/bad/broken.mp4.jsonl",
    }
    assert {k for k in flows.predict if k.startswith(("keypoints/", "annotated/"))} == expected
    assert {k for k in flows.asynchronous if k.startswith(("keypoints/", "annotated/"))} == expected
    assert {k for k in flows.manifest if k.startswith(("keypoints/", "annotated/"))} == expected
    for outputs in (flows.predict, flows.asynchronous, flows.manifest):
        assert outputs["annotated/clips/walk.mp4"][4:8] == b"ftyp"


def test_the_three_flows_give_identical_frame_records(flows: Flows) -> None:
    for rel, frames in (("clips/walk.mp4", WALK_FRAMES), ("phone.mov", 4)):
        key = f"keypoints/{rel}.jsonl"
        predicted, asynchronous, manifest = (lines(f[key]) for f in (flows.predict, flows.asynchronous, flows.manifest))
        assert predicted[1:] == asynchronous[1:] == manifest[1:], rel
        assert len(predicted) == frames + 1 and predicted[0]["frames_posed"] == frames
        headers = [{k: v for k, v in h[0].items() if k != "source"} for h in (predicted, asynchronous, manifest)]
        assert headers[0] == headers[1] == headers[2]
        assert predicted[0]["source"] == rel
        assert asynchronous[0]["source"] == f"s3://{BUCKET}/{ASYNC_IN}{rel}"
        assert manifest[0]["source"] == f"s3://{BUCKET}/{BATCH_IN}{rel}"
    walk = lines(flows.predict["keypoints/clips/walk.mp4.jsonl"])
    assert walk[0]["tracking"]["tracks"] == 2 and all(len(f["persons"]) == 2 for f in walk[1:])


def test_a_bad_video_gets_its_error_record_in_every_flow(flows: Flows) -> None:
    for outputs in (flows.predict, flows.asynchronous, flows.manifest):
        (record,) = lines(outputs["keypoints/bad/broken.mp4.jsonl"])
        assert record["error"]["code"] == "invalid_video", record
    assert "bad/broken.mp4: ERROR invalid_video" in flows.stdout
    assert flows.summary["images"] == 3 and flows.summary["done"] == 2
    assert [f["key"] for f in flows.summary["failures"]] == [BATCH_IN + "bad/broken.mp4"]


def test_images_mode_refuses_videos_with_a_clear_record(flows: Flows) -> None:
    assert flows.images_mode.keys == ["photo.jpg"]
    (refusal,) = flows.images_mode.refused
    assert (refusal.rel, refusal.code) == ("clip.mp4", "video_not_accepted") and "--mode manifest" in refusal.message


def test_the_report_shows_each_video(flows: Flows) -> None:
    html = flows.predict["_REPORT.html"].decode()
    assert "Videos (3)" in html and html.count("class=poster") == 2  # a poster frame from each annotated MP4
    assert html.count('alt="persons per second"') == 2
    assert (
        "clips/walk.mp4" in html
        and f"{WALK_FRAMES} of {WALK_FRAMES} frames posed" in html
        and "duration 1.60 s" in html
    )
    assert "bad/broken.mp4" in html and "invalid_video" in html
    videos = flows.s3_report.videos  # the same from S3, read line by line
    # phone.mov as `submit --frame-stride 2` replaced it last: 2 of its 4 frames
    assert (videos.videos, videos.failed, videos.frames_posed) == (3, 1, WALK_FRAMES + 2)
    walk = next(e for e in videos.entries if e.rel == "clips/walk.mp4")
    assert len(walk.persons_per_second) == 2 and list(walk.persons_per_second) == [2.0, 2.0]  # 1.6 s, 2 people


def test_submit_reports_a_video_by_its_header_and_its_flags_reach_the_container(flows: Flows) -> None:
    video, bad = flows.submitted
    assert video.ok and video.video is not None and video.video.frames_posed == 2  # --frame-stride 2 of 4
    assert video.as_dict()["video"] == {
        "frames_posed": 2,
        "duration": 0.4,
        "tracks": 0,  # --no-track
        "truncated": False,
        "stopped": None,
    }
    assert video.annotated_uri is not None and video.annotated_uri.endswith("annotated/phone.mov.mp4")
    assert not bad.ok and bad.error is not None and bad.error.code == "invalid_video"
