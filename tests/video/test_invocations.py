"""A video through the container's HTTP contract, in process (the real app and handler over the shared
engine): chosen by content type or by sniffing the body, its JSON Lines as the answer when no output is
named, options from custom attributes, bad bodies as error records, and Batch Transform images mode's
refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from batch.server.app import create_app
from batch.settings import Settings
from batch.transform_handler import InvocationHandler
from tests.video.conftest import WALK_FRAMES, EngineRunner


def invoke(
    runner: EngineRunner, body: bytes, content_type: str, attributes: str = "", **settings: Any
) -> httpx.Response:
    app = create_app(runner.engine.settings.updated(**settings))
    runtime = app.state.runtime
    runtime.handler = InvocationHandler(runtime.settings, runner.engine, runtime.store)  # loaded already

    async def post() -> httpx.Response:
        headers = {"Content-Type": content_type}
        if attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://container") as client:
            return await client.post("/invocations", content=body, headers=headers)

    return runner.run(post())


@pytest.mark.parametrize("content_type", ["video/mp4", "application/x-image"], ids=["by-type", "sniffed"])
def test_a_video_body_answers_its_json_lines(video_engine: EngineRunner, walk_clip: Path, content_type: str) -> None:
    answer = invoke(video_engine, walk_clip.read_bytes(), content_type)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/jsonlines")
    header, *frames = (json.loads(line) for line in answer.text.splitlines())
    assert header["kind"] == "video" and header["frames_posed"] == len(frames) == WALK_FRAMES
    assert header["annotated"] is None  # no annotated_output named: no MP4 made


def test_custom_attributes_choose_frames_and_tracking(video_engine: EngineRunner, walk_clip: Path) -> None:
    answer = invoke(video_engine, walk_clip.read_bytes(), "video/mp4", "frame_stride=8;track=false")
    header, *frames = (json.loads(line) for line in answer.text.splitlines())
    assert [f["frame"] for f in frames] == [0, 8] and header["tracking"]["enabled"] is False
    both = invoke(video_engine, walk_clip.read_bytes(), "video/mp4", "frame_stride=8;fps=2")
    assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_custom_attributes"


def test_a_video_type_with_another_body_is_an_invalid_video(video_engine: EngineRunner) -> None:
    answer = invoke(video_engine, b"plain text, not a video" * 10, "video/quicktime")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_video"
    empty = invoke(video_engine, b"", "video/mp4")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "invalid_video"


def test_images_mode_refuses_a_video_with_a_record(video_engine: EngineRunner, walk_clip: Path) -> None:
    answer = invoke(
        video_engine, walk_clip.read_bytes(), "application/x-image", embed_annotated=True, sagemaker_batch=True
    )
    assert answer.status_code == 200  # Batch Transform: the record, so one file never fails the job
    error = answer.json()["error"]
    assert error["code"] == "video_not_accepted" and "--mode manifest" in error["message"]


def test_a_video_over_the_limit_is_refused_from_its_length(video_engine: EngineRunner, walk_clip: Path) -> None:
    answer = invoke(video_engine, walk_clip.read_bytes(), "video/mp4", video_max_mb=0.001)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"


def test_settings_name_every_video_limit() -> None:
    names = Settings.environment_names()
    for name in (
        "POSE_VIDEO_MAX_DURATION_S",
        "POSE_VIDEO_MAX_MPIX_PER_S",
        "POSE_MAX_VIDEO_MB",
        "POSE_VIDEO_TIME_LIMIT_S",
    ):
        assert name in names
