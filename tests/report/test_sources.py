"""Which files of a local output folder are records, and under which relative key, in both layouts; and
what a report never reads, whatever its outputs name."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

from batch.report import build_report
from batch.report.sources import LocalSource, input_reader, open_source

T = TypeVar("T")

# (files written, expected (rel, content) in listing order)
FLAT = {
    "predict output": (
        {"a.jpg.json": "1", "a.jpg": "jpeg", "b.png.error.json": "2", "_SUMMARY.json": "{}", "_REPORT.html": "x"},
        [("a.jpg", "1"), ("b.png", "2")],
    ),
    "underscore image name": ({"_x.jpg.json": "3"}, [("_x.jpg", "3")]),
    "no records": ({"notes.txt": "x"}, []),
}
MIRRORED = {
    "nested keys": (
        {"keypoints/b/c.jpg.json": "2", "keypoints/a.jpg.json": "1", "annotated/a.jpg": "j", "_SUMMARY.json": "{}"},
        [("a.jpg", "1"), ("b/c.jpg", "2")],
    ),
    "only keypoints json": ({"keypoints/x.jpg.json": "1", "keypoints/readme.txt": "no"}, [("x.jpg", "1")]),
}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


@pytest.mark.parametrize(("files", "expected"), [*FLAT.values(), *MIRRORED.values()], ids=[*FLAT, *MIRRORED])
def test_records_and_their_keys(tmp_path: Path, files: dict[str, str], expected: list[tuple[str, str]]) -> None:
    source = LocalSource(write(tmp_path, files))
    assert [(rel, raw.decode()) for rel, raw in source.records()] == expected


@pytest.mark.parametrize(
    ("files", "rel", "annotated"),
    [
        ({"keypoints/a/b.png.json": "1", "annotated/a/b.png.jpg": "img"}, "a/b.png", "img"),
        ({"keypoints/a/c.jpeg.json": "1", "annotated/a/c.jpeg": "img"}, "a/c.jpeg", "img"),
        ({"b.png.json": "1", "b.jpg": "img"}, "b.png", "img"),  # predict writes <stem>.jpg
        ({"c.jpg.json": "1"}, "c.jpg", None),
    ],
)
def test_annotated_image_of_a_record(tmp_path: Path, files: dict[str, str], rel: str, annotated: str | None) -> None:
    data = LocalSource(write(tmp_path, files)).annotated(rel)
    assert (data.decode() if data else None) == annotated


def test_summary_is_read_when_valid(tmp_path: Path) -> None:
    assert LocalSource(write(tmp_path, {"_SUMMARY.json": '{"input": "s3://b/in/"}'})).summary() == {
        "input": "s3://b/in/"
    }
    assert LocalSource(write(tmp_path, {"_SUMMARY.json": "not json"})).summary() is None


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        open_source(str(tmp_path / "absent"))


def in_a_thread(work: Callable[[], T], *, deadline_s: float = 30.0) -> T:
    """`work()`, failing the test (not hanging it) when it blocks: a daemon thread never holds up exit."""
    outcome: list[T] = []
    thread = threading.Thread(target=lambda: outcome.append(work()), daemon=True)
    thread.start()
    thread.join(deadline_s)
    assert outcome, f"still blocked after {deadline_s:.0f} s"
    return outcome[0]


def test_fifos_and_devices_are_never_read(tmp_path: Path) -> None:
    root = write(tmp_path, {"keypoints/a.jpg.json": '{"persons": []}'})
    os.mkfifo(root / "keypoints" / "fifo.jpg.json")  # reading it would wait for a writer for ever
    (root / "keypoints" / "zero.jpg.json").symlink_to("/dev/zero")  # and this would never end
    (root / "annotated").mkdir()
    os.mkfifo(root / "annotated" / "a.jpg")
    source = LocalSource(root)

    records = dict(in_a_thread(lambda: list(source.records())))

    assert records["a.jpg"] == b'{"persons": []}'
    for rel, kind in (("fifo.jpg", "a FIFO"), ("zero.jpg", "a device")):
        error = json.loads(records[rel])["error"]
        assert error["code"] == "unreadable_record" and f"not a regular file ({kind})" in error["message"]
    assert in_a_thread(lambda: source.annotated("a.jpg")) is None
    os.mkfifo(root / "keypoints" / "clip.mp4.jsonl")  # a video's record lines, and its annotated MP4
    os.mkfifo(root / "annotated" / "clip.mp4")
    ((rel, lines),) = in_a_thread(lambda: [(rel, list(lines)) for rel, lines in source.videos()])
    assert rel == "clip.mp4" and json.loads(lines[0])["error"]["code"] == "unreadable_record"
    assert in_a_thread(lambda: source.annotated_start("clip.mp4", 1024)) is None
    assert in_a_thread(lambda: input_reader(str(root / "annotated"))("a.jpg")) is None  # type: ignore[misc]


def test_relative_keys_never_leave_their_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(b"private")
    inputs = tmp_path / "inputs"
    root = write(tmp_path / "out", {"keypoints/x.jpg.json": "{}", "annotated/ok.jpg": "img"})
    inputs.mkdir()
    read = input_reader(str(inputs))
    assert read is not None
    for rel in ("../secret.jpg", f"/{tmp_path.relative_to('/')}/secret.jpg", "a/../../secret.jpg"):
        assert read(rel) is None
        assert LocalSource(root).annotated(rel) is None
    assert LocalSource(root).annotated("ok.jpg") == b"img"


def test_a_summary_cannot_point_the_report_at_local_files(tmp_path: Path) -> None:
    """`"input": "/"` and a record at `keypoints/<an absolute path>.json` once made the report embed a
    thumbnail of that local file (and upload it with the report)."""
    secret = tmp_path / "private" / "secret.jpg"
    secret.parent.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(secret, "JPEG")
    failure = json.dumps({"error": {"code": "invalid_image", "message": "bad"}})
    forged = {"_SUMMARY.json": '{"input": "/"}', f"keypoints/{secret.as_posix()[1:]}.json": failure}
    root = write(tmp_path / "out", forged)

    outcome = build_report(str(root), sample_size=0)

    assert outcome.stats.failed == 1
    assert "data:image/jpeg;base64" not in (root / "_REPORT.html").read_text()


def test_the_report_replaces_a_link_planted_at_its_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    root = write(tmp_path / "out", {"keypoints/x.jpg.json": '{"persons": []}'})
    (root / "_REPORT.html").symlink_to(victim)

    build_report(str(root), sample_size=0)

    assert victim.read_text() == "keep me"
    assert not (root / "_REPORT.html").is_symlink() and "<html" in (root / "_REPORT.html").read_text()
