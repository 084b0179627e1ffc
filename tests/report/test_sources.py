"""Which files of a local output folder are records, and under which relative key, in both layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.report.sources import LocalSource, open_source

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
