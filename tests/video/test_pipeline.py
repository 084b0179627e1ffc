"""One video through the streaming pipeline, with the real model: per-frame persons equal the single-image
path's on the same decoded frames, container timestamps (VFR too), stable track ids, the annotated MP4's
codec, pixel format, frame count and `moov` before `mdat`, rotation, damage and limits."""

from __future__ import annotations

import asyncio
import io
import itertools
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from batch.custom_attributes import InferenceOptions
from batch.errors import InvalidVideo, VideoTooLarge
from batch.video.frames import FrameSource
from batch.video.pipeline import PosedVideo, pose_video
from batch.video.probe import VideoLimits
from batch.video.tracking import PersonTracker, TrackerChoice
from batch.video.writer import Mp4Sink
from tests.video.clips import Scene, decoded_frames, jsonl, write_clip
from tests.video.conftest import WALK, WALK_FRAMES, EngineRunner


def pose(
    runner: EngineRunner, clip: Path, work: Path, *, time_limit_s: float | None = None, **options: Any
) -> tuple[PosedVideo, dict[str, Any], list[dict[str, Any]]]:
    work.mkdir(parents=True, exist_ok=True)
    chosen = replace(runner.engine.default_options, **options)
    posed = runner.run(pose_video(runner.engine, clip, chosen, work, source=clip.name, time_limit_s=time_limit_s))
    header, *frames = jsonl(posed.keypoints)
    return posed, header, frames  # type: ignore[return-value]


@pytest.fixture(scope="module")
def walk(video_engine: EngineRunner, walk_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return pose(video_engine, walk_clip, tmp_path_factory.mktemp("walk"))


def test_frames_equal_the_single_image_path(video_engine: EngineRunner, walk_clip: Path, walk: Any) -> None:
    _, header, frames = walk
    decoded = decoded_frames(walk_clip)
    assert header["frames_decoded"] == header["frames_posed"] == len(frames) == len(decoded) == WALK_FRAMES

    async def as_images() -> list[Any]:
        bodies = []
        for _, rgb in decoded:
            png = io.BytesIO()
            Image.fromarray(rgb).save(png, "PNG")  # lossless: the very pixels the video path posed
            bodies.append(png.getvalue())
        return list(await asyncio.gather(*(video_engine.engine.predict(b) for b in bodies)))

    images = video_engine.run(as_images())
    for frame, image in zip(frames, images, strict=True):
        persons, expected = frame["persons"], image.result.persons
        assert len(persons) == len(expected) >= 1, frame["frame"]
        for got, want in zip(persons, expected, strict=True):
            assert max(abs(a - b) for a, b in zip(got["box"], want.box, strict=True)) < 1.0
            for (x, y, _), (wx, wy, _) in zip(got["keypoints"], want.keypoints, strict=True):
                assert abs(x - wx) < 1.0 and abs(y - wy) < 1.0
            assert abs(got["score"] - want.score) < 0.01


def test_timestamps_are_the_containers(walk_clip: Path, walk: Any) -> None:
    _, _, frames = walk
    stamps = [frame["pts"] for frame in frames]
    assert stamps == [round(pts, 6) for pts, _ in decoded_frames(walk_clip)]
    assert all(a < b for a, b in itertools.pairwise(stamps))


def test_track_ids_stay_with_each_person(walk: Any) -> None:
    _, header, frames = walk
    assert header["tracking"] == {
        "enabled": True,
        "tracker": "bytetrack",
        "gmc": None,
        "buffer_frames": 10,
        "tracks": 2,
    }
    by_side: dict[str, set[int | None]] = {"left": set(), "right": set()}
    for frame in frames:
        for person in frame["persons"]:
            side = "left" if person["box"][0] < WALK.width / 2 - 20 else "right"
            by_side[side].add(person["track_id"])
    # Both people keep one id each from the first frame to the last, and the two ids differ.
    assert len(by_side["left"]) == len(by_side["right"]) == 1
    assert by_side["left"] != by_side["right"] and None not in by_side["left"] | by_side["right"]


def test_annotated_mp4_plays_everywhere(walk: Any) -> None:
    posed, header, _ = walk
    assert posed.annotated is not None
    data = posed.annotated.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first
    with av.open(str(posed.annotated)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        times = [float(frame.time) for frame in container.decode(stream)]
        duration = float(stream.duration * stream.time_base)
    assert len(times) == header["frames_posed"] == header["annotated"]["frames"]
    assert duration == pytest.approx(header["duration"], abs=1e-3)  # every frame posed: the source's duration
    assert (header["annotated"]["width"], header["annotated"]["height"]) == (WALK.width, WALK.height)


def test_the_encoder_preset_is_the_settings(walk: Any, tmp_path: Path) -> None:
    """x264 writes its options into the stream: POSE_VIDEO_PRESET's default (ultrafast: subme=0, no CABAC)
    reached the walk's MP4, and another preset reaches its own file (superfast: subme=1, CABAC)."""
    posed, _, _ = walk
    assert posed.annotated is not None
    default = posed.annotated.read_bytes()
    assert b"subme=0 " in default and b"cabac=0 " in default
    with Mp4Sink(tmp_path / "other.mp4", 64, 48, fps=10, time_base=Fraction(1, 10), preset="superfast") as sink:
        for index in range(3):
            sink.write(np.full((48, 64, 3), index * 40, np.uint8), index / 10)
    written = (tmp_path / "other.mp4").read_bytes()
    assert b"subme=1 " in written and b"cabac=1 " in written


def test_botsort_tracks_without_tracking_only_detects(
    video_engine: EngineRunner, walk_clip: Path, tmp_path: Path
) -> None:
    _, header, frames = pose(video_engine, walk_clip, tmp_path / "botsort", tracker="botsort", gmc=True)
    assert header["tracking"]["tracker"] == "botsort" and header["tracking"]["gmc"] is True
    assert header["tracking"]["tracks"] == 2
    assert {p["track_id"] for f in frames[1:] for p in f["persons"]} == {1, 2}
    _, header, frames = pose(video_engine, walk_clip, tmp_path / "off", track=False, frame_stride=4)
    assert header["tracking"]["enabled"] is False and header["frames_decoded"] == WALK_FRAMES
    assert [f["frame"] for f in frames] == [0, 4, 8, 12]
    assert all(p["track_id"] is None for f in frames for p in f["persons"]) and frames[0]["persons"]


def test_variable_frame_rate_keeps_real_timestamps(video_engine: EngineRunner, clip_dir: Path, tmp_path: Path) -> None:
    stamps = [0.0, 0.04, 0.1, 0.3, 0.34, 0.6, 0.62, 0.9]
    clip = write_clip(clip_dir / "vfr.mkv", Scene(width=160, height=120, person_height=100), 8, pts=stamps)
    _, header, frames = pose(video_engine, clip, tmp_path / "all", track=False)
    assert [f["pts"] for f in frames] == stamps == [round(t, 6) for t, _ in decoded_frames(clip)]
    assert header["container"] == "matroska,webm" and header["truncated"] is False
    # fps=5: one frame per 0.2 s of video time, by timestamp (not by count)
    _, _, sampled = pose(video_engine, clip, tmp_path / "fps", track=False, fps=5.0)
    assert [f["pts"] for f in sampled] == [0.0, 0.3, 0.6, 0.9]


def test_rotation_metadata_is_applied(video_engine: EngineRunner, clip_dir: Path, tmp_path: Path) -> None:
    scene = Scene(width=240, height=320, person_height=260, step=2)  # upright: portrait, as a phone films
    clip = write_clip(clip_dir / "phone.mov", scene, 4, rotation=-90)  # stored landscape, displayed portrait
    with av.open(str(clip)) as container:
        stored = container.streams.video[0].codec_context
        assert (stored.width, stored.height) == (320, 240)
    _, header, frames = pose(video_engine, clip, tmp_path / "phone", track=False)
    assert (header["width"], header["height"], header["rotation"]) == (240, 320, -90)
    assert (header["annotated"]["width"], header["annotated"]["height"]) == (240, 320)
    for frame in frames:
        (person,) = frame["persons"]
        nose, ankle = person["keypoints"][0], person["keypoints"][15]
        assert nose[1] < ankle[1] - 100  # head up: the person stands, as displayed


def test_truncated_file_keeps_its_good_frames(video_engine: EngineRunner, walk_clip: Path, tmp_path: Path) -> None:
    with av.open(str(walk_clip)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    position, size = packets[10]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(walk_clip.read_bytes()[: position + size // 2])  # an upload that broke off in frame 10
    posed, header, frames = pose(video_engine, cut, tmp_path / "work")
    assert header["truncated"] is True and header["stopped"] == "truncated"
    assert header["error"]["code"] == "truncated_video" and header["error"]["message"]
    assert 6 <= header["frames_posed"] == len(frames) <= 10  # decoder threads may hold back the last few
    assert header["last_good_frame"]["frame"] == frames[-1]["frame"] == header["frames_decoded"] - 1
    assert header["last_good_frame"]["pts"] == frames[-1]["pts"]
    assert all(f["persons"] for f in frames)
    assert posed.annotated is not None
    with av.open(str(posed.annotated)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(frames)


def test_time_limit_is_said_not_silent(video_engine: EngineRunner, walk_clip: Path, tmp_path: Path) -> None:
    _, header, frames = pose(video_engine, walk_clip, tmp_path, time_limit_s=0.0, track=False)
    assert header["stopped"] == "time_limit" and header["truncated"] is False
    assert header["error"]["code"] == "time_limit" and "POSE_VIDEO_TIME_LIMIT_S" in header["error"]["message"]
    assert len(frames) == header["frames_posed"] < WALK_FRAMES


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"a text file, not a video\n" * 20, "not a video"),
        (b"\x00\x00\x00\x18ftypmp42" + bytes(64), "not a video|no video stream|no decodable frame|no frame of"),
    ],
    ids=["zero-bytes", "not-a-video", "broken-mp4-header"],
)
def test_unreadable_files_are_invalid_video(
    video_engine: EngineRunner, tmp_path: Path, body: bytes, message: str
) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(body)
    with pytest.raises(InvalidVideo, match=message) as raised:
        pose(video_engine, path, tmp_path / "work")
    assert raised.value.code == "invalid_video"


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (VideoLimits(max_duration_s=1.0, max_pixels_per_s=1e9, max_frame_pixels=10**8), "lasts 1.6 s"),
        (VideoLimits(max_duration_s=3600, max_pixels_per_s=1e6, max_frame_pixels=10**8), "megapixels per second"),
        (VideoLimits(max_duration_s=3600, max_pixels_per_s=1e9, max_frame_pixels=1000), "pixels"),
    ],
    ids=["duration", "pixel-rate", "frame-size"],
)
def test_over_limit_headers_are_refused_before_decoding(walk_clip: Path, limits: VideoLimits, message: str) -> None:
    with pytest.raises(VideoTooLarge, match=message):
        FrameSource(walk_clip, limits)  # the constructor reads the header only; no frame is decoded


@pytest.mark.parametrize(
    ("tracker", "fps", "frames"), [("bytetrack", 60.0, 60), ("bytetrack", 10.0, 10), ("botsort", 25.0, 25)]
)
def test_lost_tracks_are_kept_for_the_same_seconds_at_any_rate(tracker: str, fps: float, frames: int) -> None:
    assert PersonTracker(TrackerChoice(tracker), fps).buffer_frames == frames  # Ultralytics' 30 frames at 30 fps: 1 s


def test_options_default_to_every_frame_tracked(video_engine: EngineRunner) -> None:
    options = video_engine.engine.default_options
    assert isinstance(options, InferenceOptions)
    assert (options.frame_stride, options.fps, options.track) == (1, None, True)


@pytest.mark.parametrize(
    ("name", "codec", "container", "decoded_as"),
    [
        ("hevc.mp4", "libx265", None, "hevc"),
        ("vp9.webm", "libvpx-vp9", None, "vp9"),
        ("av1.mkv", "libsvtav1", None, "av1"),
        ("mpeg4.avi", "mpeg4", None, "mpeg4"),
    ],
)
def test_other_codecs_and_containers_pose_every_frame(
    video_engine: EngineRunner, clip_dir: Path, tmp_path: Path, name: str, codec: str, container: str | None,
    decoded_as: str,
) -> None:  # fmt: skip
    """H.265, VP9, AV1 and MPEG-4 Part 2, in MP4, WebM, MKV and AVI, through the same PyAV path as H.264."""
    scene = Scene(width=320, height=192, person_height=160, step=4)
    clip = write_clip(clip_dir / name, scene, 6, codec=codec, container=container)
    posed, header, frames = pose(video_engine, clip, tmp_path / name)
    assert header["codec"] == decoded_as and header["truncated"] is False
    assert header["frames_decoded"] == header["frames_posed"] == len(frames) == 6
    assert [f["frame"] for f in frames] == list(range(6)) and all(f["persons"] for f in frames)
    with av.open(str(posed.annotated)) as annotated:
        assert annotated.streams.video[0].codec_context.name == "h264"
